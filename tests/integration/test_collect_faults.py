"""allot-collect under faults: allotd killed while the collector sends, PostgreSQL
restarted, the collector killed with a full spool, a spool on a file system that
fills up. After each, every record the collector read is in the database, nothing is
charged twice, and the balance equals the one worked out here from the input.

The input and its charge: collectlib.make_input.
"""

import os
import subprocess
import tempfile
import time
import types
import unittest

from collectlib import GRANT_HOURS, SITE, Collector, feed, make_input
from harness import AllotTestCase, Daemon, PgCluster, psql, standard_setup, subject, twirp

class FaultCase(AllotTestCase):
    """A fresh project with a grant on leonardo per test, and its checks."""

    project = None

    def setUp(self):
        super().setUp()
        self.create_project(self.project, allocations=((SITE, (), GRANT_HOURS),))

    def assertBooks(self, want_units, njobs, acked_batches=None, daemon=None):
        """The database holds each job once, charged exactly want_units in all."""
        db_psql = self.psql if daemon is None else \
            (lambda sql: psql(sql, daemon.db, daemon.pg))
        rows = db_psql("SELECT count(*), count(DISTINCT job_id) FROM allot.job_usage "
                       f"WHERE account = '{self.project}'")
        self.assertEqual(rows, f"{njobs}|{njobs}")
        bal = (self.balance(self.project) if daemon is None else
               _balance(daemon, self.project))
        self.assertEqual(int(bal["total"]["chargedUnits"]), want_units)
        self.assertEqual(int(bal["total"]["grantedUnits"]), GRANT_HOURS * 3_600_000)
        if acked_batches is not None:
            n = int(db_psql(f"SELECT count(*) FROM allot.ingest_batches WHERE site = '{SITE}'"))
            self.assertEqual(n, acked_batches,
                             "a batch was sent under two ids, or one never arrived")


def _balance(daemon, project):
    st, _, body = twirp(daemon.port, "Ledger/GetBalance", {"project": project})
    assert st == 200, body
    return body


class AllotdKilled(FaultCase):
    """allotd SIGKILLed while the collector sends, then started again."""

    project = "faults-kill"

    def test_sigkill_allotd_while_sending(self):
        lines, want = make_input(self.project, 400)
        fifo = os.path.join(self.workdir, "kill.fifo")
        os.mkfifo(fifo)
        col = Collector(self.workdir, self.port, "kill", input_file=fifo)
        col.start()
        try:
            writer = feed(fifo, lines)
            col.wait_metrics(lambda m: m['allot_collect_batches_acked_total{kind="jobs"}'] >= 3,
                             what="first acknowledgements")
            self.daemon.proc.kill()
            self.daemon.proc.wait(10)
            self.daemon.log.close()
            self.daemon.proc = None
            # The collector keeps reading and spooling while allotd is away.
            m = col.wait_metrics(
                lambda m: m['allot_collect_send_failures_in_a_row{kind="jobs"}'] >= 2 and
                m['allot_collect_spool_batches{kind="jobs"}'] >= 2, what="a backlog")
            self.assertGreater(m['allot_collect_spool_oldest_age_seconds{kind="jobs"}'], 0)
            self.daemon.start()
            writer.join(60)
            m = col.wait_drained(len(lines))
            self.assertEqual(m['allot_collect_records_acked_total{kind="jobs"}'], len(lines))
            self.assertEqual(m['allot_collect_batches_rejected_total{kind="jobs"}'], 0)
            col.wait_log(r"jobs batches go through again")
            self.assertEqual(col.spool_files(), [])
            self.assertBooks(want, 400,
                             int(m['allot_collect_batches_acked_total{kind="jobs"}']))
            self.assertEqual(col.stop(), 0)
        finally:
            if col.proc is not None:
                col.kill()
        self.assertEqual([e for e in col.errors()], [])


class PostgresRestarted(AllotTestCase):
    """PostgreSQL restarted under allotd while the collector sends: its own cluster."""

    start_daemon = False
    standard = False
    project = "faults-pg"

    def test_postgres_restart_while_sending(self):
        cluster = PgCluster(os.path.join(self.workdir, "pg2"))
        pg = cluster.start()
        d = col = None
        try:
            psql("CREATE DATABASE allot", pg=pg)
            d = Daemon(self.workdir, "allot", pg=pg, db_reconnect_max_s=1)
            self.assertEqual(d.run("--migrate").returncode, 0)
            d.add_principal(subject("admin"), "admin")
            d.allowed.append(r".")  # a restart of PostgreSQL is logged as errors
            d.start()
            standard_setup(types.SimpleNamespace(daemon=d))
            for m, b in (("Admin/CreateProject", {"name": self.project,
                                                  "organization": "acme",
                                                  "description": "faults"}),
                         ("Admin/CreateAllocation", {
                             "project": self.project, "site": SITE, "resources": [],
                             "gpuHours": str(GRANT_HOURS),
                             "startsAt": "2024-01-01T00:00:00Z",
                             "endsAt": "2028-01-01T00:00:00Z",
                             "transferId": "grant:faults-pg"})):
                st, _, body = twirp(d.port, m, b)
                self.assertEqual(st, 200, body)
            lines, want = make_input(self.project, 300)
            fifo = os.path.join(self.workdir, "pg.fifo")
            os.mkfifo(fifo)
            col = Collector(self.workdir, d.port, "pg", input_file=fifo)
            col.start()
            writer = feed(fifo, lines, chunk=20, pause=0.03)
            col.wait_metrics(lambda m: m['allot_collect_batches_acked_total{kind="jobs"}'] >= 2,
                             what="first acknowledgements")
            cluster.stop()
            col.wait_metrics(lambda m: m['allot_collect_send_failures_total{kind="jobs"}'] >= 2,
                             what="failed sends while PostgreSQL is down")
            cluster.start()
            writer.join(60)
            m = col.wait_drained(len(lines))
            self.assertEqual(m['allot_collect_records_acked_total{kind="jobs"}'], len(lines))
            self.assertEqual(m['allot_collect_batches_rejected_total{kind="jobs"}'], 0)
            n = int(psql(f"SELECT count(*) FROM allot.ingest_batches WHERE site = '{SITE}'",
                         "allot", pg))
            self.assertEqual(n, int(m['allot_collect_batches_acked_total{kind="jobs"}']))
            rows = psql("SELECT count(*), count(DISTINCT job_id) FROM allot.job_usage "
                        f"WHERE account = '{self.project}'", "allot", pg)
            self.assertEqual(rows, "300|300")
            bal = _balance(d, self.project)
            self.assertEqual(int(bal["total"]["chargedUnits"]), want)
            self.assertEqual(col.stop(), 0)
            self.assertEqual(col.errors(), [])
        finally:
            if col is not None and col.proc is not None:
                col.kill()
            if d is not None:
                d.stop()
            cluster.stop()


class CollectorKilled(FaultCase):
    """The collector SIGKILLed with a full spool (allotd down), then started again."""

    project = "faults-spool"

    def test_sigkill_collector_with_full_spool(self):
        lines, want = make_input(self.project, 500)
        path = os.path.join(self.workdir, "spool-input.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.daemon.stop()
        col = Collector(self.workdir, self.port, "spool", input_file=path)
        col.start()
        try:
            m = col.wait_metrics(
                lambda m: m['allot_collect_spool_records{kind="jobs"}'] == len(lines),
                what="every record spooled")
            nbatches = int(m['allot_collect_spool_batches{kind="jobs"}'])
            self.assertEqual(nbatches, -(-len(lines) // 50))
            self.assertEqual(len(col.spool_files()), nbatches)
            self.assertEqual(m['allot_collect_batches_acked_total{kind="jobs"}'], 0)
            col.kill()
            # Started again with no source: only the spool can deliver the records.
            self.daemon.start()
            col.write_config(input_file="")
            col.start()
            col.wait_log(rf"spool .* holds {nbatches} batches \({len(lines)} records\)",
                         since=col.mark)
            m = col.wait_metrics(
                lambda m: m['allot_collect_spool_batches{kind="jobs"}'] == 0,
                what="an empty spool")
            self.assertEqual(m['allot_collect_batches_acked_total{kind="jobs"}'], nbatches)
            self.assertEqual(m['allot_collect_records_acked_total{kind="jobs"}'], len(lines))
            self.assertBooks(want, 500, nbatches)
            # The same records read again make the same batches: replays, nothing new.
            col.stop()
            col.write_config(input_file=path)
            col.start()
            m = col.wait_drained(len(lines))
            self.assertEqual(m['allot_collect_batches_acked_total{kind="jobs"}'], nbatches)
            self.assertBooks(want, 500, nbatches)
            self.assertEqual(col.stop(), 0)
        finally:
            if col.proc is not None:
                col.kill()
        self.assertEqual(col.errors(), [])


class SpoolFilesystemFull(FaultCase):
    """The spool on a 1 MB tmpfs that fills up while allotd is away."""

    project = "faults-full"

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        self.mnt = tempfile.mkdtemp(prefix="spool-fs-", dir=self.workdir)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                            self.mnt], capture_output=True, text=True)
        if r.returncode != 0:
            self.fail(f"could not mount a tmpfs: {r.stderr}")

    def tearDown(self):
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        super().tearDown()

    def test_spool_fills_up_then_drains(self):
        lines, want = make_input(self.project, 5000, first_id=500000)
        fifo = os.path.join(self.workdir, "full.fifo")
        os.mkfifo(fifo)
        self.daemon.stop()
        col = Collector(self.workdir, self.port, "full", input_file=fifo,
                        spool_dir=os.path.join(self.mnt, "spool"), spool_max_bytes=0)
        col.start()
        try:
            writer = feed(fifo, lines, chunk=200, pause=0)
            col.wait_log(r"spool full, reading stopped .*No space left on device", timeout=60)
            m = col.wait_metrics(lambda m: m["allot_collect_spool_full"] == 1, what="full")
            spooled = m['allot_collect_spool_records{kind="jobs"}']
            self.assertGreater(spooled, 0)
            self.assertLess(spooled, len(lines))
            # Reading stays stopped: nothing more is read while the disk is full.
            time.sleep(1.5)
            m2 = col.metrics()
            self.assertEqual(m2["allot_collect_records_read_total"],
                             m["allot_collect_records_read_total"])
            self.assertEqual(m2["allot_collect_spool_full"], 1)
            self.assertTrue(writer.is_alive(), "the writer should be held back")
            self.daemon.start()
            col.wait_log(r"spool has room again: reading resumes", timeout=60)
            writer.join(120)
            m = col.wait_drained(len(lines), timeout=180)
            self.assertEqual(m['allot_collect_records_acked_total{kind="jobs"}'], len(lines))
            self.assertEqual(m["allot_collect_spool_full"], 0)
            self.assertBooks(want, 5000,
                             int(m['allot_collect_batches_acked_total{kind="jobs"}']))
            self.assertEqual(col.stop(), 0)
        finally:
            if col.proc is not None:
                col.kill()
        self.assertEqual(col.errors(), [])


if __name__ == "__main__":
    unittest.main()
