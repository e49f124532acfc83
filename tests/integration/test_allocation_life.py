"""An allocation's life through the real allotd and the real CLI: deposits, moves,
refunds, adjustments and the credit limit, each with its replay and its refusals;
the window enforced for reservations; and expiry exactly once with two allotd.
Every figure is worked out in the test.

A GPU-hour is 3,600,000 units. On LEONARDO's boost_usr_prod (weight 1000) one GPU
for one second is 1,000 units.
"""

import datetime
import json
import re
import time

from harness import ORGANIZATION, PROGRAM, AllotTestCase, TwoDaemonCase, job

H = 3_600_000
SITE, PART = "leonardo", "boost_usr_prod"


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def reserve_req(lien, job_id, account, limit_s):
    """One GPU (8 cores) for limit_s seconds: limit_s * 1,000 units."""
    return {"lienId": lien, "site": SITE, "jobId": str(job_id), "partition": PART,
            "account": account, "user": "ada", "gpus": 1, "cpus": 8, "memMb": "0",
            "nodes": 1, "timeLimitS": str(limit_s)}


class AllocationLife(AllotTestCase):
    """Each test has its own projects; the CLI does every change."""

    def project(self, name, gpu_hours, window=None):
        w = window or (rfc3339(now() - datetime.timedelta(days=1)),
                       rfc3339(now() + datetime.timedelta(days=30)))
        (alloc,) = self.create_project(name, allocations=((SITE, (), gpu_hours),), window=w)
        return alloc

    def life(self, *args, cert="admin"):
        """Runs `allot --format json allocation ARGS`; returns (exit status, answer or
        stderr)."""
        r = self.cli("--format", "json", "allocation", *args, cert=cert)
        if r.returncode == 0:
            return 0, json.loads(r.stdout)
        return r.returncode, r.stderr

    def ok(self, *args):
        rc, out = self.life(*args)
        self.assertEqual(rc, 0, f"allot allocation {' '.join(args)}: {out}")
        return out

    def refused(self, code, *args, parts=()):
        before = self.counts()
        rc, err = self.life(*args)
        self.assertEqual(rc, 1, f"allot allocation {' '.join(args)} answered {err!r}")
        self.assertIn(code, err)
        for p in parts:
            self.assertIn(p, err)
        self.assertEqual(self.counts(), before, "a refusal changes nothing")
        return err

    def available(self, alloc):
        return int(self.psql("SELECT allot.available_of(ac) FROM allot.accounts ac "
                             f"WHERE ac.allocation_id = {alloc}"))

    def transfer(self, tid):
        return self.psql("SELECT kind || ' ' || amount || ' ' || principal || ' ' || reason "
                         f"FROM allot.transfers WHERE transfer_id = '{tid}'")

    def check_books(self):
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")
        self.assertEqual(self.psql("SELECT allot.check_allocation_life()"), "t")

    def test_deposit(self):
        a = self.project("life-dep", 10)
        # 10 GPU-h = 36,000,000; + 2.5 GPU-h (9,000,000) = 45,000,000.
        first = self.ok("deposit", str(a), "--gpu-hours", "2.5", "--reason", "top-up",
                        "--id", "dep-1")
        self.assertEqual((first["kind"], first["amountUnits"], first["availableUnits"]),
                         ("deposit", "9000000", "45000000"))
        self.assertEqual(self.transfer("dep-1"),
                         "deposit 9000000 CN=admin,O=Allot Dev top-up")
        self.assertEqual(self.ok("deposit", str(a), "--gpu-hours", "2.5", "--reason",
                                 "top-up", "--id", "dep-1"), first,
                         "a replay prints the first answer")
        self.assertEqual(self.available(a), 45_000_000, "and deposits nothing twice")
        self.refused("already_exists", "deposit", str(a), "--units", "1", "--reason",
                     "top-up", "--id", "dep-1")
        self.refused("invalid_argument", "deposit", str(a), "--units", "0", "--reason", "x",
                     "--id", "dep-0", parts=("must be positive",))
        self.refused("invalid_argument", "deposit", str(a), "--gpu-hours", "-1", "--reason",
                     "x", "--id", "dep-n", parts=("must be positive, not -3600000",))
        self.refused("not_found", "deposit", "999999", "--units", "5", "--reason", "x",
                     "--id", "dep-u", parts=("allocation 999999 does not exist",))
        # Admin only: the project itself may not add to its grant.
        st, _, body = self.twirp("Allocations/Deposit", {
            "transferId": "dep-p", "allocationId": str(a), "amountUnits": "5",
            "reason": "x"}, cert="project-acme-llm")
        self.assertEqual((st, body["code"]), (403, "permission_denied"))
        # The CLI refuses a command line that lacks what the server would need.
        r = self.cli("allocation", "deposit", str(a), "--units", "5", "--reason", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs --id", r.stderr)
        # A GPU-hour is 3,600,000 units: 5 decimals are exact (36 units), a 6th is not.
        r = self.cli("allocation", "deposit", str(a), "--gpu-hours", "0.000001",
                     "--reason", "x", "--id", "dep-d")
        self.assertEqual(r.returncode, 2)
        self.assertIn("at most 5 decimals", r.stderr)
        tiny = self.ok("deposit", str(a), "--gpu-hours", "0.00001", "--reason", "tiny",
                       "--id", "dep-t")
        # 45,000,000 + 36 = 45,000,036.
        self.assertEqual((tiny["amountUnits"], tiny["availableUnits"]), ("36", "45000036"))
        r = self.cli("allocation", "changes", str(a))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("top-up", r.stdout)
        self.check_books()

    def test_move(self):
        a = self.project("life-mv-a", 10)
        b = self.project("life-mv-b", 5)
        self.call("Admin/CreateOrganization", {"name": "other-org", "program": PROGRAM})
        self.call("Admin/CreateProject", {"name": "life-mv-x", "organization": "other-org"})
        (x,) = [int(self.call("Admin/CreateAllocation", {
            "project": "life-mv-x", "site": SITE, "gpuHours": "5",
            "startsAt": rfc3339(now() - datetime.timedelta(days=1)),
            "endsAt": rfc3339(now() + datetime.timedelta(days=30)),
            "transferId": "grant:life-mv-x"})["id"])]
        # 3 GPU-h from A to B (one organization, acme): A 36,000,000 - 10,800,000 =
        # 25,200,000; B 18,000,000 + 10,800,000 = 28,800,000.
        m = self.ok("move", "--from", str(a), "--to", str(b), "--gpu-hours", "3",
                    "--reason", "rebalance", "--id", "mv-1")
        self.assertEqual((m["fromAvailableUnits"], m["availableUnits"]),
                         ("25200000", "28800000"))
        self.assertEqual(self.ok("move", "--from", str(a), "--to", str(b), "--gpu-hours", "3",
                                 "--reason", "rebalance", "--id", "mv-1"), m)
        self.assertEqual((self.available(a), self.available(b)), (25_200_000, 28_800_000))
        self.refused("already_exists", "move", "--from", str(a), "--to", str(b),
                     "--gpu-hours", "4", "--reason", "rebalance", "--id", "mv-1")
        self.refused("failed_precondition", "move", "--from", str(a), "--to", str(x),
                     "--gpu-hours", "1", "--reason", "x", "--id", "mv-x",
                     parts=("within one organization",))
        # B has 28,800,000: 9 GPU-h (32,400,000) do not fit.
        self.refused("resource_exhausted", "move", "--from", str(b), "--to", str(a),
                     "--gpu-hours", "9", "--reason", "x", "--id", "mv-big",
                     parts=("28800000 available",))
        self.refused("invalid_argument", "move", "--from", str(b), "--to", str(a),
                     "--units", "-1", "--reason", "x", "--id", "mv-neg")
        self.refused("not_found", "move", "--from", "999999", "--to", str(a),
                     "--units", "1", "--reason", "x", "--id", "mv-u")
        self.check_books()

    def test_refund_and_adjust(self):
        a = self.project("life-ref", 10)
        # 4 GPU-h of usage (14,400 s on one GPU = 14,400,000): 36,000,000 - 14,400,000 =
        # 21,600,000.
        start = rfc3339(now() - datetime.timedelta(hours=5))
        self.ingest(SITE, [job(7001, start, "life-ref", PART, 1, 8, 0, 1, 14400)], "lr-1")
        self.assertEqual(self.available(a), 21_600_000)
        # Refund 1.5 GPU-h (5,400,000): 27,000,000; 14,400,000 - 5,400,000 = 9,000,000
        # may still be refunded.
        r = self.ok("refund", str(a), "--gpu-hours", "1.5", "--reason", "node failure",
                    "--id", "ref-1")
        self.assertEqual(r["availableUnits"], "27000000")
        self.assertEqual(self.ok("refund", str(a), "--gpu-hours", "1.5", "--reason",
                                 "node failure", "--id", "ref-1"), r)
        self.refused("failed_precondition", "refund", str(a), "--units", "9000001",
                     "--reason", "x", "--id", "ref-2",
                     parts=("usage charged it 14400000 units, 5400000 were refunded and 0 "
                            "credited by incidents already, so 9000000 can be refunded",))
        self.refused("invalid_argument", "refund", str(a), "--units", "0", "--reason", "x",
                     "--id", "ref-0")
        # Adjust -2 GPU-h: 27,000,000 - 7,200,000 = 19,800,000; then +0.25 GPU-h
        # (900,000): 20,700,000.
        self.assertEqual(self.ok("adjust", str(a), "--gpu-hours", "-2", "--reason",
                                 "granted twice", "--id", "adj-1")["availableUnits"], "19800000")
        adj = self.ok("adjust", str(a), "--gpu-hours", "0.25", "--reason", "goodwill",
                      "--id", "adj-2")
        self.assertEqual(adj["availableUnits"], "20700000")
        self.assertEqual(self.ok("adjust", str(a), "--gpu-hours", "0.25", "--reason",
                                 "goodwill", "--id", "adj-2"), adj)
        self.assertEqual(self.transfer("adj-1"),
                         "adjust 7200000 CN=admin,O=Allot Dev granted twice")
        self.refused("invalid_argument", "adjust", str(a), "--units", "0", "--reason", "x",
                     "--id", "adj-0")
        self.refused("resource_exhausted", "adjust", str(a), "--units", "-20700001",
                     "--reason", "x", "--id", "adj-3")
        changes = self.ok("changes", str(a))["changes"]
        self.assertEqual([c["kind"] for c in changes], ["refund", "adjust", "adjust"])
        self.check_books()

    def test_credit_limit(self):
        a = self.project("life-cl", 2)
        # 2 GPU-h = 7,200,000 available; a job of 3 GPU-h (10,800,000) does not fit.
        st, _, body = self.twirp("Ledger/Reserve", reserve_req("cl-l1", 7101, "life-cl", 10800),
                                 cert="scheduler-leonardo")
        self.assertEqual((st, body["code"]), (429, "resource_exhausted"))
        # A credit limit of 1.5 GPU-h (5,400,000): 7,200,000 + 5,400,000 = 12,600,000
        # >= 10,800,000, and available goes to 7,200,000 - 10,800,000 = -3,600,000.
        cl = self.ok("credit-limit", str(a), "--gpu-hours", "1.5", "--reason",
                     "funder allows", "--id", "cl-1")
        self.assertEqual(cl["creditLimitUnits"], "5400000")
        lien = self.call("Ledger/Reserve", reserve_req("cl-l1", 7101, "life-cl", 10800),
                         cert="scheduler-leonardo")
        self.assertEqual(lien["availableUnits"], "-3600000")
        # Left to reserve: -3,600,000 + 5,400,000 = 1,800,000; 1 GPU-h (3,600,000) is
        # beyond the credit limit.
        st, _, body = self.twirp("Ledger/Reserve", reserve_req("cl-l2", 7102, "life-cl", 3600),
                                 cert="scheduler-leonardo")
        self.assertEqual((st, body["code"]), (429, "resource_exhausted"))
        self.assertEqual(body["meta"]["credit_limit_units"], "5400000")
        self.assertEqual(body["meta"]["available_units"], "-3600000")
        # Running on credit is not exhausted: the heartbeat says go on.
        hb = self.call("Ledger/Heartbeat", {"site": SITE, "jobId": "7101", "elapsedS": "60"},
                       cert="scheduler-leonardo")
        self.assertEqual(hb["action"], "HEARTBEAT_ACTION_CONTINUE")
        self.refused("invalid_argument", "credit-limit", str(a), "--units", "-1", "--reason",
                     "x", "--id", "cl-2")
        self.refused("already_exists", "credit-limit", str(a), "--units", "1", "--reason",
                     "funder allows", "--id", "cl-1")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.transfers "
                                   "WHERE transfer_id = 'cl-1'"), "0",
                         "a credit limit moves no units")
        self.check_books()

    def test_window(self):
        later = (rfc3339(now() + datetime.timedelta(days=10)),
                 rfc3339(now() + datetime.timedelta(days=20)))
        a = self.project("life-win", 10, window=later)
        st, _, body = self.twirp("Ledger/Reserve", reserve_req("win-1", 7201, "life-win", 3600),
                                 cert="scheduler-leonardo")
        self.assertEqual((st, body["code"]), (412, "failed_precondition"))
        self.assertIn(f"allocation {a} is open from {later[0]} to {later[1]}", body["msg"])
        st, _, body = self.twirp("Ledger/ReserveCampaign", {
            "lienId": "win-c", "site": SITE, "partition": PART, "project": "life-win",
            "gpuHours": "1", "endsAt": rfc3339(now() + datetime.timedelta(days=5))})
        self.assertEqual((st, body["code"]), (412, "failed_precondition"))
        q = self.call("Ledger/Quote", {"site": SITE, "partition": PART, "account": "life-win",
                                       "gpus": 1, "cpus": 8, "memMb": "0", "nodes": 1,
                                       "timeLimitS": "3600"})
        self.assertFalse(q.get("allowed", False))
        self.assertIn("is open from", q["reason"])
        self.assertEqual(self.psql("SELECT count(*) FROM allot.liens WHERE id LIKE 'win-%'"), "0")


    def test_every_method_times_every_role(self):
        a = self.project("life-roles", 10)
        b = self.project("life-roles-b", 10)
        certs = {"admin": "admin", "auditor": "auditor", "collector": "collector-leonardo",
                 "scheduler": "scheduler-leonardo", "project": "project-acme-llm"}
        methods = {
            "Deposit": ({"allocationId": str(a), "amountUnits": "1"}, {"admin"}),
            "Move": ({"fromAllocationId": str(a), "allocationId": str(b), "amountUnits": "1"},
                     {"admin"}),
            "Adjust": ({"allocationId": str(a), "amountUnits": "-1"}, {"admin"}),
            "SetCreditLimit": ({"allocationId": str(a), "amountUnits": "1"}, {"admin"}),
            "ListChanges": ({"allocationId": str(a)}, {"admin", "auditor"}),
        }
        for method, (body, allowed) in methods.items():
            for role, cert in certs.items():
                with self.subTest(method=method, role=role):
                    req = dict(body, transferId=f"roles-{method}-{role}", reason="roles")
                    if method == "ListChanges":
                        req = body
                    resp = self.twirp("Allocations/" + method, req, cert=cert)
                    if role in allowed:
                        self.assertEqual(resp[0], 200, f"{method} as {role}: {resp[2]!r}")
                    else:
                        self.assertTwirpError(resp, "permission_denied", role)
        # Admin's four changes moved 1 unit each way but the credit limit: A 36,000,000
        # + 1 (deposit) - 1 (move) - 1 (adjust) = 35,999,999; B 36,000,001.
        self.assertEqual((self.available(a), self.available(b)), (35_999_999, 36_000_001))


class AllocationExpiry(TwoDaemonCase):
    """Five allocations whose window ends a few seconds from now, two allotd
    expiring every second: each remainder moves to the expired account once."""

    config = other_config = {"allocation_expiry_s": 1}

    def test_expiry_once_with_two_daemons(self):
        end = now() + datetime.timedelta(seconds=3)
        window = (rfc3339(end - datetime.timedelta(hours=1)), rfc3339(end))
        ids = []
        for i in range(5):
            # i + 1 GPU-h each: 1 + 2 + 3 + 4 + 5 = 15 GPU-h = 54,000,000 units.
            (a,) = self.create_project(f"exp-{i}", allocations=((SITE, (), i + 1),),
                                       window=window)
            ids.append(a)
        # A hold on exp-4 (5 GPU-h) of 1 GPU-h: it is released at the end, and the
        # whole 18,000,000 expire.
        lien = self.call("Ledger/Reserve", reserve_req("exp-l", 7301, "exp-4", 3600),
                         cert="scheduler-leonardo")
        self.assertEqual(lien["heldUnits"], "3600000")
        marks = [len(d.lines()) for d in (self.daemon, self.other)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.psql("SELECT count(*) FROM allot.transfers WHERE kind = 'expire'") == "5":
                break
            time.sleep(0.1)
        # Both daemons ran after the end: each logged a run that found nothing left.
        for d, mark in zip((self.daemon, self.other), marks):
            d.wait_log(r"no allocation to expire", since=mark, timeout=10)
        rows = self.psql("SELECT string_agg(transfer_id || '=' || amount, ' ' ORDER BY id) "
                         "FROM allot.transfers WHERE kind = 'expire'")
        self.assertEqual(rows, " ".join(f"expire:{a}={(i + 1) * H}" for i, a in enumerate(ids)))
        self.assertEqual(self.psql("SELECT credits_posted FROM allot.accounts "
                                   "WHERE kind = 'expired'"), str(15 * H))
        self.assertEqual(self.psql("SELECT status FROM allot.liens WHERE id = 'exp-l'"),
                         "expired")
        logged = 0
        for d in (self.daemon, self.other):
            for line in d.lines():
                if "expired the remainder of" in line:
                    logged += int(line.split("remainder of ")[1].split()[0])
        self.assertEqual(logged, 5, "the two allotd together expired each allocation once")
        counted = 0
        for d in (self.daemon, self.other):
            st, body = d.healthz("/metrics")
            self.assertEqual(st, 200)
            text = body.decode() if isinstance(body, bytes) else body
            m = re.search(r"^allot_allocations_expired_total (\d+)$", text, re.M)
            self.assertIsNotNone(m, "no allot_allocations_expired_total in /metrics")
            counted += int(m.group(1))
        self.assertEqual(counted, 5, "allot_allocations_expired_total of the two allotd")
        # After the end: no reservation, no deposit; the record names the service.
        st, _, body = self.twirp("Ledger/Reserve", reserve_req("exp-l2", 7302, "exp-0", 60),
                                 cert="scheduler-leonardo")
        self.assertEqual((st, body["code"]), (412, "failed_precondition"))
        r = self.cli("--format", "json", "allocation", "deposit", str(ids[0]), "--units", "5",
                     "--reason", "late", "--id", "exp-dep")
        self.assertEqual(r.returncode, 1)
        self.assertIn("failed_precondition", r.stderr)
        r = self.cli("--format", "json", "allocation", "changes", str(ids[2]))
        self.assertEqual(r.returncode, 0, r.stderr)
        (c,) = json.loads(r.stdout)["changes"]
        self.assertEqual((c["kind"], c["principal"], c["amountUnits"], c["availableUnits"]),
                         ("expire", "allotd", str(3 * H), "0"))
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")
        self.assertEqual(self.psql("SELECT allot.check_allocation_life()"), "t")
