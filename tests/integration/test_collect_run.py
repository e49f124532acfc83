"""allot-collect's daemon and one-shot commands against a real allotd: the sacct
source with its re-read window and the site's time zone, `send` (also piped from
`parse`), batches left for later, a batch refused for good set aside in rejected/,
GPU samples in their own queue, backfill day by day, the configuration check,
SIGHUP and SIGTERM, and the sample configuration and README naming every key.

Charges are worked out here: leonardo's boost_usr_prod occupies
max(gpus, ceil(cores / 8), ceil(mem / 128000 MB)) GPUs at weight 1000, so a job costs
occupied * elapsed_s * 1000 units.
"""

import http.server
import json
import os
import pty
import signal
import stat
import subprocess
import threading
import time

from collectlib import GRANT_HOURS, SITE, Collector, collect_path, make_input
from harness import REPO, AllotTestCase, SCHEMA, cert_files, free_port, twirp

FIELDS = ("JobID|JobIDRaw|Start|End|Account|User|Partition|AllocTRES|NCPUS|NNodes|"
          "ElapsedRaw|State")

FAKE_SACCT = """#!/usr/bin/env python3
# A stand-in for sacct: logs its arguments, prints live.psv for a run relative to
# now, DAY.psv for a backfill day, fails for a day listed in fail.
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(here, "calls.log"), "a") as f:
    f.write(json.dumps({"args": args, "tz": os.environ.get("TZ", "")}) + "\\n")
start = args[args.index("-S") + 1]
name = "live.psv" if start.startswith("now-") else start[:10] + ".psv"
if os.path.exists(os.path.join(here, "fail")) and start[:10] in open(os.path.join(here, "fail")).read():
    sys.exit(3)
p = os.path.join(here, name)
if os.path.exists(p):
    sys.stdout.write(open(p).read())
"""


def psv_row(job, step, start, account, gpus, cpus, mem_mb, elapsed, state, end="Unknown"):
    jid = str(job) if not step else f"{job}.{step}"
    tres = f"billing={cpus},cpu={cpus},gres/gpu={gpus},mem={mem_mb}M,node=1"
    return "|".join([jid, jid, start, end, account, "" if step else "u1",
                     "" if step else "boost_usr_prod", tres, str(cpus), "1", str(elapsed),
                     state])


class CollectCase(AllotTestCase):
    """A fresh project per test (the class's name and a number), granted on leonardo."""

    project = None
    made = 0

    def setUp(self):
        super().setUp()
        if self.project:
            type(self).made += 1
            self.project = f"{type(self).project}-{type(self).made}"
            self.create_project(self.project, allocations=((SITE, (), GRANT_HOURS),))

    def fake_sacct(self, name):
        d = os.path.join(self.workdir, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "sacct")
        with open(path, "w") as f:
            f.write(FAKE_SACCT)
        os.chmod(path, stat.S_IRWXU)
        return d, path

    def calls(self, d):
        try:
            with open(os.path.join(d, "calls.log")) as f:
                return [json.loads(ln) for ln in f]
        except FileNotFoundError:
            return []

    def charged(self, project):
        return int(self.balance(project)["total"]["chargedUnits"])

    def batches(self):
        return int(self.psql(f"SELECT count(*) FROM allot.ingest_batches WHERE site = '{SITE}'"))

    def collect(self, *args, input=None, timeout=120):
        return subprocess.run([collect_path(), *args], input=input, capture_output=True,
                              text=True, timeout=timeout)

    def wait_for(self, pred, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.1)
        self.fail(f"no {what} within {timeout} s")


class SacctSource(CollectCase):
    """sacct run every interval over a window reaching back past the last run."""

    project = "run-sacct"

    def test_sacct_window_timezone_and_rereads(self):
        d, sacct = self.fake_sacct("sacct-live")
        # Rome is UTC+1 on 2 March: sacct's 10:00:00 is 09:00:00Z.
        live = [psv_row(7001, "", "2026-03-02T10:00:00", self.project, 2, 16, 2000, 3600,
                        "COMPLETED", "2026-03-02T11:00:00"),
                psv_row(7001, "batch", "2026-03-02T10:00:00", self.project, 2, 16, 2000,
                        3600, "COMPLETED", "2026-03-02T11:00:00"),
                psv_row(7002, "", "2026-03-02T10:30:00", self.project, 4, 32, 4000, 1800,
                        "RUNNING")]
        with open(os.path.join(d, "live.psv"), "w") as f:
            f.write("\n".join(live) + "\n")
        col = Collector(self.workdir, self.port, "sacct", sacct_command=sacct,
                        sacct_interval_s=1, sacct_window_s=3600, timezone="Europe/Rome")
        col.start()
        try:
            # 7001: 2 GPUs (16 cores / 8 = 2) for 3600 s; 7002: 4 GPUs for 1800 s.
            want = 2 * 3600 * 1000 + 4 * 1800 * 1000
            self.wait_for(lambda: self.charged(self.project) == want, what="the charge")
            self.wait_for(lambda: len(self.calls(d)) >= 3, what="three sacct runs")
            calls = self.calls(d)
            first = calls[0]["args"]
            self.assertEqual(first[:3], ["--parsable2", "--noheader", "--allusers"])
            self.assertEqual(first[3], "--format=" + FIELDS.replace("|", ","))
            self.assertEqual(first[4:], ["-S", "now-3600seconds", "-E", "now"])
            self.assertEqual(calls[0]["tz"], "Europe/Rome")
            # Later runs reach back from the last run's end: a bit more than the window.
            later = int(calls[2]["args"][5][4:-7])
            self.assertGreaterEqual(later, 3600)
            self.assertLessEqual(later, 3600 + 5)
            start = self.psql("SELECT start_time AT TIME ZONE 'UTC' FROM allot.job_usage "
                              "WHERE job_id = '7001' AND step = ''")
            self.assertEqual(start, "2026-03-02 09:00:00")
            # The same output read again is the same batch: replays, one batch stored.
            self.assertEqual(self.batches(), 1)
            self.assertEqual(self.psql("SELECT count(*) FROM allot.job_usage "
                                       f"WHERE account = '{self.project}'"), "3")
            # 7002 ends at 2400 s: only the 600 s more are charged.
            live[2] = psv_row(7002, "", "2026-03-02T10:30:00", self.project, 4, 32, 4000,
                              2400, "COMPLETED", "2026-03-02T11:10:00")
            with open(os.path.join(d, "live.psv"), "w") as f:
                f.write("\n".join(live) + "\n")
            self.wait_for(lambda: self.charged(self.project) == want + 4 * 600 * 1000,
                          what="the final charge")
            self.assertEqual(self.batches(), 2)
            with open(os.path.join(col.config["spool_dir"], "sacct.state")) as f:
                self.assertRegex(f.read(), r"^last_end \d+\n$")
            m = col.metrics()
            self.assertGreaterEqual(m['allot_collect_sacct_runs_total{outcome="ok"}'], 3)
            self.assertEqual(m['allot_collect_sacct_runs_total{outcome="failed"}'], 0)
            self.assertEqual(col.stop(), 0)
        finally:
            if col.proc is not None:
                col.kill()
        self.assertEqual(col.errors(), [])


class SendCommand(CollectCase):
    """allot-collect send: parse, spool, send, wait for the acks."""

    project = "run-send"

    def conf(self, name, **kw):
        return Collector(self.workdir, self.port, name, **kw).conf

    def test_parse_piped_into_send_then_replayed(self):
        before = self.batches()
        rows = ["|".join(FIELDS.split("|")),
                psv_row(8001, "", "2026-03-02T08:00:00", self.project, 1, 8, 64000, 271,
                        "FAILED", "2026-03-02T08:04:31"),
                psv_row(8002, "", "2026-03-02T08:00:00", self.project, 3, 8, 1000, 100,
                        "COMPLETED", "2026-03-02T08:01:40")]
        src = os.path.join(self.workdir, "send.psv")
        with open(src, "w") as f:
            f.write("\n".join(rows) + "\n")
        conf = self.conf("send1", timezone="UTC")
        parsed = self.collect("parse", "--site", SITE, "--format", "sacct", "--timezone",
                              "UTC", src)
        self.assertEqual(parsed.returncode, 0, parsed.stderr)
        r = self.collect("send", "-c", conf, "--format", "jsonl", "-", input=parsed.stdout)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertEqual(r.stdout, "acknowledged: 1 job batches (2 records, 0 refused), "
                         "0 metric batches (0 samples, 0 refused); 0 batches moved to "
                         "rejected/\n")
        # 8001: 1 GPU 271 s; 8002: 3 GPUs 100 s.
        want = 1 * 271 * 1000 + 3 * 100 * 1000
        self.assertEqual(self.charged(self.project), want)
        # The sacct file itself makes the same records, hence the same batch: a replay.
        r = self.collect("send", "-c", conf, "--format", "sacct", src)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.charged(self.project), want)
        self.assertEqual(self.batches() - before, 1)

    def test_partitions_leave_gpp_out(self):
        """MareNostrum5 bills acc through Allot, not its CPU-only gpp: with
        partitions = acc the gpp jobs and their steps are left out and send exits 0;
        without the key allotd refuses them and send exits 1."""
        project = self.project + "-mn5"
        self.create_project(project, allocations=(("marenostrum5", (), GRANT_HOURS),))

        def row(job, step, part, tres, cpus, elapsed):
            jid = str(job) if not step else f"{job}.{step}"
            return "|".join([jid, jid, "2026-03-02T08:00:00", "2026-03-02T09:00:00", project,
                             "" if step else "u1", part, tres, str(cpus), "1", str(elapsed),
                             "COMPLETED"])

        acc = lambda g: f"billing={20 * g},cpu={20 * g},gres/gpu={g},mem={1000 * g}M,node=1"
        gpp = "billing=112,cpu=112,mem=240000M,node=1"
        rows = [FIELDS,
                row(9101, "", "acc", acc(2), 40, 300),
                row(9101, "batch", "", acc(2), 40, 300),
                row(9101, "extern", "", acc(2), 40, 300),
                row(9102, "", "gpp", gpp, 112, 500),
                row(9102, "batch", "", gpp, 112, 500),
                row(9102, "0", "", gpp, 112, 500),
                row(9103, "", "acc", acc(1), 20, 120)]
        src = os.path.join(self.workdir, "mn5.psv")
        with open(src, "w") as f:
            f.write("\n".join(rows) + "\n")
        crt, key = cert_files("collector-marenostrum5")
        conf = self.conf("mn5", site="marenostrum5", tls_cert=crt, tls_key=key, timezone="UTC",
                         partitions="acc")
        r = self.collect("send", "-c", conf, "--format", "sacct", src)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertEqual(r.stdout, "acknowledged: 1 job batches (4 records, 0 refused), "
                         "0 metric batches (0 samples, 0 refused); 0 batches moved to "
                         "rejected/\nskipped: 3 job records and steps of partitions not "
                         "in \"partitions\"\n")
        # acc occupies g GPUs here (20 g cores, 1000 g MB): 2 GPUs 300 s, 1 GPU 120 s.
        self.assertEqual(self.charged(project), (2 * 300 + 1 * 120) * 1000)
        self.assertEqual(int(self.psql(
            "SELECT count(*) FROM allot.job_usage WHERE site = 'marenostrum5' "
            "AND job_id = '9102'")), 0)
        # Without the key: the gpp job is refused (the steps with it), exit 1.
        conf = self.conf("mn5-all", site="marenostrum5", tls_cert=crt, tls_key=key,
                         timezone="UTC")
        r = self.collect("send", "-c", conf, "--format", "sacct", src)
        self.assertEqual(r.returncode, 1, r.stderr + r.stdout)
        self.assertRegex(r.stdout, r"^acknowledged: 1 job batches \(7 records, [1-9]\d* refused\)")
        self.assertEqual(self.charged(project), (2 * 300 + 1 * 120) * 1000)

    def test_bad_input_sends_nothing(self):
        conf = self.conf("send-bad")
        good = json.dumps({"jobId": "1", "startTime": "2026-03-02T08:00:00Z",
                           "account": self.project, "partition": "boost_usr_prod",
                           "gpus": 1, "elapsedS": "10"})
        r = self.collect("send", "-c", conf, "-", input=good + "\n{\"jobId\": 3, oops\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("line 2:", r.stderr)
        self.assertEqual(self.charged(self.project), 0)
        spool = os.path.join(self.workdir, "send-bad", "spool")
        self.assertEqual([f for f in os.listdir(spool) if f.endswith(".jobs")], [])

    def test_unreachable_left_in_spool_then_sent(self):
        lines, want = make_input(self.project, 120, first_id=9000)
        data = "\n".join(lines) + "\n"
        before = self.batches()
        down = self.conf("send-later", server=f"https://127.0.0.1:{free_port()}")
        t0 = time.monotonic()
        r = self.collect("send", "-c", down, "--wait", "1", "-", input=data)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertIn("left in", r.stderr)
        spool = os.path.join(self.workdir, "send-later", "spool")
        files = sorted(f for f in os.listdir(spool) if f.endswith(".jobs"))
        self.assertEqual(len(files), -(-len(lines) // 50))
        # Same spool, allotd reachable, nothing new to read: the spool goes out.
        up = Collector(self.workdir, self.port, "send-later").conf
        r = self.collect("send", "-c", up, "-", input="")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([f for f in os.listdir(spool) if f.endswith(".jobs")], [])
        self.assertEqual(self.charged(self.project), want)
        self.assertEqual(self.batches() - before, len(files))

    def test_refused_batch_moved_to_rejected(self):
        rec = {"jobId": "19100", "startTime": "2026-03-02T08:00:00Z", "account": self.project,
               "partition": "boost_usr_prod", "gpus": 2, "cpus": 16, "memMb": "1000",
               "nodes": 1, "elapsedS": "500", "state": "COMPLETED"}
        other = dict(rec, jobId="19101", elapsedS="50")
        down = self.conf("send-reject", server=f"https://127.0.0.1:{free_port()}",
                         batch_records=1)
        r = self.collect("send", "-c", down, "--wait", "1", "-",
                         input=json.dumps(rec) + "\n" + json.dumps(other) + "\n")
        self.assertEqual(r.returncode, 75, r.stderr)
        spool = os.path.join(self.workdir, "send-reject", "spool")
        first = sorted(f for f in os.listdir(spool) if f.endswith(".jobs"))[0]
        with open(os.path.join(spool, first), "rb") as f:
            req = SCHEMA.decode("IngestRequest", f.read()[64:])
        self.assertEqual(req["records"][0]["jobId"], "19100")
        # Someone else used that batch id for other records: allotd refuses it for good.
        st, _, body = twirp(self.port, "Usage/Ingest",
                            {"site": SITE, "batchId": req["batchId"],
                             "records": [dict(rec, jobId="19199", elapsedS="1")]},
                            cert=f"collector-{SITE}")
        self.assertEqual(st, 200, body)
        up = Collector(self.workdir, self.port, "send-reject", batch_records=1).conf
        r = self.collect("send", "-c", up, "-", input="")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"moved to .*rejected: already_exists: batch .* was "
                                   r"already sent with different records")
        self.assertTrue(os.path.exists(os.path.join(spool, "rejected", first)))
        with open(os.path.join(spool, "rejected", first + ".reason")) as f:
            self.assertIn("already_exists", f.read())
        # The batch behind it was not held up: 19101 (2 GPUs, 50 s) and the intruder's
        # 19199 (2 GPUs, 1 s) are charged, 19100 is not.
        self.assertEqual(self.charged(self.project), 2 * 50 * 1000 + 2 * 1 * 1000)
        self.assertEqual([f for f in os.listdir(spool) if f.endswith(".jobs")], [])


class SamplesQueue(CollectCase):
    """GPU samples spool in their own queue and go to Usage.IngestMetrics."""

    project = "run-samples"

    def test_samples_apart_from_jobs(self):
        lines, want = make_input(self.project, 60, first_id=11000)
        samples = [json.dumps({"jobId": str(11000 + i), "host": "lrdn0001", "gpu": str(i % 4),
                               "time": f"2026-03-02T09:{i:02d}:00Z", "utilizationPct": 50.0,
                               "powerW": 250.5, "energyUj": str(1000000 * (i + 1))})
                   for i in range(40)]
        path = os.path.join(self.workdir, "mixed.jsonl")
        with open(path, "w") as f:
            for i, ln in enumerate(lines):
                f.write(ln + "\n")
                if i < len(samples):
                    f.write(samples[i] + "\n")
        col = Collector(self.workdir, self.port, "samples", input_file=path)
        col.start()
        try:
            m = col.wait_metrics(
                lambda m: m['allot_collect_records_acked_total{kind="jobs"}'] == len(lines),
                what="every job record acknowledged")
            self.assertEqual(self.charged(self.project), want)
            m = col.wait_metrics(
                lambda m: m['allot_collect_records_acked_total{kind="metrics"}'] == len(samples),
                what="every sample acknowledged")
            self.assertEqual(m['allot_collect_spool_batches{kind="metrics"}'], 0)
            self.assertEqual(m['allot_collect_batches_rejected_total{kind="metrics"}'], 0)
            self.assertEqual(m['allot_collect_records_refused_total{kind="metrics"}'], 0)
            # Stored once each, as sent.
            self.assertEqual(self.psql("SELECT count(*) FROM allot.gpu_samples"), "40")
            self.assertEqual(col.stop(), 0)
        finally:
            if col.proc is not None:
                col.kill()
        self.assertEqual(col.errors(), [])


class Exporter(http.server.BaseHTTPRequestHandler):
    """Serves the file in server.body at /metrics, as a DCGM exporter would."""

    def do_GET(self):
        body = self.server.body if self.path == "/metrics" else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.hits += 1

    def log_message(self, *args):
        pass


class Scrape(CollectCase):
    """A DCGM exporter scraped over HTTP: its samples go to the metrics queue."""

    def test_dcgm_scrape_spooled_as_parse_reads_it(self):
        fixture = os.path.join(REPO, "tests", "fixtures", "sites", "dcgm",
                               "leonardo-node-constructed.prom")
        with open(fixture, "rb") as f:
            body = f.read()
        srv = http.server.HTTPServer(("127.0.0.1", 0), Exporter)
        srv.body, srv.hits = body, 0
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        parsed = self.collect("parse", "--site", SITE, "--format", "dcgm", fixture)
        self.assertEqual(parsed.returncode, 0, parsed.stderr)
        want = [json.loads(ln) for ln in parsed.stdout.splitlines()]
        self.assertGreater(len(want), 0)
        # One scrape (at start; the next an hour later) with allotd away: samples stay.
        col = Collector(self.workdir, free_port(), "scrape",
                        dcgm_url=f"http://127.0.0.1:{srv.server_port}/metrics",
                        scrape_interval_s=3600)
        col.start()
        try:
            m = col.wait_metrics(
                lambda m: m['allot_collect_spool_records{kind="metrics"}'] == len(want),
                what="the scrape's samples spooled")
            self.assertEqual(m['allot_collect_scrapes_total{exporter="dcgm",outcome="ok"}'], 1)
            self.assertEqual(m['allot_collect_spool_batches{kind="jobs"}'], 0)
            self.assertEqual(srv.hits, 1)
            self.assertEqual(col.stop(), 0)
        finally:
            if col.proc is not None:
                col.kill()
            srv.shutdown()
        spool = col.config["spool_dir"]
        got = []
        for name in sorted(os.listdir(spool)):
            if name.endswith(".metrics"):
                with open(os.path.join(spool, name), "rb") as f:
                    req = SCHEMA.decode("IngestMetricsRequest", f.read()[64:])
                self.assertEqual(req["site"], SITE)
                self.assertTrue(req["batchId"].startswith(SITE + "-"))
                got += req["samples"]
        key = lambda s: (s["jobId"], s["host"], s["gpu"], s.get("energyUj"), s.get("powerW"))
        self.assertEqual(sorted(map(key, got)), sorted(map(key, want)))


class Backfill(CollectCase):
    """backfill --since: sacct day by day, progress, a failing day stops it."""

    project = "run-backfill"

    def test_days_in_order_with_progress(self):
        d, sacct = self.fake_sacct("backfill")
        days = {"2026-02-27": [(12001, 1, 8, 100)], "2026-02-28": [],
                "2026-03-01": [(12002, 2, 16, 200), (12003, 4, 8, 300)]}
        want = 0
        for day, jobs in days.items():
            with open(os.path.join(d, day + ".psv"), "w") as f:
                for j, g, c, e in jobs:
                    f.write(psv_row(j, "", day + "T12:00:00", self.project, g, c, 1000, e,
                                    "COMPLETED", day + "T13:00:00") + "\n")
                    want += max(g, -(-c // 8)) * e * 1000
        conf = Collector(self.workdir, self.port, "backfill", sacct_command=sacct).conf
        r = self.collect("backfill", "-c", conf, "--since", "2026-02-27", "--until",
                         "2026-03-02")
        self.assertEqual(r.returncode, 0, r.stderr)
        starts = [c["args"][c["args"].index("-S") + 1] for c in self.calls(d)]
        self.assertEqual(starts, ["2026-02-27T00:00:00", "2026-02-28T00:00:00",
                                  "2026-03-01T00:00:00"])
        ends = [c["args"][c["args"].index("-E") + 1] for c in self.calls(d)]
        self.assertEqual(ends[-1], "2026-03-02T00:00:00")
        # Not a terminal: one progress line per day.
        progress = [ln for ln in r.stderr.splitlines() if ln.startswith("backfill: ")]
        self.assertEqual(len(progress), 3, r.stderr)
        self.assertRegex(progress[-1], r"^backfill: 2026-03-01 done \(3/3 days\), 3 records, ")
        # 1 GPU 100 s + 2 GPUs 200 s + 4 GPUs 300 s.
        self.assertEqual(want, (100 + 400 + 1200) * 1000)
        self.assertEqual(self.charged(self.project), want)
        # Again: replays, the same charge.
        r = self.collect("backfill", "-c", conf, "--since", "2026-02-27", "--until",
                         "2026-03-02")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.charged(self.project), want)

    def test_progress_bar_on_a_terminal(self):
        d, sacct = self.fake_sacct("backfill-tty")
        for day, j in (("2026-04-01", 14001), ("2026-04-02", 14002)):
            with open(os.path.join(d, day + ".psv"), "w") as f:
                f.write(psv_row(j, "", day + "T12:00:00", self.project, 1, 8, 1000, 100,
                                "COMPLETED", day + "T13:00:00") + "\n")
        conf = Collector(self.workdir, self.port, "backfill-tty", sacct_command=sacct).conf
        master, slave = pty.openpty()
        p = subprocess.Popen([collect_path(), "backfill", "-c", conf, "--since", "2026-04-01",
                              "--until", "2026-04-03"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.wait(60), 0, out)
        text = out.decode()
        # One bar redrawn in place, a newline after the last day.
        self.assertIn("\r[" + "#" * 15 + "." * 15 + "] 1/2 days  1 records  ", text)
        self.assertRegex(text, r"\r\[#{30}\] 2/2 days  2 records  \d+ rec/s  ETA 0:00:00  \r?\n")
        self.assertNotIn("backfill: ", text)
        self.assertEqual(self.charged(self.project), 2 * 100 * 1000)

    def test_failing_day_stops_with_resume_hint(self):
        d, sacct = self.fake_sacct("backfill-fail")
        with open(os.path.join(d, "fail"), "w") as f:
            f.write("2026-01-02\n")
        conf = Collector(self.workdir, self.port, "backfill-fail", sacct_command=sacct).conf
        r = self.collect("backfill", "-c", conf, "--since", "2026-01-01", "--until",
                         "2026-01-05")
        self.assertEqual(r.returncode, 1)
        self.assertIn("failed for 2026-01-02: stopping here; run again with --since "
                      "2026-01-02", r.stderr)
        self.assertEqual(len(self.calls(d)), 2)
        r = self.collect("backfill", "-c", conf, "--since", "2026-02-30")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a date", r.stderr)


class ConfigAndSignals(CollectCase):
    """-n, the sample and the README name every key, SIGHUP, SIGTERM."""

    def test_check_and_errors(self):
        col = Collector(self.workdir, self.port, "check")
        r = self.collect("run", "-n", col.conf)
        self.assertEqual((r.returncode, r.stdout), (0, "configuration OK\n"), r.stderr)
        bad = os.path.join(self.workdir, "bad.conf")
        with open(col.conf) as f, open(bad, "w") as g:
            g.write(f.read() + "spool_max_byte = 1G\n")
        r = self.collect("run", "-n", bad)
        self.assertEqual(r.returncode, 1)
        n = len(open(bad).read().splitlines())
        self.assertIn(f"{bad}:{n}: unknown key \"spool_max_byte\"", r.stderr)
        with open(bad, "w") as g:
            g.write(open(col.conf).read().replace('metrics_listen = "127.0.0.1',
                                                  'metrics_listen = "0.0.0.0'))
        r = self.collect("run", "-n", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a loopback address", r.stderr)
        # glibc would take an unknown zone for UTC without a word: -n says so.
        with open(bad, "w") as g:
            g.write(open(col.conf).read() + 'timezone = "Europe/Atlantis"\n')
        r = self.collect("run", "-n", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn('unknown time zone "Europe/Atlantis"', r.stderr)

    def test_sample_and_readme_name_every_key(self):
        r = self.collect("run", "--help-config")
        self.assertEqual(r.returncode, 0)
        keys = [ln.split(" ")[0] for ln in r.stdout.splitlines()
                if ln and not ln.startswith((" ", "Keys"))]
        self.assertGreater(len(keys), 20)
        with open(os.path.join(REPO, "etc", "allot-collect.conf.sample")) as f:
            sample = f.read()
        with open(os.path.join(REPO, "README.md")) as f:
            readme = f.read()
        for k in keys:
            self.assertRegex(sample, rf"(?m)^#? ?{k} = ", f"{k} missing from the sample")
            self.assertTrue(f"`{k}`" in readme, f"{k} missing from the README")
        # The sample, its placeholders filled, passes the check.
        filled = os.path.join(self.workdir, "sample.conf")
        with open(filled, "w") as f:
            f.write(sample)
        r = self.collect("run", "-n", filled)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_sigterm_waits_for_the_batch_in_flight(self):
        project = "run-inflight"
        self.create_project(project, allocations=((SITE, (), GRANT_HOURS),))
        lines, want = make_input(project, 20, first_id=13000)
        path = os.path.join(self.workdir, "inflight.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        # allotd stopped in its tracks: the kernel accepts the connection, nobody answers.
        self.daemon.proc.send_signal(signal.SIGSTOP)
        col = Collector(self.workdir, self.port, "inflight", input_file=path,
                        batch_records=1000)
        try:
            col.start()
            col.wait_metrics(lambda m: m["allot_collect_send_in_flight"] == 1,
                             what="a batch in flight")
            col.proc.send_signal(signal.SIGTERM)
            col.wait_log(r"stopping: sources closed, finishing the batch in flight")
            time.sleep(0.5)
            self.assertIsNone(col.proc.poll(), "the collector did not wait for the answer")
            self.daemon.proc.send_signal(signal.SIGCONT)
            self.assertEqual(col.proc.wait(30), 0)
            col.proc = None
            self.assertRegex(col.lines()[-1], r"stopped; 0 batches \(0 records\) left")
        finally:
            self.daemon.proc.send_signal(signal.SIGCONT)
            if col.proc is not None:
                col.kill()
        self.assertEqual(self.charged(project), want)
        self.assertEqual(col.errors(), [])

    def test_sighup_reload_and_sigterm(self):
        col = Collector(self.workdir, self.port, "signals")
        col.start()
        try:
            mark = len(col.lines())
            col.write_config(batch_records=10, log_level="info")
            col.proc.send_signal(signal.SIGHUP)
            col.wait_log(r"configuration reloaded", since=mark)
            mark = len(col.lines())
            with open(col.conf, "a") as f:
                f.write("bogus = 1\n")
            col.proc.send_signal(signal.SIGHUP)
            col.wait_log(r"keeping the running configuration: .*unknown key \"bogus\"",
                         since=mark)
            self.assertIsNone(col.proc.poll())
            self.assertEqual(col.stop(), 0)
            self.assertRegex(col.lines()[-1], r"stopped; 0 batches \(0 records\) left")
        finally:
            if col.proc is not None:
                col.kill()
        self.assertEqual(col.errors(), [])
