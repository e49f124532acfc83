"""Integration test harness: a real allotd on loopback, real TLS, a real PostgreSQL.

Each test class gets its own database (CREATE DATABASE ... TEMPLATE allot_template,
the migrated schema), its own allotd configuration on a free loopback port, and its
own allotd process, started in setUpClass and stopped with SIGTERM in tearDownClass
(which asserts exit status 0 and a log free of errors the tests did not declare).
Tests talk Twirp over http.client with client certificates from ALLOT_CERTS, in
JSON or in protobuf (protowire.py, driven by the .proto files), run the allot CLI,
and read the database with psql to check what was (not) stored.

Environment (scripts/test sets it):
  ALLOT_BUILD        meson build folder holding daemon/allotd and clients/cli/allot
  ALLOT_CERTS        folder made by scripts/certs
  PGHOST PGPORT PGUSER  the private PostgreSQL cluster (scripts/lib/pg.sh)
  ALLOT_TEMPLATE_DB  migrated database to copy for each class (default allot_template)
  ALLOT_KEEP=1       keep each class's folder (config, log) after the run

What this leaves to the tests: what to call and what to expect.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from protowire import Schema, values_equal  # noqa: F401  (re-exported for tests)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = Schema(os.path.join(REPO, "proto", "allot", "v1"))
ORG = "Allot Dev"

# Twirp's fixed HTTP status for each error code.
TWIRP_STATUS = {
    "canceled": 408, "unknown": 500, "invalid_argument": 400, "malformed": 400,
    "deadline_exceeded": 408, "not_found": 404, "bad_route": 404,
    "already_exists": 409, "permission_denied": 403, "unauthenticated": 401,
    "resource_exhausted": 429, "failed_precondition": 412, "aborted": 409,
    "out_of_range": 400, "unimplemented": 501, "internal": 500,
    "unavailable": 503, "dataloss": 500,
}

# Log lines that are errors unless a test declares them expected.
ERROR_LINE = re.compile(r" (error|fatal): |fatal:|runtime error|AddressSanitizer|"
                        r"LeakSanitizer|UndefinedBehaviorSanitizer")

UNITS_PER_GPU_HOUR = 3_600_000


class HarnessError(Exception):
    """The environment cannot run the tests (a binary missing, a variable unset)."""


def subject(cn):
    """RFC 2253 subject of a development client certificate."""
    return f"CN={cn},O={ORG}"


def env(name, default=None):
    v = os.environ.get(name, default)
    if not v:
        raise HarnessError(f"environment variable {name} is not set (run through "
                           "scripts/test, or see tests/integration/README)")
    return v


def build_dir():
    b = env("ALLOT_BUILD")
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def certs_dir():
    c = env("ALLOT_CERTS")
    if not os.path.isfile(os.path.join(c, "ca.crt")):
        raise HarnessError(f"ALLOT_CERTS={c} has no ca.crt (make it with scripts/certs)")
    return c


def binary(rel):
    """Absolute path of a built program; HarnessError when it is not there."""
    p = os.path.join(build_dir(), rel)
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        raise HarnessError(f"{rel} is not built: {p} does not exist "
                           f"(build it with ninja -C {build_dir()})")
    return p


def allotd_path():
    return binary(os.path.join("daemon", "allotd"))


def cli_path():
    return binary(os.path.join("clients", "cli", "allot"))


def cert_files(cert):
    """(crt, key) for a certificate name ('admin'), a (crt, key) pair, or None."""
    if cert is None:
        return None
    if isinstance(cert, tuple):
        return cert
    d = certs_dir()
    crt, key = os.path.join(d, cert + ".crt"), os.path.join(d, cert + ".key")
    if not os.path.isfile(crt):
        raise HarnessError(f"no certificate {crt} (scripts/certs {d} {cert})")
    return crt, key


def make_cert(cn):
    """Makes (or keeps) a client certificate for cn signed by the development CA."""
    d = certs_dir()
    r = subprocess.run([os.path.join(REPO, "scripts", "certs"), d, cn],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise HarnessError(f"scripts/certs {d} {cn} failed: {r.stderr}")
    return cn


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- PostgreSQL ---------------------------------------------------------------

def pg_env(pg=None):
    e = dict(os.environ)
    if pg:
        e.update(pg)
    for k in ("PGHOST", "PGPORT", "PGUSER"):
        if not e.get(k):
            raise HarnessError(f"environment variable {k} is not set (the private "
                               "PostgreSQL cluster of scripts/lib/pg.sh)")
    return e


def psql(sql, db="postgres", pg=None, check=True):
    """Runs sql with psql in db and returns its unaligned output, stripped.
    Raises AssertionError with psql's message when it fails and check is set."""
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-d", db, "-c", sql],
                       capture_output=True, text=True, env=pg_env(pg), timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"psql failed on {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def dsn(db, pg=None):
    e = pg_env(pg)
    return f"host={e['PGHOST']} port={e['PGPORT']} user={e['PGUSER']} dbname={db}"


def create_database(name, pg=None, template=None):
    template = template or os.environ.get("ALLOT_TEMPLATE_DB", "allot_template")
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', pg=pg)
    psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"', pg=pg)


def drop_database(name, pg=None):
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', pg=pg, check=False)


def row_counts(db, pg=None):
    """Rows in the tables that change when something is stored."""
    out = {}
    for t in ("allot.transfers", "allot.job_usage", "allot.allocations"):
        out[t] = int(psql(f"SELECT count(*) FROM {t}", db, pg))
    return out


class PgCluster:
    """A second private cluster through scripts/lib/pg.sh, for tests that stop it.
    port: its own port (default ALLOT_PG_PORT's, as pg.sh has it); durable: fsync
    and synchronous commit on (ALLOT_PG_DURABLE=1), for tests whose point is what a
    crash keeps."""

    def __init__(self, folder, port=None, durable=False):
        self.folder = folder
        self.vars = None
        self.port = port
        self.durable = durable

    def _bash(self, body):
        lib = os.path.join(REPO, "scripts", "lib", "pg.sh")
        if not os.path.isfile(lib):
            raise HarnessError("scripts/lib/pg.sh is missing")
        e = dict(os.environ)
        for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "ALLOT_PG_DIR"):
            e.pop(k, None)
        if self.port is not None:
            e["ALLOT_PG_PORT"] = str(self.port)
        if self.durable:
            e["ALLOT_PG_DURABLE"] = "1"
        r = subprocess.run(["bash", "-c", f'set -e; . "$1"; {body}', "bash", lib],
                           capture_output=True, text=True, env=e, timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"pg.sh: {body} failed ({r.returncode}): "
                                 f"{r.stdout}{r.stderr}")
        return r.stdout

    def start(self):
        return self._started(f'pg_start "{self.folder}" >&2')

    def _started(self, body):
        """Runs body, which starts the cluster (pg_start exports its variables);
        keeps and returns them."""
        out = self._bash(f'{body}; printf "%s\\n%s\\n%s\\n" "$PGHOST" "$PGPORT" "$PGUSER"')
        host, port, user = out.strip().splitlines()[-3:]
        self.vars = {"PGHOST": host, "PGPORT": port, "PGUSER": user}
        return self.vars

    def stop(self):
        self._bash(f'pg_stop "{self.folder}" >&2')

    def crash(self):
        """pg_ctl stop -m immediate: what a power cut leaves (start() recovers)."""
        self._bash(f'pg_crash "{self.folder}" >&2')

    def make_standby(self, folder, name, port):
        """A streaming hot standby of this (running) cluster in folder, on port, with
        replication slot and application_name name; returns it, started."""
        sb = PgCluster(folder, port=port, durable=self.durable)
        sb._started(f'pg_standby_make "{self.folder}" "{folder}" {name} >&2')
        return sb

    def sync_standby(self, name):
        """Makes standby name synchronous (commits wait for it); returns once it is."""
        self._bash(f'pg_sync_standby "{self.folder}" {name} >&2')

    def promote(self):
        self._bash(f'pg_promote "{self.folder}" >&2')

    def log(self):
        try:
            with open(os.path.join(self.folder, "postgres.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


# ---- allotd ---------------------------------------------------------------------

_live = []


@atexit.register
def _kill_leftovers():
    for p in _live:
        if p.poll() is None:
            p.kill()


class Daemon:
    """One allotd process with its own configuration file and log."""

    def __init__(self, workdir, db, pg=None, **config):
        self.workdir = workdir
        self.db = db
        self.pg = pg
        self.port = free_port()
        self.conf = os.path.join(workdir, "allotd.conf")
        self.logfile = os.path.join(workdir, "allotd.log")
        self.proc = None
        self.allowed = []         # regexes of error lines tests declared expected
        self.allowed_ranges = []  # [start, end) log line ranges where errors are expected
        self.config = config
        self.write_config()

    def config_lines(self, **overrides):
        c = certs_dir()
        cfg = {
            "listen": f"127.0.0.1:{self.port}",
            "tls_cert": os.path.join(c, "server.crt"),
            "tls_key": os.path.join(c, "server.key"),
            "tls_ca": os.path.join(c, "ca.crt"),
            "database": dsn(self.db, self.pg),
            "log_level": "debug",
        }
        cfg.update(self.config)
        cfg.update(overrides)
        lines = ["# written by tests/integration/harness.py"]
        for k, v in cfg.items():
            if v is not None:
                lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
        return "\n".join(lines) + "\n"

    def write_config(self, **overrides):
        with open(self.conf, "w") as f:
            f.write(self.config_lines(**overrides))

    def run(self, *args, timeout=60):
        """Runs allotd -c CONF ARGS to completion; returns CompletedProcess."""
        return subprocess.run([allotd_path(), "-c", self.conf, *args],
                              capture_output=True, text=True, timeout=timeout)

    def add_principal(self, subj, role, scope=None):
        args = ["--add-principal", subj, role] + ([scope] if scope else [])
        r = self.run(*args)
        if r.returncode != 0:
            raise AssertionError(f"allotd --add-principal {subj} {role} failed "
                                 f"({r.returncode}): {r.stderr}")

    def start(self, timeout=20):
        exe = allotd_path()
        self.log = open(self.logfile, "ab")
        self.start_line = len(self.lines())
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        _live.append(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"allotd exited with {self.proc.returncode} while "
                                     f"starting:\n{self.tail()}")
            if any("listening on" in ln for ln in self.lines()[self.start_line:]):
                return
            try:
                if self.healthz()[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"allotd not ready after {timeout} s:\n{self.tail()}")

    def healthz(self, path="/healthz"):
        st, _, body = https_request(self.port, "GET", path, cert=None, timeout=5)
        return st, body

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise AssertionError(f"allotd did not exit {timeout} s after SIGTERM:\n"
                                     f"{self.tail()}")
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL and reap: a crash, no clean-up of any kind (start() again after)."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.proc = None

    def lines(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def tail(self, n=40):
        return "\n".join(self.lines()[-n:])

    def wait_log(self, regex, since=0, timeout=10):
        """Waits until a log line after line number since matches regex; returns it."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ln in self.lines()[since:]:
                if rx.search(ln):
                    return ln
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {regex!r} within {timeout} s:\n"
                             f"{self.tail()}")

    def unexpected_errors(self, since=0, until=None):
        out = []
        lines = self.lines()
        until = len(lines) if until is None else until
        for i in range(since, until):
            ln = lines[i]
            if not ERROR_LINE.search(ln):
                continue
            if any(a <= i < b for a, b in self.allowed_ranges):
                continue
            if any(re.search(p, ln) for p in self.allowed):
                continue
            out.append(ln)
        return out


# ---- HTTPS and Twirp -------------------------------------------------------------

_contexts = {}


def client_context(cert):
    key = cert if not isinstance(cert, list) else tuple(cert)
    if key in _contexts:
        return _contexts[key]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(certs_dir(), "ca.crt"))
    files = cert_files(cert)
    if files:
        ctx.load_cert_chain(*files)
    _contexts[key] = ctx
    return ctx


def https_request(port, method, path, body=None, headers=None, cert="admin", timeout=30):
    """One request on a new connection; returns (status, headers dict with lower-case
    names, body bytes)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(cert),
                                       timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def send_then_read(port, head, chunks=(), cert="admin", timeout=30):
    """Writes head (request line and headers, bytes) and then every chunk of chunks on
    one new TLS connection before reading anything, as a client that sends its whole
    request first does, then reads until the server closes. A reset while sending
    raises (OSError). Returns (status, headers dict with lower-case names, body bytes,
    everything read)."""
    ctx = client_context(cert)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(head)
            for chunk in chunks:
                t.sendall(chunk)
            data = b""
            while True:
                try:
                    got = t.recv(65536)
                except ssl.SSLEOFError:  # closed without close_notify: end of file
                    break
                if not got:
                    break
                data += got
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body, data


def server_certificate(port):
    """DER bytes of the certificate the server presents now."""
    ctx = client_context("admin")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def twirp_path(method):
    return f"/twirp/allot.v1.{method}"


def twirp(port, method, body, cert="admin", content_type="application/json", timeout=30):
    """Calls allot.v1.<method> ("Admin/CreateSite"). body: a dict (sent as JSON, or
    encoded as protobuf when content_type is application/protobuf) or bytes sent as
    they are. Returns (status, headers, parsed) where parsed is the decoded JSON for a
    JSON answer (errors always), and bytes otherwise."""
    if isinstance(body, dict):
        if content_type == "application/protobuf":
            body = SCHEMA.encode(SCHEMA.rpcs[method][0], body)
        else:
            body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    st, hdrs, data = https_request(port, "POST", twirp_path(method), body,
                                   {"Content-Type": content_type}, cert, timeout)
    if hdrs.get("content-type", "").startswith("application/json"):
        try:
            return st, hdrs, json.loads(data)
        except ValueError:
            return st, hdrs, data
    return st, hdrs, data


# ---- test case base --------------------------------------------------------------

DEFAULT_WINDOW = ("2024-01-01T00:00:00Z", "2028-01-01T00:00:00Z")

# The default resources of the specification (site, partition, accelerator,
# gpus/node, rule, cores/gpu, threads/core, mem/gpu MB, native unit,
# native milli per GPU-hour, weight per mille).
RESOURCES = [
    ("leonardo", "boost_usr_prod", "A100-64GB", 4, "GPU_SHARE", 8, 1, 128000, "core-h", 8000,
     1000),
    ("lumi", "standard-g", "MI250X-GCD", 8, "WHOLE_NODE", 0, 0, 0, "GPU-h", 500, 500),
    ("lumi", "small-g", "MI250X-GCD", 8, "GPU_SHARE", 8, 1, 64000, "GPU-h", 500, 500),
    ("marenostrum5", "acc", "H100-64GB", 4, "GPU_SHARE", 20, 2, 125000, "core-h", 20000,
     1000),
    ("jupiter", "booster", "GH200", 4, "WHOLE_NODE", 0, 0, 0, "core-h", 72000, 1000),
]
SITES = ["leonardo", "lumi", "marenostrum5", "jupiter"]
PROGRAM = "eurohpc-aif"
ORGANIZATION = "acme"
PROJECTS = ["acme-vision", "acme-llm"]

# (certificate CN, role, scope) of the development certificates.
PRINCIPALS = [
    ("auditor", "ROLE_AUDITOR", ""),
    ("collector-leonardo", "ROLE_COLLECTOR", "leonardo"),
    ("collector-lumi", "ROLE_COLLECTOR", "lumi"),
    ("collector-marenostrum5", "ROLE_COLLECTOR", "marenostrum5"),
    ("collector-jupiter", "ROLE_COLLECTOR", "jupiter"),
    ("scheduler-leonardo", "ROLE_SCHEDULER", "leonardo"),
    ("project-acme-vision", "ROLE_PROJECT", "acme-vision"),
    ("project-acme-llm", "ROLE_PROJECT", "acme-llm"),
]


def resource_json(r):
    return {
        "site": r[0], "partition": r[1], "accelerator": r[2], "gpusPerNode": r[3],
        "rule": "BILLING_RULE_" + r[4], "coresPerGpu": r[5], "threadsPerCore": r[6],
        "memPerGpuMb": str(r[7]), "nativeUnit": r[8], "nativeMilliPerGpuHour": str(r[9]),
        "weightPerMille": r[10], "weightEffectiveFrom": "2020-01-01T00:00:00Z",
    }


class AllotTestCase(unittest.TestCase):
    """Base class: a database and a running allotd per class.

    Class attributes a test class may set:
      start_daemon  False for classes that drive allotd themselves
      config        extra configuration keys for allotd
      standard      True: create the spec's program, organization, projects, sites,
                    resources, principals and allocations through the Admin RPC
    """

    start_daemon = True
    config = {}
    standard = True
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.dbname = f"allot_it_{cls.__name__.lower()}_{os.getpid()}"
        cls.workdir = tempfile.mkdtemp(prefix=f"allot-it-{cls.__name__}-",
                                       dir=os.environ.get("ALLOT_TMP"))
        cls.daemon = None
        try:
            allotd_path()
            create_database(cls.dbname)
            cls.daemon = Daemon(cls.workdir, cls.dbname, **cls.config)
            cls.daemon.add_principal(subject("admin"), "admin")
            if cls.start_daemon:
                cls.daemon.start()
                if cls.standard:
                    standard_setup(cls)
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def _cleanup_class(cls):
        rc = None
        errors = []
        if cls.daemon is not None:
            rc = cls.daemon.stop()
            errors = cls.daemon.unexpected_errors()
        drop_database(cls.dbname)
        if os.environ.get("ALLOT_KEEP") != "1":
            shutil.rmtree(cls.workdir, ignore_errors=True)
        return rc, errors

    @classmethod
    def tearDownClass(cls):
        log = cls.daemon.tail(60) if cls.daemon else ""
        rc, errors = cls._cleanup_class()
        if rc is not None and rc != 0:
            raise AssertionError(f"allotd exited with status {rc} after SIGTERM:\n{log}")
        if errors:
            raise AssertionError("allotd logged errors no test expected:\n" +
                                 "\n".join(errors))

    def setUp(self):
        self._log_mark = len(self.daemon.lines()) if self.daemon else 0

    def tearDown(self):
        if self.daemon is None or self.daemon.proc is None:
            return
        bad = self.daemon.unexpected_errors(self._log_mark)
        if bad:
            self.fail("allotd logged errors this test did not expect:\n" + "\n".join(bad))

    # -- helpers

    def expect_log_error(self, regex):
        """Declares that allotd may log an error line matching regex."""
        self.daemon.allowed.append(regex)

    @property
    def port(self):
        return self.daemon.port

    def twirp(self, method, body, cert="admin", content_type="application/json", **kw):
        return twirp(self.port, method, body, cert, content_type, **kw)

    def call(self, method, body, cert="admin", content_type="application/json"):
        """Calls method and asserts success; returns the answer in proto3 JSON form
        (decoded from protobuf when content_type is application/protobuf)."""
        st, hdrs, parsed = self.twirp(method, body, cert, content_type)
        if st != 200:
            self.fail(f"{method} answered {st}: {parsed!r}")
        if content_type == "application/protobuf":
            ct = hdrs.get("content-type", "")
            self.assertTrue(ct.startswith("application/protobuf"),
                            f"{method}: answer content type {ct!r}")
            return SCHEMA.decode(SCHEMA.rpcs[method][1], parsed)
        self.assertIsInstance(parsed, dict, f"{method}: answer is not a JSON object")
        return parsed

    def assertTwirpError(self, resp, code, *msg_parts):
        """resp is (status, headers, parsed). Asserts a Twirp error of code with the
        status Twirp fixes for it and a body {"code","msg","meta"} (meta an object);
        each of msg_parts must appear in msg. Returns msg."""
        st, hdrs, body = resp
        self.assertEqual(st, TWIRP_STATUS[code], f"status for {code}; body {body!r}")
        ct = hdrs.get("content-type", "")
        self.assertTrue(ct.startswith("application/json"),
                        f"error content type {ct!r}, body {body!r}")
        self.assertIsInstance(body, dict, f"error body is not a JSON object: {body!r}")
        self.assertEqual(set(body), {"code", "msg", "meta"}, f"error body keys: {body!r}")
        self.assertEqual(body["code"], code, f"body {body!r}")
        self.assertIsInstance(body["msg"], str)
        self.assertTrue(body["msg"], "empty error message")
        self.assertIsInstance(body["meta"], dict, f"meta is not an object: {body!r}")
        for k, v in body["meta"].items():
            self.assertIsInstance(v, str, f"meta value {k!r} is not a string")
        for part in msg_parts:
            self.assertIn(part, body["msg"])
        return body["msg"]

    def psql(self, sql):
        return psql(sql, self.dbname, self.daemon.pg if self.daemon else None)

    def counts(self):
        return row_counts(self.dbname, self.daemon.pg if self.daemon else None)

    def balance(self, project, cert="admin"):
        return self.call("Ledger/GetBalance", {"project": project}, cert)

    def charged_units(self, project):
        return int(self.balance(project)["total"]["chargedUnits"])

    def create_principal(self, cn, role, scope=""):
        """Creates the principal of certificate cn through the Admin RPC, then waits
        until this class's allotd knows it (wait_for_principal)."""
        self.call("Admin/CreatePrincipal", {"subject": subject(cn), "role": role,
                                            "scope": scope})
        wait_for_principal(self.port, cn)

    def create_project(self, name, allocations=(("", (), 1000),), window=DEFAULT_WINDOW):
        """Creates project name in the standard organization, with allocations given
        as (site, resources, gpu_hours); returns the allocation ids."""
        self.call("Admin/CreateProject", {"name": name, "organization": ORGANIZATION,
                                          "description": f"test project {name}"})
        ids = []
        for i, (site, resources, hours) in enumerate(allocations):
            a = self.call("Admin/CreateAllocation", {
                "project": name, "site": site, "resources": list(resources),
                "gpuHours": str(hours), "startsAt": window[0], "endsAt": window[1],
                "transferId": f"grant:{name}:{i}"})
            ids.append(int(a["id"]))
        return ids

    def ingest(self, site, records, batch_id, cert=None, content_type="application/json"):
        """Sends one batch with the site's collector; asserts success; returns the
        IngestResponse in proto3 JSON form."""
        return self.call("Usage/Ingest", {"site": site, "batchId": batch_id,
                                          "records": records},
                         cert or f"collector-{site}", content_type)

    def cli(self, *args, cert="admin", input=None, timeout=60, extra_env=None):
        """Runs the allot CLI against this class's allotd; returns CompletedProcess."""
        files = cert_files(cert)
        argv = [cli_path(), "--server", f"https://127.0.0.1:{self.port}",
                "--ca", os.path.join(certs_dir(), "ca.crt")]
        if files:
            argv += ["--cert", files[0], "--key", files[1]]
        e = dict(os.environ)
        for k in ("ALLOT_SERVER", "ALLOT_CERT", "ALLOT_KEY", "ALLOT_CA"):
            e.pop(k, None)
        if extra_env:
            e.update(extra_env)
        return subprocess.run(argv + list(args), input=input, capture_output=True,
                              text=True, timeout=timeout, env=e)


class TwoDaemonCase(AllotTestCase):
    """AllotTestCase with a second allotd (cls.other) on the same database: no
    correctness may depend on there being only one. other_config: its extra keys."""

    other_config = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        second = os.path.join(cls.workdir, "second")
        os.makedirs(second)
        try:
            cls.other = Daemon(second, cls.dbname, **cls.other_config)
            cls.other.start()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.other.stop()
        errors = cls.other.unexpected_errors()
        super().tearDownClass()
        assert rc == 0, f"second allotd exited with {rc}"
        assert not errors, "second allotd logged errors:\n" + "\n".join(errors)

def wait_for_principal(port, cn, within=10):
    """Waits until the allotd on port knows the principal of certificate cn. A
    principal takes effect on every allotd within a second, when the table's NOTIFY
    is heard (README "Roles"), not with the answer to CreatePrincipal: a call made at
    once may still be unauthenticated."""
    deadline = time.monotonic() + within
    while True:
        # Every role may read the thresholds: 401 only while cn is not known yet.
        st, _, body = twirp(port, "Events/ListThresholds", {}, cert=cn)
        if st != 401:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"principal {cn} unknown to allotd after {within} s: {body}")
        time.sleep(0.02)


def standard_setup(tc, allocations=True):
    """The specification's world through the Admin RPC: program, organization, the two
    projects, the four sites and their default resources, a principal for each
    development certificate, and (allocations) 1000 GPU-hours on leonardo for
    acme-vision and 5000 GPU-hours on all sites for acme-llm."""
    call = tc.call if isinstance(tc, unittest.TestCase) else \
        (lambda m, b: _call_class(tc, m, b))
    call("Admin/CreateProgram", {"name": PROGRAM, "description": "AI Factories grants"})
    call("Admin/CreateOrganization", {"name": ORGANIZATION, "program": PROGRAM,
                                      "description": "a startup"})
    for p in PROJECTS:
        call("Admin/CreateProject", {"name": p, "organization": ORGANIZATION,
                                     "description": "", "users": []})
    for s in SITES:
        call("Admin/CreateSite", {"name": s, "description": f"{s} supercomputer"})
    for r in RESOURCES:
        call("Admin/CreateResource", resource_json(r))
    for cn, role, scope in PRINCIPALS:
        call("Admin/CreatePrincipal", {"subject": subject(cn), "role": role,
                                       "scope": scope})
    # The table is read whole at each notification: the last one known, all are.
    wait_for_principal(tc.daemon.port, PRINCIPALS[-1][0])
    if allocations:
        call("Admin/CreateAllocation", {
            "project": "acme-vision", "site": "leonardo", "resources": [],
            "gpuHours": "1000", "startsAt": DEFAULT_WINDOW[0], "endsAt": DEFAULT_WINDOW[1],
            "transferId": "grant:acme-vision:standard"})
        call("Admin/CreateAllocation", {
            "project": "acme-llm", "site": "", "resources": [],
            "gpuHours": "5000", "startsAt": DEFAULT_WINDOW[0], "endsAt": DEFAULT_WINDOW[1],
            "transferId": "grant:acme-llm:standard"})


def _call_class(cls, method, body):
    st, _, parsed = twirp(cls.daemon.port, method, body)
    if st != 200:
        raise AssertionError(f"setup: {method} {body!r} answered {st}: {parsed!r}")
    return parsed


def charge_units(occupied, elapsed_s, weight_per_mille):
    """The specification's charge: floor(occupied * elapsed_s * 1000 * weight / 1000)."""
    return occupied * elapsed_s * 1000 * weight_per_mille // 1000


def job(job_id, start, account, partition, gpus, cpus, mem_mb, nodes, elapsed_s,
        state="COMPLETED", step="", user="user1"):
    """A JobRecord in proto3 JSON."""
    return {"jobId": str(job_id), "step": step, "startTime": start, "account": account,
            "user": user, "partition": partition, "gpus": gpus, "cpus": cpus,
            "memMb": str(mem_mb), "nodes": nodes, "elapsedS": str(elapsed_s),
            "state": state}


def statuses(resp):
    return [r["status"].replace("INGEST_STATUS_", "") for r in resp["results"]]
