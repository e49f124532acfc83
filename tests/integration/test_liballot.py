"""liballot against a real allotd over TLS: the typed calls, the example, retries
that re-send the same bytes (so the ledger holds one lien and one reserve transfer
however often the call was sent), timeouts reported as deadline_exceeded within
their bound, Twirp errors carried with allotd's code and message, and the installed
library (meson install --destdir): its header alone, pkg-config, the example built
and linked against the installed tree, and the symbols it exports (1.1 adds
allot_priorities under its own version node). allot_priorities against the world of
test_fairshare: the same figures as GetPriorities' JSON answer, Twirp errors.

The C side is clients/lib/allot-probe (one call, its outcome on one line, the
milliseconds measured inside the program around the call) and allot-example.
Between the probe and allotd stands, where a test needs it, FaultyProxy: a loopback
TLS server with the development server certificate that answers each connection by
a plan ("close" before TLS, "unavailable" with Twirp's 503, "drop-after" forwarding
the request to allotd and closing without its answer, "hang" reading the request and
never answering, "hang-tcp" never starting TLS, "pass" forwarding both ways) and
keeps every request body it read.
"""

import glob
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

from harness import (REPO, AllotTestCase, binary, build_dir, certs_dir, cert_files,
                     free_port, https_request)
from test_fairshare import FAIR_TREE, PAIRS, WorldCase

H = 3_600_000  # units per GPU-hour
SITE, PART = "leonardo", "boost_usr_prod"
SLACK_MS = 1500  # what a loaded 2-core machine adds to a bound, at most


def parse_probe(line):
    """'ok attempts=2 ms=31 lien=x ...' or 'error code=C ... msg=M' -> dict."""
    head, _, msg = line.partition(" msg=")
    words = head.split()
    out = {"result": words[0]}
    for w in words[1:]:
        k, _, v = w.partition("=")
        out[k] = v
    if msg:
        out["msg"] = msg
    return out


class FaultyProxy:
    """A TLS server on loopback that plays one step of plan per connection (the
    last step repeats) and forwards to allotd on port where a step says so."""

    def __init__(self, upstream_port, plan, cert="scheduler-leonardo"):
        self.upstream_port = upstream_port
        self.plan = list(plan)
        self.cert = cert
        self.bodies = []         # request bodies read, in order
        self.upstream = []       # allotd's statuses for the requests forwarded
        self.connections = 0
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        d = certs_dir()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(os.path.join(d, "ca.crt"))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def close(self):
        self.stop_event.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)
        for s in self.held:
            s.close()

    def _accept(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                step = self.plan[min(self.connections, len(self.plan) - 1)]
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn, step), daemon=True).start()

    @staticmethod
    def _read_request(t):
        data = b""
        while b"\r\n\r\n" not in data:
            got = t.recv(65536)
            if not got:
                return None
            data += got
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(body) < n:
            got = t.recv(65536)
            if not got:
                return None
            body += got
        return lines[0].split()[1], headers, body

    def _forward(self, path, headers, body):
        st, hdrs, data = https_request(self.upstream_port, "POST", path, body,
                                       {"Content-Type": headers["content-type"]},
                                       cert=self.cert)
        with self.lock:
            self.upstream.append(st)
        return st, hdrs, data

    @staticmethod
    def _answer(t, status, ctype, data):
        t.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: "
                  f"{len(data)}\r\nConnection: close\r\n\r\n".encode() + data)

    def _serve(self, conn, step):
        if step == "close":
            conn.close()
            return
        if step == "hang-tcp":
            self.held.append(conn)
            self.stop_event.wait()
            return
        try:
            conn.settimeout(30)
            t = self.ctx.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        try:
            req = self._read_request(t)
            if req is None:
                return
            path, headers, body = req
            with self.lock:
                self.bodies.append(body)
            if step == "hang":
                self.stop_event.wait()
            elif step == "unavailable":
                self._answer(t, 503, "application/json", json.dumps(
                    {"code": "unavailable", "msg": "test proxy: try later",
                     "meta": {}}).encode())
            elif step == "drop-after":
                self._forward(path, headers, body)  # allotd acts; its answer is lost
            elif step == "pass":
                st, hdrs, data = self._forward(path, headers, body)
                self._answer(t, st, hdrs.get("content-type", ""), data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            t.close()


class LibAllot(AllotTestCase):
    """One project per test, each with its own allocation on LEONARDO."""

    def probe(self, *args, server=None, cert="scheduler-leonardo", timeout=60):
        crt, key = cert_files(cert)
        env = dict(os.environ, ALLOT_CERT=crt, ALLOT_KEY=key,
                   ALLOT_CA=os.path.join(certs_dir(), "ca.crt"))
        url = server or f"https://127.0.0.1:{self.port}"
        n = 0
        while n < len(args) and args[n].startswith("--"):
            n += 1 if args[n] == "--json" else 2
        opts, call = list(args[:n]), list(args[n:])
        r = subprocess.run([binary("clients/lib/allot-probe"), *opts, url, *call],
                           capture_output=True, text=True, timeout=timeout, env=env)
        self.assertEqual(r.stderr.strip(), "", f"probe wrote to stderr: {r.stderr}")
        lines = r.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, f"probe output: {r.stdout!r}")
        out = parse_probe(lines[0])
        self.assertEqual(r.returncode, 0 if out["result"] == "ok" else 1, r.stdout)
        return out

    def project(self, name, gpu_hours=100):
        (alloc,) = self.create_project(name, allocations=((SITE, (), gpu_hours),))
        return alloc

    def proxy(self, plan):
        p = FaultyProxy(self.port, plan)
        self.addCleanup(p.close)
        return p

    def reserve_args(self, account, lien, job, gpus=1, limit_s=3600):
        return ["reserve", SITE, PART, account, str(gpus), str(limit_s), lien, str(job)]

    def lien_rows(self, lien):
        return (self.psql(f"SELECT count(*) FROM allot.liens WHERE id = '{lien}'"),
                self.psql(f"SELECT count(*) FROM allot.transfers WHERE lien = '{lien}' "
                          "AND kind = 'reserve'"))

    def pending_units(self, name):
        return int(self.balance(name)["total"]["pendingUnits"])

    # -- the calls

    def test_typed_calls(self):
        """Quote, Reserve, Heartbeat, Settle in plain structs, on both wires."""
        for wire in ([], ["--json"]):
            with self.subTest(wire=wire or "protobuf"):
                name = "lt-" + ("json" if wire else "pb")
                job = "702" if wire else "701"  # a job's usage is cumulative: one per wire
                self.project(name, 10)
                q = self.probe(*wire, "quote", SITE, PART, name, "2", "3600")
                self.assertEqual(q["result"], "ok", q)
                self.assertEqual((q["allowed"], int(q["cost"]), int(q["available"])),
                                 ("1", 2 * H, 10 * H))
                r = self.probe(*wire, *self.reserve_args(name, f"{name}:1", job, 2))
                self.assertEqual((r["result"], r["lien"], r["status"], r["project"],
                                  int(r["held"]), r["attempts"]),
                                 ("ok", f"{name}:1", "active", name, 2 * H, "1"), r)
                hb = self.probe(*wire, "heartbeat", SITE, job, "900")
                self.assertEqual((hb["action"], int(hb["charged"])), ("continue", 2 * 900_000))
                s = self.probe(*wire, "settle", SITE, job)
                self.assertEqual((s["status"], int(s["drawn"]), int(s["released"])),
                                 ("settled", 2 * 900_000, 2 * H - 2 * 900_000), s)
                self.assertEqual(self.pending_units(name), 0)

    def test_example(self):
        """The example quotes, reserves under its own lien id and settles."""
        self.project("lex", 10)
        crt, key = cert_files("scheduler-leonardo")
        env = dict(os.environ, ALLOT_SERVER=f"https://127.0.0.1:{self.port}",
                   ALLOT_CERT=crt, ALLOT_KEY=key,
                   ALLOT_CA=os.path.join(certs_dir(), "ca.crt"))
        r = subprocess.run([binary("clients/lib/allot-example"), SITE, PART, "lex", "4242"],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("quote: allowed=yes cost=1.00 GPU-h available=10.00 GPU-h", r.stdout)
        self.assertIn("reserve: lien=example:leonardo:4242 held=3600000 units", r.stdout)
        self.assertIn("settle: lien=example:leonardo:4242 released=3600000 units", r.stdout)
        self.assertEqual(self.psql("SELECT status FROM allot.liens WHERE id = "
                                   "'example:leonardo:4242'"), "settled")

    # -- errors carry allotd's Twirp code and message

    def test_twirp_errors(self):
        """What allotd answers over raw HTTP, the library reports: code, message, status."""
        self.project("ler", 1)
        cases = [
            # (probe call, the same request in proto3 JSON, method)
            (self.reserve_args("nobody", "ler:x", 1),
             {"lienId": "ler:x", "site": SITE, "jobId": "1", "partition": PART,
              "account": "nobody", "user": "probe", "gpus": 1, "cpus": 8, "nodes": 1,
              "timeLimitS": "3600"}, "Ledger/Reserve"),
            (self.reserve_args("ler", "ler:big", 2, gpus=4, limit_s=7200),
             {"lienId": "ler:big", "site": SITE, "jobId": "2", "partition": PART,
              "account": "ler", "user": "probe", "gpus": 4, "cpus": 32, "nodes": 1,
              "timeLimitS": "7200"}, "Ledger/Reserve"),
            (["settle", SITE, "no-such-job"],
             {"site": SITE, "jobId": "no-such-job"}, "Ledger/Settle"),
        ]
        codes = set()
        for call, body, method in cases:
            st, _, expect = self.twirp(method, body, cert="scheduler-leonardo")
            self.assertNotEqual(st, 200, expect)
            codes.add(expect["code"])
            for wire in ([], ["--json"]):
                with self.subTest(call=call[:4], wire=wire or "protobuf"):
                    got = self.probe(*wire, *call)
                    self.assertEqual((got["result"], got["code"], got["msg"], int(got["http"]),
                                      got["attempts"]),
                                     ("error", expect["code"], expect["msg"], st, "1"))
        self.assertIn("resource_exhausted", codes)
        # A principal without the role: permission denied, from allotd, as allotd said it.
        got = self.probe(*self.reserve_args("ler", "ler:p", 3), cert="auditor")
        self.assertEqual((got["code"], got["http"]), ("permission_denied", "403"), got)
        self.assertEqual(self.lien_rows("ler:x") + self.lien_rows("ler:big"),
                         ("0", "0", "0", "0"), "refused calls changed nothing")

    # -- retries re-send the same bytes

    def test_retry_after_lost_answer_reserves_once(self):
        """allotd made the lien, the answer was lost; the retry gets the same lien."""
        self.project("lra", 10)
        p = self.proxy(["drop-after", "pass"])
        got = self.probe("--attempts", "4", *self.reserve_args("lra", "lra:1", 801, 2),
                         server=p.url)
        self.assertEqual((got["result"], got["attempts"], got["lien"], got["status"]),
                         ("ok", "2", "lra:1", "active"), got)
        self.assertEqual(p.upstream, [200, 200], "allotd answered both sends")
        self.assertEqual(len(p.bodies), 2)
        self.assertEqual(p.bodies[0], p.bodies[1], "the retry sent the same bytes")
        self.assertIn(b"lra:1", p.bodies[0])
        self.assertEqual(self.lien_rows("lra:1"), ("1", "1"), "one lien, one reserve transfer")
        self.assertEqual(self.pending_units("lra"), 2 * H, "held once")

    def test_retry_after_unavailable_and_refused(self):
        """503 unavailable, then a connection closed before TLS: retried, once reserved."""
        self.project("lru", 10)
        p = self.proxy(["unavailable", "close", "pass"])
        got = self.probe("--attempts", "5", *self.reserve_args("lru", "lru:1", 802),
                         server=p.url)
        self.assertEqual((got["result"], got["attempts"], got["lien"]), ("ok", "3", "lru:1"), got)
        self.assertEqual(p.connections, 3)
        self.assertEqual(len(p.bodies), 2, "the closed connection read nothing")
        self.assertEqual(p.bodies[0], p.bodies[1])
        self.assertEqual(p.upstream, [200], "allotd saw the request once")
        self.assertEqual(self.lien_rows("lru:1"), ("1", "1"))
        # Without retries (the default) the first unavailable is the answer.
        q = self.proxy(["unavailable", "pass"])
        got = self.probe(*self.reserve_args("lru", "lru:2", 803), server=q.url)
        self.assertEqual((got["result"], got["code"], got["msg"], got["http"], got["attempts"]),
                         ("error", "unavailable", "test proxy: try later", "503", "1"), got)
        self.assertEqual(self.lien_rows("lru:2"), ("0", "0"))

    def test_retries_bounded(self):
        """A refused port: max_attempts attempts with the backoff between, or fewer
        when the deadline leaves no time; then unavailable."""
        port = free_port()  # nothing listens there
        url = f"https://127.0.0.1:{port}"
        got = self.probe("--attempts", "3", "--backoff-ms", "100", "quote", SITE, PART,
                         "x", "1", "60", server=url)
        self.assertEqual((got["result"], got["code"], got["attempts"]),
                         ("error", "unavailable", "3"), got)
        self.assertIn("(3 attempts)", got["msg"])
        self.assertGreaterEqual(int(got["ms"]), 50 + 100, "waits of at least c/2 each")
        self.assertLess(int(got["ms"]), 100 + 200 + SLACK_MS)
        # Retries off by default.
        got = self.probe("quote", SITE, PART, "x", "1", "60", server=url)
        self.assertEqual((got["code"], got["attempts"]), ("unavailable", "1"), got)
        # The deadline: waits of 100-200, 200-400, 400-800 ms do not fit in 500 ms.
        got = self.probe("--attempts", "10", "--backoff-ms", "200", "--deadline-ms", "500",
                         "quote", SITE, PART, "x", "1", "60", server=url)
        self.assertEqual(got["code"], "unavailable", got)
        self.assertIn(int(got["attempts"]), (2, 3), got)
        self.assertIn("the deadline leaves no time for more", got["msg"])
        self.assertLess(int(got["ms"]), 500)

    # -- timeouts are deadline_exceeded, within their bound

    def test_timeout_no_answer(self):
        """A server that takes the request and never answers: deadline_exceeded after
        timeout_ms, not retried (it may be acting on it)."""
        p = self.proxy(["hang"])
        got = self.probe("--attempts", "3", "--timeout-ms", "800", "quote", SITE, PART, "x",
                         "1", "60", server=p.url)
        self.assertEqual((got["result"], got["code"], got["attempts"], got["http"]),
                         ("error", "deadline_exceeded", "1", "0"), got)
        self.assertGreaterEqual(int(got["ms"]), 800)
        self.assertLess(int(got["ms"]), 800 + SLACK_MS)
        self.assertEqual(len(p.bodies), 1, "sent once")

    def test_timeout_deadline(self):
        """The deadline cuts an attempt whose own timeout is longer."""
        p = self.proxy(["hang"])
        got = self.probe("--timeout-ms", "20000", "--deadline-ms", "700", "quote", SITE,
                         PART, "x", "1", "60", server=p.url)
        self.assertEqual((got["code"], got["attempts"]), ("deadline_exceeded", "1"), got)
        self.assertGreaterEqual(int(got["ms"]), 700)
        self.assertLess(int(got["ms"]), 700 + SLACK_MS)

    def test_timeout_connect(self):
        """A server that accepts TCP and never starts TLS: a connect timeout each time,
        retried (nothing was sent), deadline_exceeded in the end, not unavailable."""
        p = self.proxy(["hang-tcp"])
        got = self.probe("--attempts", "3", "--connect-timeout-ms", "300", "--backoff-ms",
                         "50", "quote", SITE, PART, "x", "1", "60", server=p.url)
        self.assertEqual((got["code"], got["attempts"]), ("deadline_exceeded", "3"), got)
        self.assertIn("could not connect in time", got["msg"])
        self.assertEqual(p.connections, 3)
        self.assertEqual(p.bodies, [])
        self.assertGreaterEqual(int(got["ms"]), 3 * 300 + 25 + 50)
        self.assertLess(int(got["ms"]), 3 * 300 + 50 + 100 + SLACK_MS)

    # -- the installed library

    def test_installed(self):
        """meson install --destdir: allot.h compiles alone with pkg-config's flags, the
        example builds and links against the installed liballot.so.1 and runs; the
        library exports the public calls only; allot(3) is installed."""
        for tool in ("pkg-config", "cc", "nm"):
            if shutil.which(tool) is None:
                self.fail(f"{tool} is not installed")
        self.project("lin", 10)
        dest = tempfile.mkdtemp(prefix="allot-install-", dir=os.environ.get("ALLOT_TMP"))
        self.addCleanup(shutil.rmtree, dest, True)
        r = subprocess.run(["meson", "install", "-C", build_dir(), "--no-rebuild", "--quiet",
                            "--destdir", dest], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        (pc,) = glob.glob(os.path.join(dest, "**", "pkgconfig", "allot.pc"), recursive=True)
        (so,) = glob.glob(os.path.join(dest, "**", "liballot.so.1.1.0"), recursive=True)
        libdir = os.path.dirname(so)
        self.assertTrue(os.path.islink(os.path.join(libdir, "liballot.so.1")))
        self.assertTrue(glob.glob(os.path.join(dest, "**", "include", "allot.h"),
                                  recursive=True))
        self.assertTrue(glob.glob(os.path.join(dest, "**", "man3", "allot.3"), recursive=True))
        self.assertTrue(glob.glob(os.path.join(dest, "**", "allot", "proto", "allot", "v1",
                                               "ledger.proto"), recursive=True))
        soname = subprocess.run(["readelf", "-d", so], capture_output=True, text=True).stdout
        self.assertIn("Library soname: [liballot.so.1]", soname)
        syms = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True,
                              text=True, check=True).stdout.split("\n")
        names = sorted({ln.split()[-1].split("@")[0] for ln in syms if ln.strip()} -
                       {"LIBALLOT_1", "LIBALLOT_1.1"})
        self.assertEqual(names, sorted([
            "allot_call", "allot_call_packed", "allot_close", "allot_code_name",
            "allot_connect", "allot_heartbeat", "allot_options_init", "allot_priorities",
            "allot_quote", "allot_release", "allot_reserve", "allot_settle", "allot_version"]))
        versioned = {ln.split()[-1] for ln in syms if ln.strip()}
        self.assertIn("allot_priorities@@LIBALLOT_1.1", versioned)
        self.assertIn("allot_quote@@LIBALLOT_1", versioned)

        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pc),
                   PKG_CONFIG_SYSROOT_DIR=dest)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "allot"], env=env,
                               capture_output=True, text=True)
        self.assertEqual(flags.returncode, 0, flags.stderr)
        flags = flags.stdout.split()
        self.assertIn("-lallot", flags)
        # The installed tree has no private header of Allot's; the build's sanitizers
        # are in the library, so the program links their runtimes too.
        san = self.sanitize_flags()
        work = tempfile.mkdtemp(prefix="allot-cc-", dir=os.environ.get("ALLOT_TMP"))
        self.addCleanup(shutil.rmtree, work, True)
        alone = os.path.join(work, "alone.c")
        with open(alone, "w") as f:
            f.write("#include <allot.h>\nint main(void)\n{\n"
                    "\treturn allot_code_name(ALLOT_DEADLINE_EXCEEDED)[0] == 'd' ? 0 : 1;\n}\n")
        strict = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]
        for src, out in ((alone, "alone"),
                         (os.path.join(REPO, "clients", "lib", "example.c"), "example")):
            with self.subTest(build=out):
                cc = subprocess.run(["cc", *strict, *san, src, "-o", os.path.join(work, out),
                                     *flags], capture_output=True, text=True, cwd=work)
                self.assertEqual(cc.returncode, 0, cc.stderr)
        run_env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        ldd = subprocess.run(["ldd", os.path.join(work, "example")], env=run_env,
                             capture_output=True, text=True).stdout
        self.assertRegex(ldd, r"liballot\.so\.1 => " + re.escape(libdir))
        self.assertEqual(subprocess.run([os.path.join(work, "alone")], env=run_env).returncode,
                         0)
        crt, key = cert_files("scheduler-leonardo")
        run_env.update(ALLOT_SERVER=f"https://127.0.0.1:{self.port}", ALLOT_CERT=crt,
                       ALLOT_KEY=key, ALLOT_CA=os.path.join(certs_dir(), "ca.crt"))
        r = subprocess.run([os.path.join(work, "example"), SITE, PART, "lin", "77"],
                           env=run_env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("settle: lien=example:leonardo:77", r.stdout)

    @staticmethod
    def sanitize_flags():
        r = subprocess.run(["meson", "introspect", "--buildoptions", build_dir()],
                           capture_output=True, text=True, check=True)
        for o in json.loads(r.stdout):
            if o["name"] == "b_sanitize" and o["value"] != "none":
                return [f"-fsanitize={o['value']}"]
        return []


class Priorities(WorldCase):
    """allot_priorities (1.1) on test_fairshare's world (Fair Tree, no decay, one
    recompute a day): the figures GetPriorities answers in JSON for the same pairs,
    exactly (the probe prints the doubles with 17 digits), on both wires."""

    config = {"fairshare_half_life_s": 0, "fairshare_period_s": 86400}
    probe = LibAllot.probe
    PAIRS = PAIRS + [("nobody", "x"), ("acme-llm", "zed")]

    def test_same_figures_as_get_priorities(self):
        want = self.call("FairShare/GetPriorities", {"site": SITE, "pairs": [
            {"account": a, "user": u} for a, u in self.PAIRS]})["priorities"]
        args = [f"{a}:{u}" for a, u in self.PAIRS]
        for wire in ([], ["--json"]):
            with self.subTest(wire=wire or "protobuf"):
                got = self.probe(*wire, "priorities", SITE, *args)
                self.assertEqual(got["result"], "ok", got)
                for i, w in enumerate(want):
                    project, fs, pacing, combined, known = got[f"p{i}"].split(",")
                    self.assertEqual(project, w["project"])
                    self.assertEqual(float(fs), w.get("fairshare", 0))
                    self.assertEqual(float(pacing), w.get("pacing", 0))
                    self.assertEqual(float(combined), w.get("combined", 0))
                    self.assertEqual(known == "1", w.get("knownUser", False))
                self.assertNotIn(f"p{len(want)}", got)
        # And the figures worked by hand in test_fairshare.
        for i, (_, user) in enumerate(PAIRS):
            self.assertEqual(float(got[f"p{i}"].split(",")[1]), FAIR_TREE[user], user)
        self.assertEqual(got[f"p{len(PAIRS)}"].split(",")[0], "")  # nobody: no project
        self.assertTrue(got[f"p{len(PAIRS) + 1}"].endswith(",0"))  # zed: not known

    def test_errors_carry_twirp_codes(self):
        got = self.probe("priorities", SITE)
        self.assertEqual((got["result"], got["code"], got["http"]),
                         ("error", "invalid_argument", "400"), got)
        self.assertEqual(got["msg"], "pairs: at least one is required")
        # LEONARDO's scheduler may not ask for LUMI's accounts.
        got = self.probe("priorities", "lumi", "acme-llm:cat")
        self.assertEqual((got["result"], got["code"], got["http"]),
                         ("error", "permission_denied", "403"), got)
        got = self.probe("priorities", SITE, "acme-llm:cat", cert="project-acme-vision")
        self.assertEqual(got["code"], "permission_denied", got)
