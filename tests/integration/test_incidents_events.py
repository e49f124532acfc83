"""Incident credits and threshold events through real allotd, real ingestion and the
allot CLI, every figure worked out here.

On LEONARDO's boost_usr_prod (GPU share, 8 cores a GPU, weight 1000) one occupied
GPU for one second is 1,000 units; a GPU-hour is 3,600,000 units.
"""

import json
import re
import unittest

import time

from harness import AllotTestCase, TwoDaemonCase, job, make_cert, twirp

H = 3_600_000
SITE, PART = "leonardo", "boost_usr_prod"
DAY = "2026-11-21"
WINDOW = (f"{DAY}T10:00:00Z", f"{DAY}T12:00:00Z")


def lrd(job_id, start, gpus, elapsed_s, state="COMPLETED", account="acme-vision", step=""):
    """A LEONARDO job of gpus GPUs (8 cores each): gpus * elapsed_s * 1000 units."""
    return job(job_id, f"{DAY}T{start}Z", account, PART, gpus, 8 * gpus, 1000, 1, elapsed_s,
               state=state, step=step)


class Incidents(AllotTestCase):
    """acme-vision has 1000 GPU-hours on LEONARDO, acme-llm 5000 on every site.

    LEONARDO's boost_usr_prod is down from 10:00 to 12:00 on 2026-11-21. The jobs:
      i1  1 GPU, 10:30 + 3,600 s (to 11:30), inside:  charged 3,600,000, credit all of it
      i2  2 GPUs, 09:00 + 7,200 s (to 11:00):         charged 14,400,000, credit
          3,600/7,200 of it = 7,200,000
      i3  4 GPUs, 11:30 + 5,400 s so far (to 13:00), running: charged 21,600,000, credit
          1,800/5,400 of it = 7,200,000
      o1  1 GPU, 06:00 + 3,600 s (to 07:00), before:  nothing
      o2  1 GPU, 12:00 + 600 s, starts at the end:   nothing
      i1.batch, a step; jupiter's j1 10:30 + 3,600 s, another site: nothing
    Credited: 3,600,000 + 7,200,000 + 7,200,000 = 18,000,000 units = 5 GPU-hours, 3 jobs.
    """

    ID = "lrd-2026-11-21-cooling"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for site, records in (
                (SITE, [lrd("i1", "10:30:00", 1, 3600), lrd("i1", "10:30:00", 1, 3600,
                                                             step="batch"),
                        lrd("i2", "09:00:00", 2, 7200), lrd("i3", "11:30:00", 4, 5400, "RUNNING"),
                        lrd("o1", "06:00:00", 1, 3600), lrd("o2", "12:00:00", 1, 600)]),
                ("jupiter", [job("j1", f"{DAY}T10:30:00Z", "acme-llm", "booster", 4, 288, 0, 1,
                                 3600)])):
            st, _, body = twirp(cls.daemon.port, "Usage/Ingest",
                                {"site": site, "batchId": f"{site}-1", "records": records},
                                cert=f"collector-{site}")
            assert st == 200 and body["rejected"] == 0, body

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"allot {' '.join(args)}: {r.stderr}")
        return r.stdout

    def credits(self):
        return self.psql("SELECT count(*) || ' ' || coalesce(sum(amount), 0) "
                         "FROM allot.transfers WHERE kind = 'credit'")

    def declare(self, *extra, incident=ID, site=SITE, part=PART, window=WINDOW,
                reason="cooling failure", cert="admin"):
        return self.cli("incident", "declare", "--incident-id", incident, "--site", site,
                        "--partition", part, "--starts-at", window[0], "--ends-at", window[1],
                        "--reason", reason, *extra, cert=cert)

    def test_1_bad_input_changes_nothing(self):
        before = self.counts()
        for kw, code, msg in (
                ({"site": "nowhere"}, "not_found", 'site "nowhere" does not exist'),
                ({"window": (WINDOW[1], WINDOW[0])}, "invalid_argument",
                 f"endsAt {WINDOW[0]} is not after startsAt {WINDOW[1]}"),
                ({"reason": ""}, "invalid_argument", "reason is required"),
                ({"part": "nope"}, "not_found", 'resource "leonardo/nope" does not exist'),
                ({"window": (WINDOW[0], "2999-01-01T00:00:00Z")}, "invalid_argument",
                 "is in the future"),
                ({"cert": "collector-leonardo"}, "permission_denied", "collector")):
            with self.subTest(**{k: str(v) for k, v in kw.items()}):
                r = self.declare(**kw)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(f"allot: {code}: ", r.stderr)
                self.assertIn(msg, r.stderr)
        self.assertEqual(self.counts(), before)
        self.assertEqual(self.credits(), "0 0")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.incidents"), "0")

    def test_2_declare_credits_the_overlap(self):
        before = self.balance("acme-vision")["total"]
        out = self.ok("incident", "declare", "--incident-id", self.ID, "--site", SITE,
                      "--partition", PART, "--starts-at", WINDOW[0], "--ends-at", WINDOW[1],
                      "--reason", "cooling failure")
        self.assertIn("incident.jobs_credited: 3\n", out)
        self.assertIn("incident.credited_units: 18000000\n", out)
        self.assertIn("incident.credited_gpu_hours: 5\n", out)
        self.assertIn("replay: false\n", out)
        agg = self.psql("SELECT string_agg(transfer_id || '=' || amount, ',' ORDER BY transfer_id) "
                        "FROM allot.transfers WHERE kind = 'credit'")
        got = dict(kv.split("=") for kv in agg.split(","))
        self.assertEqual(got, {f"incident:{self.ID}:leonardo:i1": "3600000",
                               f"incident:{self.ID}:leonardo:i2": "7200000",
                               f"incident:{self.ID}:leonardo:i3": "7200000"})
        self.assertEqual(self.psql(
            f"SELECT reason FROM allot.transfers WHERE transfer_id = 'incident:{self.ID}:leonardo:i2'"),
            f"incident {self.ID}: cooling failure (job i2 at leonardo: 3600.000 of its 7200 s "
            "in the window)")
        # The allocation gets the 18,000,000 units back: available up by 5 GPU-hours.
        after = self.balance("acme-vision")["total"]
        self.assertEqual(int(after["availableUnits"]) - int(before["availableUnits"]), 18_000_000)
        self.assertEqual(self.psql("SELECT allot.check_ledger() AND allot.check_project_usage()"),
                         "t")

        # Declared again: a replay, nothing credited twice.
        out = self.ok("incident", "declare", "--incident-id", self.ID, "--site", SITE,
                      "--partition", PART, "--starts-at", WINDOW[0], "--ends-at", WINDOW[1],
                      "--reason", "cooling failure")
        self.assertIn("replay: true\n", out)
        self.assertEqual(self.credits(), "3 18000000")
        # The same id with another body, and another incident overlapping it: refused.
        r = self.declare(reason="power cut")
        self.assertEqual(r.returncode, 1)
        self.assertIn("allot: already_exists: ", r.stderr)
        r = self.declare(incident="lrd-overlap", part="", window=(f"{DAY}T11:00:00Z",
                                                                  f"{DAY}T11:30:00Z"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("allot: failed_precondition: ", r.stderr)
        self.assertIn(f'overlaps incident "{self.ID}"', r.stderr)
        self.assertEqual(self.credits(), "3 18000000")

        # The running job reports 1,800 s more (7,200 s, 28,800,000 units): it is charged
        # the difference, 7,200,000, and never credited again by this incident.
        resp = self.ingest(SITE, [lrd("i3", "11:30:00", 4, 7200, "RUNNING")], "leonardo-2")
        self.assertEqual(resp["results"][0]["chargedUnits"], "7200000")
        self.assertEqual(self.credits(), "3 18000000")

        # show: the incident, then its credits as a table; as the auditor too.
        out = self.ok("incident", "show", "--incident-id", self.ID, cert="auditor")
        self.assertIn(f"incident_id: {self.ID}\n", out)
        self.assertIn("credited_units: 18000000\n", out)
        rows = [ln.split() for ln in out.splitlines() if ln.startswith("leonardo ")]
        self.assertEqual([(r[1], r[5], r[6], r[7]) for r in rows], [
            ("i1", "3600", "3600", "3600000"), ("i2", "7200", "3600", "14400000"),
            ("i3", "5400", "1800", "21600000")])
        self.assertEqual([r[8] for r in rows], ["3600000", "7200000", "7200000"])
        out = self.ok("incident", "list", cert="auditor")
        self.assertRegex(out, rf"(?m)^{re.escape(self.ID)}\s+leonardo\s+boost_usr_prod\s")
        r = self.cli("incident", "show", "--incident-id", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn('allot: not_found: incident "nope" does not exist', r.stderr)
        r = self.cli("incident", "list", cert="project-acme-vision")
        self.assertIn("allot: permission_denied: ", r.stderr)

    def test_3_site_wide_incident(self):
        # JUPITER, every partition, 10:00 to 11:00: j1 10:30 + 3,600 s on one node
        # (4 GH200, 14,400,000 units) overlaps it 1,800 s: 7,200,000 units.
        out = self.ok("--format", "json", "incident", "declare", "--incident-id", "jup-1",
                      "--site", "jupiter", "--starts-at", WINDOW[0],
                      "--ends-at", f"{DAY}T11:00:00Z", "--reason", "file system hang")
        self.assertIn('"creditedUnits":"7200000"', out)
        self.assertIn('"jobsCredited":1,', out)


class ThresholdEvents(AllotTestCase):
    """trial is granted 10 GPU-hours (36,000,000 units) on LEONARDO: 50, 80 and 100 %
    are 18,000,000, 28,800,000 and 36,000,000 units.

      batch 1  t1 1 GPU 14,400 s:        14,400,000, 40 %:  nothing
      batch 2  t1 at 18,000 s:           18,000,000, 50 %:  50
      batch 3  t2 4 GPUs 3,600 s:        32,400,000, 90 %:  80
      batch 3 again (a replay):          nothing
      batch 4  t3 1 GPU 3,600 s:         36,000,000, 100 %: 100
      batch 5  t3 at 7,200 s:            39,600,000, 110 %: nothing
    """

    def test_thresholds_fire_once_each_in_order(self):
        self.create_project("trial", allocations=((SITE, (), 10),))
        make_cert("project-trial")
        self.create_principal("project-trial", "ROLE_PROJECT", "trial")
        mark = len(self.daemon.lines())

        def send(batch, *records):
            resp = self.ingest(SITE, [lrd(*r, account="trial") for r in records], batch)
            self.assertEqual(resp["rejected"], 0, resp)

        def events():
            return self.psql("SELECT coalesce(string_agg(threshold_pct || ':' || used_units, ' ' "
                             "ORDER BY e.id), '') FROM allot.events e JOIN allot.projects p "
                             "ON p.id = e.project_id WHERE p.name = 'trial'")

        send("t-1", ("t1", "08:00:00", 1, 14400))
        self.assertEqual(events(), "")
        send("t-2", ("t1", "08:00:00", 1, 18000))
        self.assertEqual(events(), "50:18000000")
        send("t-3", ("t2", "09:00:00", 4, 3600))
        send("t-3", ("t2", "09:00:00", 4, 3600))
        self.assertEqual(events(), "50:18000000 80:32400000")
        send("t-4", ("t3", "10:00:00", 1, 3600))
        send("t-5", ("t3", "10:00:00", 1, 7200))
        self.assertEqual(events(), "50:18000000 80:32400000 100:36000000")

        # One log line each, in order, by this allotd.
        lines = []
        for pct in (50, 80, 100):
            lines.append(self.daemon.wait_log(
                rf'event \d+: project "trial" crossed {pct} % of its grant', since=mark))
        self.assertEqual(lines, sorted(lines, key=self.daemon.lines().index))
        self.assertIn("18000000 of 36000000 units used (50.00 %)", lines[0])
        st, body = self.daemon.healthz("/metrics")
        self.assertEqual(st, 200)
        text = body.decode() if isinstance(body, bytes) else body
        for pct in (50, 80, 100):
            self.assertIn(f'allot_events_total{{kind="threshold",threshold="{pct}"}} 1\n', text)

        # The project lists its own events, through the RPC and the CLI; not another's.
        got = self.call("Events/List", {"project": "trial"}, cert="project-trial")["events"]
        self.assertEqual([(e["thresholdPct"], e["usedUnits"], e["grantedUnits"], e["usedPct"])
                          for e in got],
                         [(50, "18000000", "36000000", 50.0), (80, "32400000", "36000000", 90.0),
                          (100, "36000000", "36000000", 100.0)])
        r = self.cli("events", "--project", "trial", cert="project-trial")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
        self.assertEqual([(x[1], x[2], x[3]) for x in rows],
                         [("trial", "threshold", "50"), ("trial", "threshold", "80"),
                          ("trial", "threshold", "100")])
        self.assertTwirpError(self.twirp("Events/List", {"project": "acme-llm"},
                                         cert="project-trial"), "permission_denied", "acme-llm")
        self.assertTwirpError(self.twirp("Events/List", {"project": "trial", "limit": 5000}),
                              "invalid_argument", "limit")
        self.assertEqual(self.psql("SELECT allot.check_project_usage()"), "t")


class Thresholds(AllotTestCase):
    """The thresholds set through the API and the CLI (0018), and the balance's
    movements.

    set1 is granted 10 GPU-hours (36,000,000 units). With the thresholds set to 30
    and 90 %, t1 (1 GPU, 14,400 s: 14,400,000 units, 40 %) crosses 30 % only.
    """

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"allot {' '.join(args)}: {r.stderr}")
        return r.stdout

    def table(self):
        return self.psql("SELECT string_agg(percent::text, ' ' ORDER BY percent) "
                         "FROM allot.event_thresholds")

    def test_set_list_and_fire(self):
        make_cert("project-set1")
        self.create_project("set1", allocations=((SITE, (), 10),))
        self.create_principal("project-set1", "ROLE_PROJECT", "set1")
        self.assertEqual(self.call("Events/ListThresholds", {}, cert="project-set1"),
                         {"percents": [50, 80, 100]})
        out = self.ok("--format", "json", "events", "set-thresholds", "--percents", "90",
                      "--percents", "30")
        self.assertEqual(json.loads(out), {"percents": [30, 90]})
        self.assertEqual(self.table(), "30 90")
        self.assertIn("30", self.ok("events", "list-thresholds", cert="project-set1"))

        # Refused: a project principal, a percent out of range, a repeat; nothing changes.
        r = self.cli("events", "set-thresholds", "--percents", "10", cert="project-set1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("permission_denied", r.stderr)
        self.assertTwirpError(self.twirp("Events/SetThresholds", {"percents": [0]}),
                              "invalid_argument", 'threshold "0" is not a percent')
        self.assertTwirpError(self.twirp("Events/SetThresholds", {"percents": [40, 40]}),
                              "invalid_argument", "threshold 40 is given twice")
        self.assertEqual(self.table(), "30 90")

        self.ingest(SITE, [lrd("t1", "08:00:00", 1, 14400, account="set1")], "set1-1")
        self.assertEqual(self.psql(
            "SELECT string_agg(threshold_pct::text, ' ' ORDER BY e.id) FROM allot.events e "
            "JOIN allot.projects p ON p.id = e.project_id WHERE p.name = 'set1'"), "30")

        # The balance's movements: granted 10, used 4; a refund of 1.5 GPU-hours gives
        # back 5,400,000 units: used 4.00, refunded 1.50, available 7.50.
        alloc = self.psql("SELECT a.id FROM allot.allocations a JOIN allot.projects p "
                          "ON p.id = a.project_id WHERE p.name = 'set1'")
        self.ok("allocation", "refund", alloc, "--gpu-hours", "1.5", "--reason", "node failed",
                "--id", "ref-set1")
        out = self.ok("balance", "--project", "set1", cert="project-set1")
        moved = out.split("movements (GPU-h):\n", 1)[1].splitlines()
        self.assertEqual(moved[0].split(), ["allocation", "granted", "added", "used", "refunded",
                                            "credited", "expired"])
        self.assertEqual(moved[1].split(), [alloc, "10.00", "0.00", "4.00", "1.50", "0.00",
                                            "0.00"])
        self.assertEqual(moved[2].split(), ["total", "10.00", "0.00", "4.00", "1.50", "0.00",
                                            "0.00"])
        b = self.balance("set1")
        self.assertEqual(b["movements"]["usedUnits"], "14400000")
        self.assertEqual(b["movements"]["refundedUnits"], "5400000")
        self.assertEqual(b["total"]["availableUnits"], str(36_000_000 - 14_400_000 + 5_400_000))


class EventsAcrossDaemons(TwoDaemonCase):
    """Two allotd on one database: each event is logged and counted by one of them.

    duo is granted 1 GPU-hour (3,600,000 units); one batch of t1, 1 GPU for 4,000 s
    (4,000,000 units, 111 %), crosses 50, 80 and 100 % at once.
    """

    def test_each_event_announced_once(self):
        self.create_project("duo", allocations=((SITE, (), 1),))
        self.ingest(SITE, [lrd("t1", "08:00:00", 1, 4000, account="duo")], "duo-1")
        self.assertEqual(self.psql(
            "SELECT string_agg(threshold_pct::text, ' ' ORDER BY id) FROM allot.events"),
            "50 80 100")
        rx = re.compile(r'event \d+: project "duo" crossed (\d+) %')

        def announced():
            return sorted(int(m.group(1)) for d in (self.daemon, self.other)
                          for ln in d.lines() for m in [rx.search(ln)] if m)
        deadline = time.monotonic() + 10
        while announced() != [50, 80, 100] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(announced(), [50, 80, 100])
        self.assertEqual(self.psql("SELECT count(*) FROM allot.events WHERE announced_at IS NULL"),
                         "0")
        for pct in (50, 80, 100):
            total = 0
            for d in (self.daemon, self.other):
                st, body = d.healthz("/metrics")
                self.assertEqual(st, 200)
                text = body.decode() if isinstance(body, bytes) else body
                m = re.search(rf'^allot_events_total{{kind="threshold",threshold="{pct}"}} (\d+)$',
                              text, re.M)
                total += int(m.group(1)) if m else 0
            self.assertEqual(total, 1, f"{pct} %: counted {total} times over both allotd")
        # Both listen: after the first, neither logs the events again.
        self.assertEqual(announced(), [50, 80, 100])


if __name__ == "__main__":
    unittest.main()
