"""Incidents on nodes through real allot-collect, real allotd and the allot CLI, every
figure worked out here: the nodes a job ran on come from sacct's NodeList, an incident
names a Slurm hostlist, its jobs are credited for the overlap; then a refund of the
same allocation meets 0014's one cap, and several incidents over one job never credit
it more than it was charged.

On LEONARDO's boost_usr_prod (GPU share, 8 cores a GPU, weight 1000) one occupied
GPU for one second is 1,000 units; a GPU-hour is 3,600,000 units.
"""

import os
import subprocess
import unittest

from collectlib import Collector, collect_path
from harness import AllotTestCase, job

SITE, PART = "leonardo", "boost_usr_prod"
DAY = "2026-11-21"
WINDOW = (f"{DAY}T10:00:00Z", f"{DAY}T12:00:00Z")
HEADER = "JobID|Account|Partition|State|Start|End|ElapsedRaw|AllocTRES|NodeList"


def row(job_id, start, gpus, elapsed_s, nodes, account="acme-vision"):
    """A completed sacct line (UTC): gpus * elapsed_s * 1000 units."""
    tres = f"billing={8 * gpus},cpu={8 * gpus},gres/gpu={gpus},mem={1000 * gpus}M,node=1"
    return "|".join([job_id, account, "" if "." in job_id else PART, "COMPLETED",
                     f"{DAY}T{start}", "Unknown", str(elapsed_s), tres, nodes])


class IncidentNodes(AllotTestCase):
    """acme-vision (1000 GPU-hours on LEONARDO), from one sacct file sent by allot-collect:
      n1  1 GPU, 10:30 + 3,600 s (to 11:30) on lrdn[0001-0002]   3,600,000
      n2  2 GPUs, 09:00 + 7,200 s (to 11:00) on lrdn0003        14,400,000
      n3  1 GPU, 11:00 + 7,200 s (to 13:00) on lrdn0004          7,200,000
      n4  1 GPU, 10:00 + 3,600 s (to 11:00) on lrdn0009          3,600,000
      n1.batch, a step on lrdn0001
    charged 28,800,000 units together.
    """

    ID = "lrd-rack-7"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        src = os.path.join(cls.workdir, "nodes.psv")
        with open(src, "w") as f:
            f.write("\n".join([HEADER,
                               row("n1", "10:30:00", 1, 3600, "lrdn[0001-0002]"),
                               row("n1.batch", "10:30:00", 1, 3600, "lrdn0001"),
                               row("n2", "09:00:00", 2, 7200, "lrdn0003"),
                               row("n3", "11:00:00", 1, 7200, "lrdn0004"),
                               row("n4", "10:00:00", 1, 3600, "lrdn0009")]) + "\n")
        conf = Collector(cls.workdir, cls.daemon.port, "nodes", timezone="UTC").conf
        r = subprocess.run([collect_path(), "send", "-c", conf, "--format", "sacct", src],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr + r.stdout
        assert "(5 records, 0 refused)" in r.stdout, r.stdout

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"allot {' '.join(args)}: {r.stderr}")
        return r.stdout

    def declare(self, *extra, incident=ID, window=WINDOW, cert="admin"):
        return self.cli("incident", "declare", "--incident-id", incident, "--site", SITE,
                        "--starts-at", window[0], "--ends-at", window[1],
                        "--reason", "rack 7 power", *extra, cert=cert)

    def credits(self):
        return self.psql("SELECT count(*) || ' ' || coalesce(sum(amount), 0) "
                         "FROM allot.transfers WHERE kind = 'credit'")

    def alloc(self, project):
        return self.psql(f"SELECT a.id FROM allot.allocations a JOIN allot.projects p "
                         f"ON p.id = a.project_id WHERE p.name = '{project}'")

    def test_1_nodes_stored_from_sacct(self):
        self.assertEqual(self.psql(
            "SELECT string_agg(job_id || '=' || array_to_string(nodes, ','), ' ' ORDER BY job_id) "
            "FROM allot.job_nodes"),
            "n1=lrdn0001,lrdn0002 n2=lrdn0003 n3=lrdn0004 n4=lrdn0009")
        self.assertEqual(self.charged_units("acme-vision"), 28_800_000)

    def test_2_bad_input_changes_nothing(self):
        before = self.counts()
        for extra, cert, rc, msg in (
                (("--nodes", "lrdn[0002-"), "admin", 2,
                 'allot: --nodes "lrdn[0002-": character 11: a number of 1 to 9 digits was '
                 "expected"),
                (("--nodes", "lrdn[1-65537]"), "admin", 2, "more than 65536 nodes"),
                (("--nodes", "lrdn0002", "--partition", PART), "admin", 1,
                 "allot: invalid_argument: an incident names a partition or nodes, not both"),
                (("--nodes", "lrdn0002"), "collector-leonardo", 1,
                 "allot: permission_denied: ")):
            with self.subTest(extra=extra, cert=cert):
                r = self.declare(*extra, cert=cert)
                self.assertEqual(r.returncode, rc, r.stdout + r.stderr)
                self.assertIn(msg, r.stderr)
        self.assertTwirpError(self.twirp("Incidents/Declare", {
            "incidentId": self.ID, "site": SITE, "nodes": ["lrdn0002", "lrdn 3"],
            "startsAt": WINDOW[0], "endsAt": WINDOW[1], "reason": "rack 7 power"}),
            "invalid_argument", 'node name "lrdn 3" is not valid')
        # A node list allotd cannot read refuses its record; one too long its batch.
        rec = job("bad", f"{DAY}T10:00:00Z", "acme-vision", PART, 1, 8, 1000, 1, 60)
        resp = self.ingest(SITE, [dict(rec, nodeList="lrdn[0001")], "bad-nodes")
        self.assertEqual(resp["results"][0]["status"], "INGEST_STATUS_REJECTED")
        self.assertEqual(resp["results"][0]["reason"],
                         'node_list "lrdn[0001": character 5: "[" is not closed')
        big = [dict(rec, jobId=f"big{i}", nodeList="n[1-16384]") for i in range(123)]
        self.assertTwirpError(self.twirp("Usage/Ingest", {"site": SITE, "batchId": "big",
                                                          "records": big},
                                         cert="collector-leonardo"),
                              "invalid_argument", "more than 2000000 nodes together")
        self.assertEqual(self.counts(), before)
        self.assertEqual(self.credits(), "0 0")

    def test_3_declare_on_nodes(self):
        # lrdn0002 and lrdn0003, 10:00 to 12:00:
        #   n1 on lrdn0002, all 3,600 s inside:  3,600,000
        #   n2 on lrdn0003, 3,600 of 7,200 s:    14,400,000 / 2 = 7,200,000
        #   n3 (lrdn0004), n4 (lrdn0009):        nothing
        # 10,800,000 units = 3 GPU-hours, 2 jobs.
        before = int(self.balance("acme-vision")["total"]["availableUnits"])
        out = self.ok("incident", "declare", "--incident-id", self.ID, "--site", SITE,
                      "--nodes", "lrdn[0003,0002]", "--starts-at", WINDOW[0],
                      "--ends-at", WINDOW[1], "--reason", "rack 7 power")
        self.assertIn("incident.jobs_credited: 2\n", out)
        self.assertIn("incident.credited_units: 10800000\n", out)
        self.assertIn("incident.credited_gpu_hours: 3\n", out)
        self.assertIn("replay: false\n", out)
        after = int(self.balance("acme-vision")["total"]["availableUnits"])
        self.assertEqual(after - before, 10_800_000)
        self.assertEqual(self.psql(
            "SELECT string_agg(transfer_id || '=' || amount, ' ' ORDER BY transfer_id) "
            "FROM allot.transfers WHERE kind = 'credit'"),
            f"incident:{self.ID}:leonardo:n1=3600000 incident:{self.ID}:leonardo:n2=7200000")
        # Again, the nodes spelled otherwise: a replay that credits nothing twice.
        out = self.ok("incident", "declare", "--incident-id", self.ID, "--site", SITE,
                      "--nodes", "lrdn0002,lrdn0003", "--starts-at", WINDOW[0],
                      "--ends-at", WINDOW[1], "--reason", "rack 7 power")
        self.assertIn("replay: true\n", out)
        self.assertEqual(self.credits(), "2 10800000")
        # Another incident on one of its nodes at the same time: refused.
        r = self.declare("--nodes", "lrdn[0003-0005]", incident="lrd-rack-8")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f'allot: failed_precondition: incident "lrd-rack-8" overlaps incident '
                      f'"{self.ID}" (nodes lrdn0003, ', r.stderr)
        self.assertEqual(self.credits(), "2 10800000")
        out = self.ok("incident", "show", "--incident-id", self.ID, cert="auditor")
        # In tables the nodes are compressed again; JSON has every name.
        self.assertIn("\nnodes: lrdn[0002-0003]\n", out)
        out = self.ok("incident", "list", cert="auditor")
        self.assertRegex(out, rf"(?m)^{self.ID}\s+leonardo\s.*\slrdn\[0002-0003\]$")
        out = self.ok("--format", "json", "incident", "show", "--incident-id", self.ID)
        self.assertIn('"nodes":["lrdn0002","lrdn0003"]', out)
        self.assertEqual(self.psql("SELECT allot.check_ledger() AND allot.check_project_usage()"),
                         "t")

    def test_4_refund_after_the_credit_meets_the_cap(self):
        # acme-vision was charged 28,800,000 and credited 10,800,000: 18,000,000 may
        # still come back, by refund or credit together.
        alloc = self.alloc("acme-vision")
        resp = self.twirp("Allocations/Refund", {
            "transferId": "refund-1", "allocationId": alloc, "amountUnits": "18000001",
            "reason": "rack 7, the rest"})
        self.assertTwirpError(resp, "failed_precondition",
                              "usage charged it 28800000 units, 0 were refunded and 10800000 "
                              "credited by incidents already, so 18000000 can be refunded")
        self.call("Allocations/Refund", {"transferId": "refund-2", "allocationId": alloc,
                                         "amountUnits": "18000000",
                                         "reason": "rack 7, the rest"})
        # Now an incident on n3's node finds nothing left to give back: n3 is owed
        # 3,600,000 (11:00 to 12:00 of its 7,200 s) and gets none of it.
        out = self.ok("--format", "json", "incident", "declare", "--incident-id", "lrd-n4",
                      "--site", SITE, "--nodes", "lrdn0004", "--starts-at", WINDOW[0],
                      "--ends-at", WINDOW[1], "--reason", "node lrdn0004 down")
        self.assertIn('"jobsCredited":0', out)
        self.assertEqual(self.psql(
            f"SELECT refundable FROM allot.accounts WHERE allocation_id = {alloc}"), "0")
        self.assertEqual(self.credits(), "2 10800000")
        self.assertEqual(self.psql("SELECT allot.check_allocation_life() AND "
                                   "allot.check_account_flows()"), "t")

    def test_5_overlapping_incidents_never_credit_more_than_charged(self):
        # acme-llm's m1 (Usage.Ingest with a node list): 1 GPU on 2026-11-22, 11:00 +
        # 7,200 s (to 13:00) on lrdn0100, charged 7,200,000.
        rec = job("m1", "2026-11-22T11:00:00Z", "acme-llm", PART, 1, 8, 1000, 1, 7200)
        self.assertEqual(self.ingest(SITE, [dict(rec, nodeList="lrdn0100")], "m-1")
                         ["results"][0]["chargedUnits"], "7200000")
        d = "2026-11-22"

        def declare(incident, where, starts, ends):
            out = self.ok("--format", "json", "incident", "declare", "--incident-id", incident,
                          "--site", SITE, *where, "--starts-at", f"{d}T{starts}Z",
                          "--ends-at", f"{d}T{ends}Z", "--reason", "overlap")
            return out

        # c-1, lrdn0100, 10:00 to 12:00: 3,600 of m1's 7,200 s: 3,600,000.
        self.assertIn('"creditedUnits":"3600000"', declare("c-1", ("--nodes", "lrdn0100"),
                                                            "10:00:00", "12:00:00"))
        # c-2, the partition, 11:30 to 13:00 (overlaps c-1: a partition and nodes may):
        # 5,400 s of m1, 1,800 of them credited by c-1: 3,600 s, 3,600,000.
        self.assertIn('"creditedUnits":"3600000"', declare("c-2", ("--partition", PART),
                                                            "11:30:00", "13:00:00"))
        # c-3, lrdn[0100-0101], 12:00 to 13:00: all of it credited by c-2: nothing.
        self.assertIn('"jobsCredited":0', declare("c-3", ("--nodes", "lrdn[0100-0101]"),
                                                   "12:00:00", "13:00:00"))
        self.assertEqual(self.psql(
            "SELECT string_agg(incident_id || '=' || credit_units, ' ' ORDER BY incident_id) "
            "FROM allot.incident_credits WHERE job_id = 'm1'"), "c-1=3600000 c-2=3600000")
        self.assertEqual(self.psql(
            "SELECT reason FROM allot.transfers WHERE transfer_id = 'incident:c-2:leonardo:m1'"),
            "incident c-2: overlap (job m1 at leonardo: 5400.000 of its 7200 s in the window, "
            "1800.000 of them credited by an earlier incident)")
        # Whatever the incidents, no job got back more than it was charged.
        self.assertEqual(self.psql(
            "SELECT count(*) FROM allot.job_usage j JOIN (SELECT site, job_id, "
            "sum(credit_units) AS c FROM allot.incident_credits GROUP BY 1, 2) k "
            "USING (site, job_id) WHERE j.step = '' AND k.c > j.charged_units"), "0")
        self.assertEqual(self.psql(
            "SELECT sum(credit_units) FROM allot.incident_credits WHERE job_id = 'm1'"),
            self.psql("SELECT charged_units FROM allot.job_usage WHERE job_id = 'm1' "
                      "AND step = ''"))


if __name__ == "__main__":
    unittest.main()
