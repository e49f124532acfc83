"""allot-collect under faults: allotd killed while the collector sends, PostgreSQL
restarted, the collector killed with a full spool, a spool on a file system that
fills up. After each, every record the collector read is in the database, nothing is
charged twice, and the balance equals the one worked out here from the input.

The input is JSON lines of JobRecord (the collector's jsonl format) for leonardo's
boost_usr_prod, where a job of g GPUs with 8 g cores and 1000 g MB occupies g GPUs
(GPU_SHARE, 8 cores and 128000 MB per GPU) at weight 1000: it costs
g * elapsed_s * 1000 units. Each job is reported twice, running at half its time and
completed at its full time (cumulative records: only the latest counts), and some
lines are sent again as they are, so a double charge would show.
"""

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import types
import unittest
import urllib.request

from harness import (AllotTestCase, Daemon, PgCluster, binary, cert_files, certs_dir,
                     free_port, psql, standard_setup, subject)

SITE = "leonardo"
START = "2026-03-02T09:00:00Z"
GRANT_HOURS = 100000


def collect_path():
    return binary(os.path.join("clients", "collect", "allot-collect"))


def make_input(project, njobs, first_id=1000):
    """Lines of input and the charge they imply."""
    lines, want = [], 0
    for i in range(njobs):
        job_id = first_id + i
        g = 1 + i % 4
        elapsed = 600 + 37 * i
        rec = {"jobId": str(job_id), "startTime": START, "account": project,
               "user": "user1", "partition": "boost_usr_prod", "gpus": g, "cpus": 8 * g,
               "memMb": str(1000 * g), "nodes": 1}
        running = dict(rec, elapsedS=str(elapsed // 2), state="RUNNING")
        done = dict(rec, elapsedS=str(elapsed), state="COMPLETED")
        lines.append(json.dumps(running))
        lines.append(json.dumps(done))
        if i % 7 == 0:
            lines.append(json.dumps(done))  # the same line again
        want += g * elapsed * 1000
    return lines, want


class Collector:
    """One allot-collect run daemon with its own configuration, spool and log."""

    def __init__(self, workdir, port, name="collector", **config):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "collect.conf")
        self.logfile = os.path.join(self.dir, "collect.log")
        self.mport = free_port()
        crt, key = cert_files(f"collector-{SITE}")
        self.config = {
            "site": SITE, "server": f"https://127.0.0.1:{port}",
            "tls_cert": crt, "tls_key": key, "tls_ca": os.path.join(certs_dir(), "ca.crt"),
            "spool_dir": os.path.join(self.dir, "spool"),
            "metrics_listen": f"127.0.0.1:{self.mport}", "log_level": "debug",
            "batch_records": 50, "batch_delay_ms": 100, "backoff_base_ms": 50,
            "backoff_max_ms": 400, "spool_retry_s": 1, "send_timeout_s": 10,
        }
        self.config.update(config)
        self.proc = None
        self.write_config()

    def write_config(self, **overrides):
        self.config.update(overrides)
        with open(self.conf, "w") as f:
            for k, v in self.config.items():
                f.write(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n")

    def start(self, timeout=20):
        self.log = open(self.logfile, "ab")
        self.mark = len(self.lines())
        self.proc = subprocess.Popen([collect_path(), "run", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        self.wait_log(r"collecting for site", since=self.mark, timeout=timeout)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()
        self.proc = None

    def stop(self, timeout=30):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.log.close()
        self.proc = None
        return rc

    def lines(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def tail(self, n=30):
        return "\n".join(self.lines()[-n:])

    def wait_log(self, regex, since=0, timeout=20):
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(rx.search(ln) for ln in self.lines()[since:]):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"allot-collect exited with {self.proc.returncode}:\n"
                                     f"{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"no collector log line matching {regex!r}:\n{self.tail()}")

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mport}/metrics",
                                    timeout=5) as r:
            text = r.read().decode()
        out = {}
        for ln in text.splitlines():
            if ln and not ln.startswith("#"):
                k, v = ln.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def wait_metrics(self, pred, timeout=60, what="condition"):
        deadline = time.monotonic() + timeout
        m = {}
        while time.monotonic() < deadline:
            try:
                m = self.metrics()
                if pred(m):
                    return m
            except OSError:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"allot-collect exited with {self.proc.returncode}:\n"
                                     f"{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"collector metrics: no {what} within {timeout} s: {m}\n"
                             f"{self.tail()}")

    def wait_drained(self, nlines, timeout=90):
        """Until every line was read and every batch acknowledged."""
        return self.wait_metrics(
            lambda m: m["allot_collect_records_read_total"] >= nlines and
            m['allot_collect_spool_batches{kind="jobs"}'] == 0 and
            m["allot_collect_held_records"] == 0 and
            m['allot_collect_records_acked_total{kind="jobs"}'] >= nlines,
            timeout, "empty spool")

    def spool_files(self):
        d = self.config["spool_dir"]
        return sorted(f for f in os.listdir(d) if f.endswith(".jobs"))

    def errors(self):
        return [ln for ln in self.lines() if re.search(r" (error|fatal): |Sanitizer|runtime error",
                                                        ln)]


def feed(path, lines, chunk=40, pause=0.02):
    """Writes lines to the FIFO at path a chunk at a time, in a thread; returns it."""
    def run():
        with open(path, "w") as f:
            for i in range(0, len(lines), chunk):
                f.write("\n".join(lines[i:i + chunk]) + "\n")
                f.flush()
                time.sleep(pause)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


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
    from harness import twirp
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
            from harness import twirp
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
