"""The bank workload (Jepsen's bank test, in TigerBeetle's style of seeded runs),
shared by test_bank (allotd killed, PostgreSQL crashed) and test_failover (the
primary lost, the synchronous standby promoted).

A seed fixes the world (projects, allocations, credit limits, which allocations end
during the run), every client's list of operations (reserve, ingest, settle, release,
deposit, move, refund, adjust) with its ids and bodies, and the fault schedule. The
processes are real, so the interleaving is not fixed: a seed reruns the same
operations and the same faults at the same points of the workload (counted in
operations answered), not the same history.

Each client retries an operation with the same ids and body, on either allotd, until
it gets a definite answer: an `unavailable` answer, a connection refused or cut, or no
answer in time is retried; anything else is recorded. Bank.check() then proves the
invariants against the database and the sealed journal, and returns what failed.
"""

import datetime
import http.client
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import types
import unittest

from harness import (ORGANIZATION, Daemon, PgCluster, cli_path, certs_dir, job, psql,
                     standard_setup, twirp)

H = 3_600_000
SITE, PART = "leonardo", "boost_usr_prod"
RETRY_S = 120          # an operation with no definite answer after this is a failure
CALL_TIMEOUT_S = 20    # one attempt
REFUSALS = {"resource_exhausted", "failed_precondition"}  # definite, change nothing
CLOSED = {"LIEN_STATUS_SETTLED", "LIEN_STATUS_RELEASED", "LIEN_STATUS_EXPIRED",
          "LIEN_STATUS_REPLACED"}


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def daemon_config(seal_s=1):
    """What every allotd of the workload runs with: it seals, expires and sweeps
    every second, and reconnects fast."""
    return {"audit_key": os.path.join(certs_dir(), "audit.key"), "audit_seal_s": seal_s,
            "allocation_expiry_s": 1, "lien_sweep_s": 1, "db_reconnect_max_s": 1}


def seeds(default=3):
    """The seeds to run: ALLOT_BANK_SEED=N alone, else ALLOT_BANK_SEEDS=K (default
    default) from a random first one."""
    one = os.environ.get("ALLOT_BANK_SEED")
    if one:
        return [int(one)]
    k = int(os.environ.get("ALLOT_BANK_SEEDS", str(default)))
    first = random.SystemRandom().randrange(1, 1_000_000)
    return list(range(first, first + k))


class OwnClusterCase(unittest.TestCase):
    """A test class with PostgreSQL clusters of its own: the class's set-up makes
    cls.workdir (named after prefix) and runs its start(), which appends what it
    starts to cls.clusters; its end stops them, last first, and removes the folder
    (kept with ALLOT_KEEP=1)."""

    maxDiff = None
    prefix = "allot-it-cluster-"

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix=cls.prefix, dir=os.environ.get("ALLOT_TMP"))
        cls.clusters = []
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for c in reversed(cls.clusters):
                c.stop()
        finally:
            if os.environ.get("ALLOT_KEEP") != "1":
                shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def durable_cluster(cls, name):
        """A durable cluster of this class's, in workdir/name, started; returns it and
        its psql variables."""
        c = PgCluster(os.path.join(cls.workdir, name), durable=True)
        cls.clusters.append(c)
        return c, c.start()

    @classmethod
    def migrate(cls, db, pg):
        """Creates database db on the cluster of pg and applies the migrations."""
        psql(f"CREATE DATABASE {db}", pg=pg)
        r = Daemon(cls.workdir, db, pg=pg).run("--migrate", timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"allotd --migrate failed: {r.stderr}")


class Op:
    """One operation: its RPC, certificate and body (fixed by the seed), and what
    came of it."""

    def __init__(self, kind, method, cert, body, key):
        self.kind, self.method, self.cert, self.body, self.key = kind, method, cert, body, key
        self.status = None    # HTTP status of the definite answer
        self.answer = None    # its parsed body
        self.attempts = 0

    @property
    def code(self):
        return "ok" if self.status == 200 else (self.answer or {}).get("code", "?")

    def __repr__(self):
        return f"{self.kind} {self.key} -> {self.status} {self.answer!r}"


class Bank:
    """One seed's world and workload on the allotd in daemons (harness.Daemon, all on
    database db of the cluster whose psql variables pg gives, a callable since a
    failover changes them)."""

    def __init__(self, seed, daemons, db, pg, clients=8, stories=10):
        self.seed = seed
        self.daemons = daemons
        self.db = db
        self.pg = pg
        self.clients = clients
        self.stories = stories
        self.rng = random.Random(f"bank:{seed}")
        self.ops = []
        self.lock = threading.Lock()
        self.problems = []
        self.faults = []      # what the fault schedule did, in order

    # ---------------------------------------------------------------- the world

    def sql(self, q):
        return psql(q, self.db, self.pg())

    def admin(self, method, body):
        st, _, out = twirp(self.daemons[0].port, method, body)
        if st != 200:
            raise AssertionError(f"seed {self.seed}: setup {method} answered {st}: {out!r}")
        return out

    def setup(self):
        """The standard world without its allocations, then 3 to 5 projects of the one
        organization with one allocation each on LEONARDO, some of them ending a few
        seconds into the run (expiry), some with a credit limit."""
        standard_setup(types.SimpleNamespace(daemon=self.daemons[0]), allocations=False)
        now = utcnow()
        self.allocs = []     # (project, allocation id, ends during the run, credit limit)
        for i in range(self.rng.randint(3, 5)):
            name = f"bank-{i}"
            self.admin("Admin/CreateProject", {"name": name, "organization": ORGANIZATION,
                                               "description": "bank test"})
            ends_soon = i > 0 and self.rng.random() < 0.4
            ends = now + (datetime.timedelta(seconds=self.rng.randint(3, 8)) if ends_soon
                          else datetime.timedelta(days=30))
            hours = self.rng.randint(20, 80)
            a = self.admin("Admin/CreateAllocation", {
                "project": name, "site": SITE, "resources": [], "gpuHours": str(hours),
                "startsAt": rfc3339(now - datetime.timedelta(days=1)), "endsAt": rfc3339(ends),
                "transferId": f"grant:{name}"})
            limit = self.rng.choice([0, 0, H, 3 * H])
            if limit:
                self.admin("Allocations/SetCreditLimit", {
                    "transferId": f"cl:{name}", "allocationId": a["id"],
                    "amountUnits": str(limit), "reason": "the funder allows"})
            self.allocs.append((name, int(a["id"]), ends_soon, limit))
        self.job_start = rfc3339(now - datetime.timedelta(minutes=1))

    # ---------------------------------------------------------------- the workload

    def plan(self, client):
        """Client's operations, in order: each story is a job's (reserve, usage,
        settle or release, sometimes both) or an allocation's change."""
        rng = random.Random(f"bank:{self.seed}:{client}")
        ops = []
        for s in range(self.stories):
            key = f"{self.seed}-{client}-{s}"
            name, alloc, _, _ = rng.choice(self.allocs)
            if rng.random() < 0.65:
                ops += self.job_story(rng, key, name, client * 1000 + s)
            else:
                ops.append(self.change(rng, key, alloc))
        return ops

    def job_story(self, rng, key, project, n):
        job_id = str(700000 + self.seed % 1000 * 10000 + n)
        gpus, limit_s = rng.randint(1, 4), rng.randint(600, 4 * 3600)
        lien = f"lien-{key}"

        def reserve(lien_id):
            body = {"lienId": lien_id, "site": SITE, "jobId": job_id, "partition": PART,
                    "account": project, "user": "ada", "gpus": gpus, "cpus": 8 * gpus,
                    "memMb": "0", "nodes": 1, "timeLimitS": str(limit_s)}
            if rng.random() < 0.15:   # expires while the story runs (lien_sweep_s is 1)
                body["expiresInS"] = str(rng.randint(1, 3))
            return Op("reserve", "Ledger/Reserve", "scheduler-leonardo", body, lien_id)

        ops = [reserve(lien)]
        if rng.random() < 0.15:   # the job reserved again under a new id: a replacement
            lien = f"lien-{key}-again"
            ops.append(reserve(lien))
        ran = rng.random() < 0.7
        elapsed = 0
        for b in range(rng.randint(1, 2) if ran else 0):
            elapsed += rng.randint(60, limit_s // 2 + 60)
            batch = f"batch-{key}-{b}"
            ops.append(Op("ingest", "Usage/Ingest", "collector-leonardo", {
                "site": SITE, "batchId": batch, "records": [
                    job(job_id, self.job_start, project, PART, gpus, 8 * gpus, 0, 1, elapsed,
                        state="RUNNING")]}, batch))
        ends = ["Ledger/Settle" if ran else "Ledger/Release"]
        if rng.random() < 0.3:   # resolved twice at once: one closes it, one answers it
            ends.append(rng.choice(["Ledger/Settle", "Ledger/Release"]))
        ops.append([Op(m.split("/")[1].lower(), m, "scheduler-leonardo",
                       {"site": SITE, "lienId": lien}, lien) for m in ends])
        return ops

    def change(self, rng, key, alloc):
        kind = rng.choice(["deposit", "move", "refund", "adjust", "adjust"])
        tid = f"{kind}-{key}"
        body = {"transferId": tid, "allocationId": str(alloc), "reason": f"bank {kind}"}
        units = rng.randint(1, 4 * H)
        if kind == "move":
            others = [a for _, a, _, _ in self.allocs if a != alloc]
            body["fromAllocationId"] = str(rng.choice(others))
        if kind == "refund":
            units = rng.randint(1, H // 4)
        if kind == "adjust" and rng.random() < 0.5:
            units = -units
        body["amountUnits"] = str(units)
        return Op(kind, "Allocations/" + kind.capitalize(), "admin", body, tid)

    def call(self, op, rng):
        """Sends op until a definite answer; records it."""
        deadline = time.monotonic() + RETRY_S
        while True:
            op.attempts += 1
            d = rng.choice(self.daemons)
            try:
                st, _, out = twirp(d.port, op.method, op.body, op.cert, timeout=CALL_TIMEOUT_S)
            except (OSError, http.client.HTTPException) as e:
                st, out = None, repr(e)
            if st not in (None, 0, 503):
                op.status, op.answer = st, out
                return
            if time.monotonic() > deadline:
                op.status, op.answer = None, f"no definite answer after {RETRY_S} s: {out!r}"
                return
            time.sleep(rng.uniform(0.02, 0.2))   # a client's backoff, not a synchronisation

    def client(self, plan, n):
        """Runs plan's operations in order; a list in it is sent all at once."""
        rng = random.Random(f"bank:{self.seed}:{n}:route")
        for step in plan:
            group = step if isinstance(step, list) else [step]
            with self.lock:
                self.ops.extend(group)
            if len(group) == 1:
                self.call(group[0], rng)
            else:
                ts = [threading.Thread(target=self.call,
                                       args=(op, random.Random(f"{rng.random()}")))
                      for op in group]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            with self.progress:
                self.done += len(group)
                self.progress.notify_all()

    def run(self, fault=None, faults=3):
        """Runs every client at once; if fault is given, calls fault(rng) faults times,
        each once the number of operations answered reaches a point the seed chose
        (the moments are the workload's, not the clock's). Returns when all clients
        have their answers and the last fault is over."""
        plans = [self.plan(n) for n in range(self.clients)]
        total = sum(len(step) if isinstance(step, list) else 1 for p in plans for step in p)
        self.done = 0
        self.progress = threading.Condition()
        frng = random.Random(f"bank:{self.seed}:faults")
        points = sorted(frng.sample(range(1, total * 3 // 4), faults)) if fault else []
        threads = [threading.Thread(target=self.client, args=(p, n), daemon=True)
                   for n, p in enumerate(plans)]
        for t in threads:
            t.start()
        try:
            for at in points:
                with self.progress:
                    self.progress.wait_for(lambda: self.done >= at, timeout=RETRY_S)
                fault(frng)
        except Exception as e:  # a fault that failed is a failure, reported by check()
            with self.lock:
                self.problems.append(f"fault injection failed: {e}")
        for t in threads:
            t.join()

    # ---------------------------------------------------------------- the checks

    def replay(self):
        """Sends every operation that succeeded once more (no faults now): each must
        answer what it answered first."""
        rng = random.Random(f"bank:{self.seed}:replay")
        out = []
        for op in self.ops:
            if op.status != 200:
                continue
            again = Op(op.kind, op.method, op.cert, op.body, op.key)
            self.call(again, rng)
            first, second = op.answer, again.answer
            if op.kind == "ingest":
                # A replayed batch answers its refused records as first refused and
                # every other one DUPLICATE (README "Ingestion").
                first = [r["status"] == "INGEST_STATUS_REJECTED" for r in first["results"]]
                second = [r["status"] == "INGEST_STATUS_REJECTED"
                          for r in (second or {}).get("results", [])]
            elif op.kind in ("settle", "release") and isinstance(second, dict):
                # A closed lien is answered as it is; available is the allocation's now.
                first = {k: v for k, v in first.items() if k != "availableUnits"}
                second = {k: v for k, v in second.items() if k != "availableUnits"}
            if again.status != 200 or first != second:
                out.append(f"{op.kind} {op.key}: first answer {op.answer!r}, "
                           f"its retry {again.status} {again.answer!r}")
        return out

    def wait_quiet(self, timeout=60):
        """Waits until every allocation that ended has expired what it had and the
        seal queue is empty (allotd does both every second)."""
        deadline = time.monotonic() + timeout
        # The allocations that end during the run have ended.
        self.sql("SELECT pg_sleep(greatest(0, extract(epoch FROM max(ends_at) - now()))) "
                 "FROM allot.allocations WHERE ends_at < now() + interval '1 hour'")
        q = ("SELECT (SELECT count(*) FROM allot.seal_queue) + (SELECT count(*) "
             "FROM allot.allocations al JOIN allot.accounts ac ON ac.allocation_id = al.id "
             "WHERE al.ends_at <= now() AND (allot.available_of(ac) > 0 "
             "OR ac.debits_pending > 0))")
        while True:
            left = self.sql(q)
            if left == "0":
                return []
            if time.monotonic() > deadline:
                return [f"after {timeout} s, {left} queued entries or unexpired allocations"]
            time.sleep(0.2)

    def check_functions(self):
        out = []
        for f in ("check_ledger", "check_allocation_life", "check_account_flows",
                  "check_project_usage", "check_site_days", "check_seal"):
            try:
                r = self.sql(f"SELECT allot.{f}()")
            except AssertionError as e:
                r = str(e)
            if r in ("", "f") or not (r == "t" or r.isdigit()):
                out.append(f"allot.{f}() answered {r!r}")
        return out

    def sql_problems(self, what, q):
        rows = self.sql(q)
        return [f"{what}: {r}" for r in rows.splitlines() if r]

    def check_journal(self):
        out = []
        out += self.sql_problems("debits and credits differ", """
            SELECT sum(credits_posted) - sum(debits_posted),
                   sum(credits_pending) - sum(debits_pending)
            FROM allot.accounts
            HAVING sum(credits_posted) <> sum(debits_posted)
                OR sum(credits_pending) <> sum(debits_pending)""")
        out += self.sql_problems("a transfer id twice", """
            SELECT transfer_id, count(*) FROM allot.transfers GROUP BY transfer_id
            HAVING count(*) > 1""")
        # A lien: one reserve; resolved (voided) at most once; never posted above
        # what it held; closed means nothing held.
        out += self.sql_problems("a lien resolved twice or posted above its hold", """
            SELECT l.id, l.status, l.held, t.reserves, t.voids, t.reserved, t.posted, t.voided
            FROM allot.liens l
            JOIN (SELECT lien, count(*) FILTER (WHERE kind = 'reserve') AS reserves,
                         count(*) FILTER (WHERE kind = 'void') AS voids,
                         coalesce(sum(amount) FILTER (WHERE kind = 'reserve'), 0) AS reserved,
                         coalesce(sum(amount) FILTER (WHERE kind = 'post'), 0) AS posted,
                         coalesce(sum(amount) FILTER (WHERE kind = 'void'), 0) AS voided
                  FROM allot.transfers WHERE lien IS NOT NULL GROUP BY lien) t ON t.lien = l.id
            WHERE t.reserves <> 1 OR t.voids > 1 OR t.posted + t.voided > t.reserved
               OR (l.status <> 'active' AND l.held <> 0)""")
        # Expiry: once per allocation and remainder, never before the end.
        out += self.sql_problems("an expiry before the end", """
            SELECT t.transfer_id, t.created_at, al.ends_at FROM allot.transfers t
            JOIN allot.accounts ac ON ac.id = t.debit_account_id
            JOIN allot.allocations al ON al.id = ac.allocation_id
            WHERE t.kind = 'expire' AND t.created_at < al.ends_at""")
        out += self.sql_problems("an ended allocation still holds", """
            SELECT l.id FROM allot.liens l JOIN allot.allocations al ON al.id = l.allocation_id
            WHERE l.status = 'active' AND al.ends_at <= now()""")
        return out

    def check_acknowledged(self):
        """Every definite answer: a success is in the database, a refusal is a
        refusal the rules allow and left nothing, and nothing else was answered."""
        out = []
        limits = {a: cl for _, a, _, cl in self.allocs}
        reserved = {op.key: op.code for op in self.ops if op.kind == "reserve"}
        for op in self.ops:
            if op.status is None:
                out.append(f"{op.kind} {op.key}: {op.answer}")
                continue
            if op.status != 200:
                if op.code == "not_found" and op.kind in ("settle", "release") and \
                        reserved.get(op.key) in REFUSALS:
                    continue   # the reservation was refused: there is no lien to settle
                if op.code not in REFUSALS:
                    out.append(f"{op.kind} {op.key}: answered {op.status} {op.answer!r}")
                elif op.kind in ("reserve",) and self.sql(
                        f"SELECT count(*) FROM allot.liens WHERE id = '{op.key}'") != "0":
                    out.append(f"reserve {op.key} was refused but its lien exists")
                elif op.kind not in ("reserve", "ingest", "settle", "release") and self.sql(
                        f"SELECT count(*) FROM allot.transfers WHERE transfer_id = '{op.key}'"
                        ) != "0":
                    out.append(f"{op.kind} {op.key} was refused but its transfer exists")
                continue
            a = op.answer
            if op.kind == "reserve":
                row = self.sql("SELECT l.allocation_id || ' ' || t.amount FROM allot.liens l "
                               "JOIN allot.transfers t ON t.lien = l.id AND t.kind = 'reserve' "
                               f"WHERE l.id = '{op.key}'")
                if row != f"{a['allocationId']} {a['amountUnits']}":
                    out.append(f"reserve {op.key} answered {a!r}; the database has {row!r}")
                alloc = int(a["allocationId"])
                if int(a.get("availableUnits", 0)) + limits.get(alloc, 0) < 0:
                    out.append(f"reserve {op.key} left allocation {alloc} with "
                               f"{a.get('availableUnits')} available, credit limit "
                               f"{limits.get(alloc, 0)}")
            elif op.kind in ("settle", "release"):
                st = self.sql(f"SELECT status FROM allot.liens WHERE id = '{op.key}'")
                if a.get("status") not in CLOSED or st in ("", "active"):
                    out.append(f"{op.kind} {op.key} answered {a.get('status')}; the lien is "
                               f"{st!r}")
            elif op.kind == "ingest":
                rec = op.body["records"][0]
                if a["results"][0]["status"] == "INGEST_STATUS_REJECTED":
                    out.append(f"ingest {op.key}: rejected {a['results'][0]!r}")
                    continue
                got = self.sql("SELECT elapsed_s FROM allot.job_usage WHERE site = 'leonardo' "
                               f"AND job_id = '{rec['jobId']}' AND step = ''")
                if not got or int(got) < int(rec["elapsedS"]):
                    out.append(f"ingest {op.key} acknowledged elapsed {rec['elapsedS']}; the "
                               f"database has {got!r}")
            else:
                amount = abs(int(op.body["amountUnits"]))
                row = self.sql("SELECT kind || ' ' || amount FROM allot.transfers "
                               f"WHERE transfer_id = '{op.key}'")
                if row != f"{op.kind} {amount}":
                    out.append(f"{op.kind} {op.key} acknowledged; the journal has {row!r}")
        return out

    def check_audit(self, workdir):
        """Exports the sealed journal with the auditor's certificate and verifies it
        offline with the public key."""
        d = os.path.join(workdir, f"export-{self.seed}")
        c = certs_dir()
        base = [cli_path(), "--server", f"https://127.0.0.1:{self.daemons[0].port}",
                "--ca", os.path.join(c, "ca.crt"), "--cert", os.path.join(c, "auditor.crt"),
                "--key", os.path.join(c, "auditor.key")]
        r = subprocess.run(base + ["audit", "export", d], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            return [f"allot audit export failed: {r.stderr}"]
        r = subprocess.run([cli_path(), "audit", "verify", d, "--pubkey",
                            os.path.join(c, "audit.pub")], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            return [f"allot audit verify failed: {r.stderr}"]
        n = self.sql("SELECT count(*) FROM allot.transfers")
        if f"verified {n} entries" not in r.stdout:
            return [f"allot audit verify: {r.stdout.strip()!r}, the journal holds {n} entries"]
        return []

    def check_logs(self, pg_logs=()):
        """No deadlock anywhere, no sanitizer report in allotd's logs."""
        out = []
        for d in self.daemons:
            for ln in d.lines():
                if ("deadlock" in ln or "AddressSanitizer" in ln or "runtime error" in ln
                        or "LeakSanitizer" in ln):
                    out.append(f"allotd log: {ln}")
        for text in pg_logs:
            for ln in text.splitlines():
                if "deadlock detected" in ln:
                    out.append(f"postgres log: {ln}")
        return out

    def check(self, workdir, pg_logs=()):
        """Every invariant; returns what failed (empty: all hold)."""
        out = list(self.problems)
        out += self.check_acknowledged()
        out += self.replay()
        out += self.wait_quiet()
        out += self.check_functions()
        out += self.check_journal()
        out += self.check_audit(workdir)
        out += self.check_logs(pg_logs)
        return out

    def summary(self):
        codes = {}
        for op in self.ops:
            codes[f"{op.kind}:{op.code}"] = codes.get(f"{op.kind}:{op.code}", 0) + 1
        retried = sum(1 for op in self.ops if op.attempts > 1)
        expired = self.sql("SELECT count(*) FROM allot.transfers WHERE kind = 'expire'")
        return (f"{len(self.ops)} operations, {retried} retried, {expired} expiries, faults "
                f"{', '.join(self.faults) or 'none'}; answers {json.dumps(codes, sort_keys=True)}")
