"""Helpers for the allot-collect integration tests: a collector daemon with its own
configuration, spool, log and /metrics, and generated input with its charge worked out.

Input is JSON lines of JobRecord (the collector's jsonl format) for leonardo's
boost_usr_prod, where a job of g GPUs with 8 g cores and 1000 g MB occupies g GPUs
(GPU_SHARE, 8 cores and 128000 MB per GPU) at weight 1000: it costs
g * elapsed_s * 1000 units. Each job is reported twice, running at half its time and
completed at its full time (cumulative records: only the latest counts), and some
lines are repeated as they are, so that a double charge would show.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

from harness import Daemon, binary, cert_files, certs_dir, free_port

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

    # The log is read as allotd's is.
    lines = Daemon.lines
    tail = Daemon.tail

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
