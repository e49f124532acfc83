"""A real Slurm obeying Allot: Debian's slurmctld and slurmd (22.05) on one machine,
with Allot's job_submit.lua and allot-slurm as PrologSlurmctld and EpilogSlurmctld,
against a real allotd.

The cluster's partition is LEONARDO's boost_usr_prod (GPU share, 8 cores a GPU,
weight 1000): a job of 2 GPUs and 1 CPU occupies 2 GPUs, 2,000 units a second.
  funded  10 GPU-hours; its job (2 GPUs, 5 minutes: a 600 GPU-second, 600,000-unit
          hold) runs, holds its lien while it runs, and is charged its run time x 2
          GPUs x 1,000 units when it ends; the rest of the hold goes back.
  broke   1 GPU-hour; a job of 4 GPUs for an hour (4 GPU-hours) is refused at sbatch
          with Allot's reason and figures.
The whole cluster and allotd run in a network namespace of the test's own
(slurmlib), since slurmctld and slurmd listen on every address.
"""

import os
import re
import subprocess
import time
import unittest

import slurmlib
from collectlib import Collector
from harness import AllotTestCase, binary, cert_files, certs_dir, free_port, job

SITE, PART = "leonardo", "boost_usr_prod"
MISSING = slurmlib.missing()


def allot_slurm():
    return binary("clients/slurm/allot-slurm")


class SlurmCase(AllotTestCase):
    """allotd and a Slurm cluster wired to it, in a network namespace of their own."""

    accounting = False
    # Fair share recomputed every second, for allot-slurm-sync's test.
    config = {"fairshare_period_s": 1}

    @classmethod
    def setUpClass(cls):
        cls.ns = slurmlib.Namespace()
        cls.cluster = None
        try:
            super().setUpClass()
            cls.setUpCluster()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def setUpCluster(cls):
        here = os.path.dirname(os.path.abspath(__file__))
        folder = os.path.join(cls.workdir, "slurm")
        os.makedirs(folder)
        crt, key = cert_files("scheduler-leonardo")
        cls.slurm_conf = os.path.join(folder, "allot-slurm.conf")
        with open(cls.slurm_conf, "w") as f:
            f.write(f"server = https://127.0.0.1:{cls.daemon.port}\n"
                    f"site = {SITE}\n"
                    f"tls_cert = {crt}\ntls_key = {key}\n"
                    f"tls_ca = {os.path.join(certs_dir(), 'ca.crt')}\n"
                    "timeout_ms = 3000\nunreachable = refuse\n")
        with open(os.path.join(here, "..", "..", "clients", "slurm", "job_submit.lua")) as f:
            lua = f.read().replace("@ALLOT_SLURM@", allot_slurm()) \
                          .replace("@ALLOT_SLURM_CONF@", cls.slurm_conf)
        cmd = f"{allot_slurm()} -c {cls.slurm_conf}"
        cls.cluster = slurmlib.SlurmCluster(folder, PART, job_submit=lua,
                                            prolog=f"{cmd} prolog", epilog=f"{cmd} epilog",
                                            accounting=cls.accounting)
        cls.cluster.start()

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.cluster is not None:
                cls.cluster.stop()
            if getattr(cls, "daemon", None) is not None:
                super().tearDownClass()
        finally:
            cls.ns.leave()

    def sbatch(self, *args):
        return self.cluster.run("sbatch", "--parsable", *args, check=False)

    def wait_for(self, what, cond, timeout=30):
        """Polls cond (Slurm's daemons act on their own schedule) until it holds."""
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail(f"{what} did not happen in {timeout} s\n{self.cluster.logs()}")
            time.sleep(0.1)


@unittest.skipIf(MISSING, f"Slurm is not installed here ({', '.join(MISSING)} missing)")
class SlurmObeysAllot(SlurmCase):

    def test_1_refused_at_submission(self):
        self.create_project("broke", allocations=((SITE, (), 1),))
        before = self.counts()
        r = self.sbatch("-A", "broke", "--gres=gpu:4", "-t", "60", "--wrap", "true")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        # Quote's own reason and figures: 4 GPUs x 1 hour against 1 GPU-hour.
        self.assertIn('allot: refused: project of account "broke": exhausted: the job needs '
                      '4.00 GPU-h, 1.00 are available\n', r.stderr)

        r = self.sbatch("-A", "nobody", "--gres=gpu:1", "-t", "5", "--wrap", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("allot: refused:", r.stderr)
        self.assertIn("nobody", r.stderr)

        r = self.sbatch("-A", "acme'x", "--gres=gpu:1", "-t", "5", "--wrap", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("characters Allot does not accept", r.stderr)

        r = self.sbatch("--gres=gpu:1", "-t", "5", "--wrap", "true")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("names no account", r.stderr)
        self.assertEqual(self.counts(), before, "a refused submission changed the books")
        self.assertEqual(self.cluster.run("squeue", "-h").stdout.strip(), "")

    def test_2_funded_job_holds_its_lien_and_is_charged(self):
        self.create_project("funded", allocations=((SITE, (), 10),))
        go = os.path.join(self.cluster.dir, "go")
        r = self.sbatch("-A", "funded", "--gres=gpu:2", "-n", "1", "-t", "5",
                        "--wrap", f"while [ ! -e {go} ]; do sleep 0.1; done; sleep 2")
        self.assertEqual(r.returncode, 0, r.stderr)
        job_id = r.stdout.strip().split(";")[0]
        lien = f"slurm-{SITE}-{job_id}"

        # The job runs (after PrologSlurmctld, which held 2 GPUs x 300 s = 600,000
        # units) and holds its lien while it runs.
        self.wait_for("the job's start",
                      lambda: self.cluster.job(job_id)["JobState"] == "RUNNING")
        self.assertEqual(self.psql(
            f"SELECT held || ' ' || status FROM allot.liens WHERE id = '{lien}'"),
            "600000 active")

        with open(go, "w"):
            pass
        self.wait_for("the job's end", lambda: self.cluster.job(job_id)["JobState"] == "COMPLETED")
        self.wait_for("the epilog's settlement", lambda: self.psql(
            f"SELECT status FROM allot.liens WHERE id = '{lien}'") == "settled")
        job = self.cluster.job(job_id)
        ran = slurm_seconds(job["RunTime"])
        self.assertGreaterEqual(ran, 2)
        charged = int(self.psql(
            f"SELECT charged_units FROM allot.job_usage WHERE site = '{SITE}' "
            f"AND job_id = '{job_id}' AND step = ''"))
        self.assertEqual(charged, ran * 2 * 1000, f"RunTime {job['RunTime']}")
        b = self.balance("funded")["total"]
        self.assertEqual(b["chargedUnits"], str(charged))
        self.assertEqual(b["pendingUnits"], "0", "the rest of the hold went back")
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_3_when_allot_cannot_be_reached(self):
        """The site's choice when Allot does not answer: unreachable = refuse or admit."""
        dead = free_port()
        with open(self.slurm_conf) as f:
            text = f.read().replace(f":{self.daemon.port}\n", f":{dead}\n")
        argv = ["admit", "--account", "funded", "--user", "ada", "--partition", PART,
                "--gpus", "1", "--time-limit-s", "600"]
        for policy, rc, line in (("refuse", 3, "refused: Allot could not be reached (unavailable)"),
                                 ("admit", 0, "ok: Allot could not be reached (unavailable)")):
            path = os.path.join(self.workdir, f"{policy}.conf")
            with open(path, "w") as f:
                f.write(text.replace("unreachable = refuse", f"unreachable = {policy}"))
            r = subprocess.run([allot_slurm(), "-c", path, *argv], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual((r.returncode, r.stdout.strip()), (rc, line), r.stderr)
        path = os.path.join(self.workdir, "bad.conf")
        with open(path, "w") as f:
            f.write(text + "unreachable = maybe\n")
        r = subprocess.run([allot_slurm(), "-c", path, *argv], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn('unreachable must be admit or refuse, not "maybe"', r.stderr)

    def test_4_lease_while_allot_is_away(self):
        """A lease of 1 GPU-hour (3,600,000 units) for project leasy. With allotd
        stopped, jobs of 1 GPU for a 20-minute limit (1,200,000 units each against the
        lease) are admitted three times, and the fourth is refused: the lease is spent.
        When allotd is back, `allot-slurm lease` replays the journal: each job is in
        the ledger once, charged its RunTime x 1,000 units, drawn from the lease."""
        self.create_project("leasy", allocations=((SITE, (), 10),))
        state = os.path.join(self.workdir, "slurm-state")
        with open(self.slurm_conf, "a") as f:
            f.write(f"state_dir = {state}\nlease_projects = leasy\n"
                    f"lease_partition = {PART}\nlease_gpu_hours = 1\n")
        try:
            self._lease_run(state)
        finally:
            with open(self.slurm_conf) as f:
                text = f.read()
            with open(self.slurm_conf, "w") as f:
                f.write(text.split("state_dir = ")[0])

    def lease(self):
        return subprocess.run([allot_slurm(), "-c", self.slurm_conf, "lease"],
                              capture_output=True, text=True, timeout=60)

    def _lease_run(self, state):
        r = self.lease()
        self.assertEqual(r.returncode, 0, r.stderr)
        first = self.psql("SELECT id || ' ' || held || ' ' || status FROM allot.liens "
                          "WHERE kind = 'campaign' AND id LIKE 'lease-leonardo-leasy-%'")
        self.assertRegex(first, r"^lease-leonardo-leasy-\d+ 3600000 active$")
        self.assertEqual(self.balance("leasy")["total"]["availableUnits"],
                         str(36_000_000 - 3_600_000))

        self.daemon.stop()
        jobs = []
        try:
            for i in range(3):
                r = self.sbatch("-A", "leasy", "--gres=gpu:1", "-n", "1", "-t", "20",
                                "--wrap", "sleep 1")
                self.assertEqual(r.returncode, 0, f"job {i + 1}: {r.stderr}")
                job_id = r.stdout.strip().split(";")[0]
                self.wait_for(f"job {job_id}'s end", lambda: self.cluster.job(job_id)[
                    "JobState"] == "COMPLETED")
                jobs.append(job_id)
            r = self.sbatch("-A", "leasy", "--gres=gpu:1", "-n", "1", "-t", "20",
                            "--wrap", "sleep 1")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn('allot: refused: Allot could not be reached; the lease of project '
                          '"leasy" has 0.00 GPU-hours left, the job needs 0.33', r.stderr)
            with open(os.path.join(state, "journal")) as f:
                kinds = [ln.split()[0] for ln in f]
            self.assertEqual(kinds, ["start", "end"] * 3)
        finally:
            self.daemon.start()

        before = self.counts()
        r = self.lease()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("replayed 6 journal entries", r.stderr)
        with open(os.path.join(state, "journal")) as f:
            self.assertEqual(f.read(), "")
        charged = 0
        for job_id in jobs:
            ran = slurm_seconds(self.cluster.job(job_id)["RunTime"])
            self.assertEqual(self.psql(
                f"SELECT charged_units || ' ' || count(*) OVER () FROM allot.job_usage "
                f"WHERE site = '{SITE}' AND job_id = '{job_id}' AND step = ''"),
                f"{ran * 1000} 1")
            self.assertEqual(self.psql(
                f"SELECT status || ' ' || campaign FROM allot.liens "
                f"WHERE id = 'slurm-{SITE}-{job_id}'"), f"settled {first.split()[0]}")
            charged += ran * 1000
        b = self.balance("leasy")["total"]
        self.assertEqual(b["chargedUnits"], str(charged))
        # The old lease was released and a new one of 1 GPU-hour holds.
        self.assertEqual(self.psql(
            f"SELECT status FROM allot.liens WHERE id = '{first.split()[0]}'"), "released")
        self.assertEqual(self.psql(
            "SELECT count(*) || ' ' || sum(held) FROM allot.liens WHERE kind = 'campaign' "
            "AND id LIKE 'lease-leonardo-leasy-%' AND status = 'active'"), "1 3600000")
        self.assertEqual(b["availableUnits"], str(36_000_000 - charged - 3_600_000))

        # Again: nothing to replay, the lease is fresh: nothing changes.
        after = self.counts()
        r = self.lease()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.counts(), after)
        self.assertNotEqual(before, after)
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_5_sync_puts_fair_share_into_site_factors(self):
        """hot and cold hold 100 GPU-hours each; hot has used 40 of them. After
        allot-slurm-sync, hot's pending job has a lower site factor than cold's, each
        its pair's combined factor x site_factor_max (100,000)."""
        self.create_project("hot", allocations=((SITE, (), 100),))
        self.create_project("cold", allocations=((SITE, (), 100),))
        self.ingest(SITE, [job("h1", "2026-11-20T08:00:00Z", "hot", PART, 4, 32, 4000, 1,
                               36000)], "hot-usage")

        def factors():
            got = self.call("FairShare/GetPriorities", {"site": SITE, "pairs": [
                {"account": "hot", "user": "root"}, {"account": "cold", "user": "root"}]})
            hot, cold = got["priorities"]
            return (hot["combined"], cold["combined"]) if hot["combined"] < cold["combined"] \
                else None
        hot_f, cold_f = self.wait_for("the recompute that sees hot's use", factors)

        go = os.path.join(self.cluster.dir, "go-sync")
        r = self.sbatch("-A", "cold", "-n", "2", "--gres=gpu:1", "-t", "5", "--wrap",
                        f"while [ ! -e {go} ]; do sleep 0.1; done")
        self.assertEqual(r.returncode, 0, r.stderr)
        blocker = r.stdout.strip().split(";")[0]
        try:
            self.wait_for("the blocker's start",
                          lambda: self.cluster.job(blocker)["JobState"] == "RUNNING")
            ids = {}
            for acct in ("hot", "cold"):
                r = self.sbatch("-A", acct, "-n", "1", "--gres=gpu:1", "-t", "5", "--wrap", "true")
                self.assertEqual(r.returncode, 0, r.stderr)
                ids[acct] = r.stdout.strip().split(";")[0]
            sync = subprocess.run([binary("clients/slurm/allot-slurm-sync"), "-c",
                                   self.slurm_conf, "--once"], capture_output=True, text=True,
                                  timeout=60, env=self.cluster.env)
            self.assertEqual(sync.returncode, 0, sync.stderr)
            self.assertIn("2 pending jobs, 2 site factors set", sync.stderr)
            site = {}
            for line in self.cluster.run("sprio", "-h", "-o", "%i %S").stdout.splitlines():
                job_id, factor = line.split()
                site[job_id] = int(factor)
            self.assertEqual(site[ids["hot"]], round(hot_f * 100000))
            self.assertEqual(site[ids["cold"]], round(cold_f * 100000))
            self.assertLess(site[ids["hot"]], site[ids["cold"]])
        finally:
            with open(go, "w"):
                pass
        self.wait_for("the queue to drain",
                      lambda: self.cluster.run("squeue", "-h").stdout.strip() == "")


@unittest.skipIf(slurmlib.missing(accounting=True),
                 "slurmdbd or MariaDB is not installed here "
                 f"({', '.join(slurmlib.missing(accounting=True))} missing)")
class SlurmAccountingChain(SlurmCase):
    """The whole chain with real accounting: slurmdbd on a private MariaDB, and
    allot-collect polling the real sacct. The job the prolog and epilog charged is
    charged once: the collector's sacct record of it, the same job at the same
    elapsed, adds nothing."""

    accounting = True

    def test_sacct_record_charged_once(self):
        self.create_project("chain", allocations=((SITE, (), 10),))
        c = self.cluster
        c.run("sacctmgr", "-i", "add", "account", "chain")
        c.run("sacctmgr", "-i", "add", "user", "root", "account=chain")
        r = self.sbatch("-A", "chain", "--gres=gpu:2", "-n", "1", "-t", "5", "--wrap", "sleep 2")
        self.assertEqual(r.returncode, 0, r.stderr)
        job_id = r.stdout.strip().split(";")[0]
        lien = f"slurm-{SITE}-{job_id}"
        self.wait_for("the epilog's settlement", lambda: self.psql(
            f"SELECT status FROM allot.liens WHERE id = '{lien}'") == "settled")
        settled = int(self.psql(
            f"SELECT charged_units FROM allot.job_usage WHERE site = '{SITE}' "
            f"AND job_id = '{job_id}' AND step = ''"))
        ran = slurm_seconds(c.job(job_id)["RunTime"])
        self.assertEqual(settled, ran * 2 * 1000)

        # sacct knows the job once slurmctld has written it to slurmdbd (a fixed cycle).
        def sacct_done():
            out = c.run("sacct", "-n", "-P", "-X", "-j", job_id, "-o",
                        "State,ElapsedRaw,AllocTRES", check=False).stdout.strip()
            return out if out.startswith("COMPLETED") else None
        row = self.wait_for("sacct's record", sacct_done, timeout=30).split("|")
        self.assertEqual(int(row[1]), ran, f"sacct's elapsed against RunTime: {row}")
        self.assertIn("gres/gpu=2", row[2])

        col = Collector(self.workdir, self.daemon.port, "sacct-chain",
                        sacct_command=c.sacct_wrapper(), sacct_interval_s=1,
                        sacct_window_s=3600, timezone="UTC")
        col.start()
        try:
            # The record of the job's batch step is new to Allot: it shows that the
            # collector's batch arrived. The job's own record, at the elapsed the
            # epilog charged, is a duplicate.
            self.wait_for("the collector's batch", lambda: self.psql(
                f"SELECT count(*) FROM allot.job_usage WHERE site = '{SITE}' "
                f"AND job_id = '{job_id}' AND step = 'batch'") == "1")
            rx = re.compile(r"sent in \d+ ms: 0 charged, 1 duplicate, 1 recorded, 0 refused")
            self.wait_for("the collector's answer", lambda: any(rx.search(ln)
                                                                 for ln in col.lines()))
        finally:
            col.stop()
        self.assertEqual(self.psql(
            f"SELECT charged_units FROM allot.job_usage WHERE site = '{SITE}' "
            f"AND job_id = '{job_id}' AND step = ''"), str(settled))
        self.assertEqual(self.balance("chain")["total"]["chargedUnits"], str(settled),
                         "the job was charged once, by the epilog, and sacct added nothing")
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")


def slurm_seconds(text):
    """Slurm's [D-]HH:MM:SS (RunTime) in seconds."""
    days, _, hms = text.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days) if days else 0) * 86400 + h * 3600 + m * 60 + s


if __name__ == "__main__":
    unittest.main()
