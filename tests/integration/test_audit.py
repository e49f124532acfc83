"""The sealed journal end to end: allotd seals the transfers into signed, chained
blocks; `allot audit export` writes them; `allot audit verify` checks them offline
with the public key and fails, naming the entry or block, on any alteration;
`allot audit balance` answers a past balance from the export alone. Concurrent
writers that commit out of id order are all sealed exactly once, and two allotd
sealing at once make one chain."""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (AllotTestCase, TwoDaemonCase, certs_dir, dsn, job, pg_env,
                     allotd_path)

SEAL_S = 1
START = "2026-11-21T08:00:00Z"
WAIT_S = 60


def audit_config():
    return {"audit_key": os.path.join(certs_dir(), "audit.key"), "audit_seal_s": SEAL_S}


def pubkey(name="audit"):
    return os.path.join(certs_dir(), name + ".pub")


class AuditCase:
    """What the audit tests share; mixed into an AllotTestCase."""

    def wait_sealed(self, timeout=WAIT_S):
        """Waits until nothing is left in the seal queue; returns the blocks' count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.psql("SELECT count(*) FROM allot.seal_queue") == "0":
                return int(self.psql("SELECT count(*) FROM allot.blocks"))
            time.sleep(0.05)
        self.fail(f"the seal queue is not empty after {timeout} s")

    def wait_sealed_id(self, tid, timeout=WAIT_S):
        """Waits until the transfer with transfer_id tid is in a block; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.psql(f"SELECT b.number FROM allot.blocks b, allot.transfers t "
                          f"WHERE t.transfer_id = '{tid}' AND t.id = ANY (b.entries)")
            if n:
                return int(n)
            time.sleep(0.05)
        self.fail(f"transfer {tid} not sealed after {timeout} s")

    def export(self, *args, cert="auditor"):
        d = tempfile.mkdtemp(prefix="export-", dir=self.workdir)
        r = self.cli("audit", "export", *args, d, cert=cert)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^exported \d+ blocks, \d+ entries to ")
        return d

    def verify(self, d, key="audit"):
        return self.cli("audit", "verify", d, "--pubkey", pubkey(key), cert=None)

    def adjust(self, rows):
        """Inserts adjust transfers (tid, debit, credit, amount, reason) in one statement."""
        values = ", ".join(
            f"('{t}', 'adjust', {d}, {c}, {a}, 'h', 'CN=audit-test', E'{r}')"
            for t, d, c, a, r in rows)
        self.psql("INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, "
                  f"credit_account_id, amount, body_hash, principal, reason) VALUES {values}")


def lines_of(d):
    with open(os.path.join(d, "journal")) as f:
        return f.read().split("\n")[:-1]


def write_copy(base, name, lines):
    d = os.path.join(base, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "journal"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return d


class AuditJournal(AuditCase, AllotTestCase):
    """One allotd that seals every second, the standard world, and a workload of
    grants, a lien reserved, charged from and settled, charges and adjusts."""

    @classmethod
    def setUpClass(cls):
        cls.config = audit_config()
        super().setUpClass()

    def workload(self, tag):
        alloc = self.create_project(f"audit-{tag}", allocations=(("leonardo", (), 100),))[0]
        self.call("Ledger/Reserve", {
            "lienId": f"l-{tag}", "site": "leonardo", "jobId": f"{tag}-1",
            "partition": "boost_usr_prod", "account": f"audit-{tag}", "user": "ada", "gpus": 2,
            "cpus": 16, "memMb": "0", "nodes": 1, "timeLimitS": "7200"},
            cert="scheduler-leonardo")
        self.ingest("leonardo", [job(f"{tag}-1", START, f"audit-{tag}", "boost_usr_prod", 2, 16,
                                     0, 1, 1800, state="RUNNING"),
                                 job(f"{tag}-2", START, f"audit-{tag}", "boost_usr_prod", 1, 8,
                                     0, 1, 600)], f"b-{tag}")
        self.call("Ledger/Settle", {"site": "leonardo", "jobId": f"{tag}-1"},
                  cert="scheduler-leonardo")
        acct = int(self.psql(f"SELECT id FROM allot.accounts WHERE allocation_id = {alloc}"))
        # After the rest is sealed, three in one statement: the last block, of three
        # entries; reasons with a TAB, a newline, a backslash.
        self.wait_sealed()
        self.adjust([(f"adj-{tag}-{i}", acct, 1, 1000 * (i + 1), f"fix\\t{i}\\nline\\\\")
                     for i in range(3)])
        return acct

    def test_export_verifies(self):
        self.workload("ok")
        blocks = self.wait_sealed()
        entries = int(self.psql("SELECT count(*) FROM allot.transfers"))
        kinds = self.psql("SELECT string_agg(DISTINCT kind, ',' ORDER BY kind) "
                          "FROM allot.transfers")
        self.assertEqual(kinds, "adjust,charge,grant,post,reserve,void")
        self.assertEqual(self.psql("SELECT allot.check_seal()"), str(blocks))
        for cert in ("auditor", "admin"):
            d = self.export(cert=cert)
            r = self.verify(d)
            self.assertEqual(r.returncode, 0, r.stderr)
            accounts = self.psql("SELECT count(DISTINCT account) FROM allot.block_balances")
            self.assertIn(f"verified {entries} entries in {blocks} blocks (1..{blocks}), "
                          f"{accounts} accounts", r.stdout)
            last = self.psql(f"SELECT encode(hash, 'hex') FROM allot.blocks "
                             f"WHERE number = {blocks}")
            self.assertIn(f"last block {blocks} sealed at ", r.stdout)
            self.assertIn(f"hash {last}", r.stdout)
        # The reasons' escapes came back byte for byte.
        self.assertIn("fix\\t0\\nline\\\\", "\n".join(lines_of(d)))

    def test_altered_exports_fail(self):
        self.workload("alt")
        self.wait_sealed()
        d = self.export()
        base = tempfile.mkdtemp(prefix="altered-", dir=self.workdir)
        lines = lines_of(d)
        entries = [i for i, ln in enumerate(lines) if ln.startswith("E\t")]
        blocks = [i for i, ln in enumerate(lines) if ln.startswith("B\t")]
        balances = [i for i, ln in enumerate(lines) if ln.startswith("A\t")]
        # The block of the three adjusts: three entries in a row of one block.
        adj = [i for i in entries if "\tadj-alt-" in lines[i]]
        self.assertEqual(len(adj), 3)
        self.assertEqual(len({lines[i].split("\t")[1] for i in adj}), 1)

        def name(i):
            f = lines[i].split("\t")
            return (f"line {i + 1}: entry {f[3]} (transfer \"{f[5]}\", block {f[1]}, "
                    f"position {f[2]})")

        def block_of(i):
            return lines[i].split("\t")[1]

        def changed(i, field, new):
            f = lines[i].split("\t")
            f[field] = new
            out = list(lines)
            out[i] = "\t".join(f)
            return out

        def rehashed(i, field, new):
            """The entry changed and its own hash made again, as a forger would."""
            import hashlib
            f = lines[i].split("\t")
            f[field] = new
            f[-1] = hashlib.sha256("\t".join(f[:-1]).encode()).hexdigest()
            out = list(lines)
            out[i] = "\t".join(f)
            return out

        a0, a1, a2 = adj
        amount = lines[a1].split("\t")[9]
        blk = lines[blocks[-1]].split("\t")
        last_sig = blk[9]
        first_block_line = blocks[0]
        cases = [
            ("an entry's byte", changed(a1, 9, str(int(amount) + 1)),
             f"{name(a1)}: its hash does not match its fields"),
            ("an entry's reason, rehashed", rehashed(a1, 12, "forged"),
             f"block {block_of(a1)}: entries_hash does not match its entries"),
            ("a block's time", changed(blocks[-1], 2, blk[2][:-2] + ("1Z" if blk[2][-2] != "1"
                                                                       else "2Z")),
             f"line {blocks[-1] + 1}: block {blk[1]}: its hash does not match its fields"),
            ("a signature's byte",
             changed(blocks[-1], 9, last_sig[:10] + ("0" if last_sig[10] != "0" else "1") +
                     last_sig[11:]),
             f"line {blocks[-1] + 1}: block {blk[1]}: the signature is not the audit key's"),
            ("two entries swapped", lines[:a0] + [lines[a1], lines[a0]] + lines[a0 + 2:],
             f"line {a0 + 1}: entry {lines[a1].split(chr(9))[3]} (transfer \"adj-alt-1\", "
             f"block {block_of(a1)}, position {lines[a1].split(chr(9))[2]}): expected position "
             f"{lines[a0].split(chr(9))[2]}"),
            ("an entry removed", lines[:a1] + lines[a1 + 1:],
             f"line {a1 + 1}: entry {lines[a2].split(chr(9))[3]}"),
            ("the last entry of a block removed", lines[:a2] + lines[a2 + 1:],
             f"block {block_of(a2)}: account 1 states credits posted"),
            ("an entry added", lines[:a1 + 1] + [lines[a1]] + lines[a1 + 1:],
             f"line {a1 + 2}: entry {lines[a1].split(chr(9))[3]}"),
            ("a balance's byte", changed(balances[0], 4, str(int(lines[balances[0]].split(
                "\t")[4]) + 1)), f"line {balances[0] + 1}: block 1: account"),
            ("a block removed", lines[:first_block_line] + lines[first_block_line + 1:],
             f"line {first_block_line + 1}: entry"),
            ("cut short", lines[:blocks[-1]], f"block {blk[1]} end without their block line"),
        ]
        for what, altered, expect in cases:
            with self.subTest(what):
                r = self.verify(write_copy(base, re.sub(r"\W", "_", what), altered))
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn(expect, r.stderr)
                self.assertEqual(r.stdout, "")
        with self.subTest("another key"):
            r = self.verify(d, key="other-audit")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn(f"line {first_block_line + 1}: block 1: the signature is not the "
                          "audit key's", r.stderr)
        # The export itself still verifies: the copies changed, not it.
        self.assertEqual(self.verify(d).returncode, 0)

    def test_balance_at_a_past_time(self):
        acct = self.workload("bal")
        self.wait_sealed()
        d = self.export()
        # The allocation: 100 GPU-hours granted (360,000,000 units); the reservation of
        # 2 GPUs for 7200 s held 14,400,000; usage charged 2 GPUs x 1800 s = 3,600,000
        # from the lien, and 1 GPU x 600 s = 600,000 directly; the settle released the
        # remaining 10,800,000; then adjusts of 1,000, 2,000 and 3,000 units.
        at = self.psql("SELECT allot.audit_time(created_at - interval '1 microsecond') "
                       "FROM allot.transfers WHERE transfer_id = 'adj-bal-0'")
        r = self.cli("audit", "balance", d, "--account", str(acct), "--at", at,
                     "--pubkey", pubkey(), cert=None)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"debits posted +4200000\n")
        self.assertRegex(r.stdout, r"credits posted +360000000\n")
        self.assertRegex(r.stdout, r"debits pending +0\n")
        self.assertRegex(r.stdout, r"balance +355800000  \(98\.83 GPU-h\)")
        # At the first adjust's own time, it counts: 1,000 more debits.
        at = self.psql("SELECT allot.audit_time(created_at) FROM allot.transfers "
                       "WHERE transfer_id = 'adj-bal-0'")
        r = self.cli("audit", "balance", d, "--account", str(acct), "--at", at, cert=None)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"debits posted +4201000\n")
        self.assertIn("signatures not checked", r.stdout)
        # While the lien held its 14,400,000: just after the reservation.
        at = self.psql("SELECT allot.audit_time(created_at) FROM allot.transfers "
                       "WHERE lien = 'l-bal' AND kind = 'reserve'")
        r = self.cli("audit", "balance", d, "--account", str(acct), "--at", at, cert=None)
        self.assertRegex(r.stdout, r"debits pending +14400000\n")
        self.assertRegex(r.stdout, r"available +345600000  \(96\.00 GPU-h\)")
        # Bad questions.
        r = self.cli("audit", "balance", d, "--account", "999999", "--at", at, cert=None)
        self.assertEqual(r.returncode, 1)
        self.assertIn("account 999999 has no entry", r.stderr)
        r = self.cli("audit", "balance", d, "--account", str(acct), "--at", "yesterday",
                     cert=None)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--at: \"yesterday\" is not an RFC 3339 time", r.stderr)

    def test_export_from_a_time(self):
        self.workload("from")
        blocks = self.wait_sealed()
        self.assertGreaterEqual(blocks, 2)
        k = blocks  # the last block: an export that starts after the beginning
        at = self.psql(f"SELECT allot.audit_time(sealed_at) FROM allot.blocks WHERE number = {k}")
        d = self.export("--from", at)
        r = self.verify(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"verified 3 entries in 1 blocks ({k}..{k})", r.stdout)
        self.assertIn(f"starts after block {k - 1}", r.stdout)
        # --to before it: the blocks before k.
        d = self.export("--to", at)
        r = self.verify(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"blocks (1..{k - 1})", r.stdout)

    def test_pages(self):
        self.workload("pg")
        blocks = self.wait_sealed()
        seen, after = [], "0"
        for _ in range(blocks + 1):
            page = self.call("Audit/ListBlocks", {"after": after, "maxEntries": 1},
                             cert="auditor")
            seen += [int(b["number"]) for b in page["blocks"]]
            self.assertEqual(len(page["blocks"]), 1, "a page of one entry holds one block")
            after = page.get("nextAfter", "0")
            if after == "0":
                break
        self.assertEqual(seen, list(range(1, blocks + 1)))

    def test_roles_and_bad_input(self):
        for cert in ("project-acme-vision", "collector-leonardo", "scheduler-leonardo"):
            self.assertTwirpError(self.twirp("Audit/ListBlocks", {}, cert=cert),
                                  "permission_denied")
        self.assertTwirpError(self.twirp("Audit/ListBlocks", {"maxEntries": 50001}),
                              "invalid_argument", "maxEntries must be between 1 and 50000")
        self.assertTwirpError(self.twirp("Audit/ListBlocks", {
            "from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
            "invalid_argument", "must be before")
        self.assertTwirpError(self.twirp("Audit/ListBlocks", {"from": "soon"}),
                              "invalid_argument")
        r = self.cli("audit", "export", "--from", "soon", self.workdir, cert="auditor")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--from: \"soon\" is not an RFC 3339 time", r.stderr)
        r = self.cli("audit", "export", os.path.join(self.workdir, "denied"),
                     cert="project-acme-vision")
        self.assertEqual(r.returncode, 1)
        self.assertIn("permission_denied", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "denied", "journal")))
        r = self.cli("audit", "verify", self.workdir, cert=None)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--pubkey KEY is required", r.stderr)
        r = self.cli("audit", "verify", os.path.join(self.workdir, "nothing"), "--pubkey",
                     pubkey(), cert=None)
        self.assertEqual(r.returncode, 2)
        self.assertIn("could not open", r.stderr)
        r = self.cli("audit", "verify", self.workdir, "--pubkey",
                     os.path.join(certs_dir(), "server.crt"), cert=None)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not an Ed25519 public key", r.stderr)

    def test_the_service_role_cannot_alter_the_journal(self):
        self.workload("role")
        self.wait_sealed()
        # allotd's own connection string: the role it runs as.
        conn = dsn(self.dbname, self.daemon.pg)
        for sql in ("UPDATE allot.transfers SET amount = amount + 1",
                    "DELETE FROM allot.transfers",
                    "TRUNCATE allot.transfers CASCADE",
                    "UPDATE allot.blocks SET accounts = accounts",
                    "DELETE FROM allot.blocks",
                    "UPDATE allot.block_balances SET debits_posted = 0",
                    "DELETE FROM allot.block_balances"):
            with self.subTest(sql):
                r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conn,
                                    "-c", sql], capture_output=True, text=True,
                                   env=pg_env(self.daemon.pg), timeout=60)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("is append-only", r.stderr)
        self.assertEqual(self.verify(self.export()).returncode, 0)

    def test_pubkey(self):
        r = self.daemon.run("--audit-pubkey")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(pubkey()) as f:
            self.assertEqual(r.stdout, f.read())


class AuditKeyRefused(AllotTestCase):
    """allotd refuses to start with an audit key that is not an Ed25519 private key."""

    start_daemon = False

    def test_bad_keys(self):
        for path, msg in ((os.path.join(certs_dir(), "server.key"), "is not an Ed25519 key"),
                          (os.path.join(certs_dir(), "audit.pub"), "not a PEM private key"),
                          (os.path.join(self.workdir, "missing.key"), "could not open")):
            with self.subTest(path):
                self.daemon.write_config(audit_key=path)
                for args in ((), ("--audit-pubkey",)):
                    r = self.daemon.run(*args, timeout=30)
                    self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                    self.assertIn(msg, r.stderr)
        self.daemon.write_config()
        r = self.daemon.run("--audit-pubkey")
        self.assertEqual(r.returncode, 1)
        self.assertIn("audit_key is not set", r.stderr)


class ConcurrentSealing(AuditCase, TwoDaemonCase):
    """Two allotd on one database, both sealing every second."""

    @classmethod
    def setUpClass(cls):
        cls.config = audit_config()
        cls.other_config = audit_config()
        super().setUpClass()

    def session(self):
        """A psql session kept open, fed on stdin."""
        return subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                 "-d", self.dbname], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=pg_env(self.daemon.pg))

    def test_out_of_id_order(self):
        # Four accounts, two for each writer: the journal's trigger locks a transfer's
        # accounts until commit, and the late writer must not wait for the early one.
        prog, a1, a2 = (int(x) for x in self.psql(
            "SELECT (SELECT min(id) FROM allot.accounts WHERE kind = 'program') || ' ' || "
            "min(id) || ' ' || max(id) FROM allot.accounts WHERE kind = 'allocation'").split())
        self.assertNotEqual(a1, a2)
        early = self.session()
        try:
            # The early transaction takes its id first and commits last.
            early.stdin.write(
                "BEGIN;\nINSERT INTO allot.transfers (transfer_id, kind, debit_account_id, "
                f"credit_account_id, amount, body_hash, principal) VALUES ('early', 'adjust', "
                f"{a1}, {prog}, 7, 'h', 'CN=t') RETURNING id;\n")
            early.stdin.flush()
            early_id = int(early.stdout.readline())
            self.adjust([("late", a2, 1, 8, "")])
            late_id = int(self.psql("SELECT id FROM allot.transfers WHERE transfer_id = 'late'"))
            self.assertGreater(late_id, early_id)
            late_block = self.wait_sealed_id("late")
            self.assertEqual(self.psql(f"SELECT count(*) FROM allot.blocks "
                                       f"WHERE {early_id} = ANY (entries)"), "0")
            early.stdin.write("COMMIT;\n")
            early.stdin.close()
            self.assertEqual(early.wait(timeout=60), 0, early.stderr.read())
        finally:
            if early.poll() is None:
                early.kill()
                early.wait()
        early_block = self.wait_sealed_id("early")
        self.assertGreater(early_block, late_block)
        self.wait_sealed()
        self.check_one_chain()

    def check_one_chain(self):
        total = self.psql("SELECT count(*) FROM allot.transfers")
        self.assertEqual(self.psql("SELECT count(*) || ' ' || count(DISTINCT e) "
                                   "FROM allot.blocks, unnest(entries) e"), f"{total} {total}")
        self.assertEqual(self.psql(
            "SELECT count(*) FROM allot.transfers t WHERE NOT EXISTS "
            "(SELECT 1 FROM allot.blocks b WHERE t.id = ANY (b.entries))"), "0")
        # Numbered 1..N, each on its predecessor's hash.
        self.assertEqual(self.psql(
            "SELECT count(*) FROM (SELECT number, prev_hash, lag(hash) OVER w AS h, "
            "lag(number) OVER w AS n FROM allot.blocks WINDOW w AS (ORDER BY number)) x "
            "WHERE (n IS NULL AND (number <> 1 OR prev_hash <> '\\x"
            + "00" * 32 + "'::bytea)) OR (n IS NOT NULL AND (number <> n + 1 OR prev_hash <> h))"),
            "0")
        self.assertEqual(self.psql("SELECT allot.check_seal()"),
                         self.psql("SELECT count(*) FROM allot.blocks"))
        d = self.export()
        r = self.verify(d)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_many_writers_two_sealers(self):
        self.create_project("conc", allocations=(("leonardo", (), 10000),))
        acct = int(self.psql("SELECT a.id FROM allot.accounts a JOIN allot.allocations al "
                             "ON al.id = a.allocation_id JOIN allot.projects p "
                             "ON p.id = al.project_id WHERE p.name = 'conc'"))
        errors = []

        def ingest_writer(w):
            daemon = self.daemon if w % 2 == 0 else self.other
            try:
                for b in range(10):
                    recs = [job(f"c{w}-{b}-{i}", START, "conc", "boost_usr_prod", 1, 8, 0, 1,
                                60 + i) for i in range(20)]
                    st, _, body = self.twirp_to(daemon, "Usage/Ingest", {
                        "site": "leonardo", "batchId": f"c{w}-{b}", "records": recs})
                    if st != 200:
                        errors.append(f"writer {w}: {st} {body}")
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(f"writer {w}: {e!r}")

        def sql_writer(w):
            try:
                for b in range(20):
                    self.adjust([(f"s{w}-{b}-{i}", acct, 1, 1 + i, "") for i in range(5)])
            except Exception as e:  # noqa: BLE001
                errors.append(f"sql writer {w}: {e!r}")

        threads = [threading.Thread(target=ingest_writer, args=(w,)) for w in range(4)]
        threads += [threading.Thread(target=sql_writer, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        self.assertEqual(errors, [])
        self.assertEqual(self.psql("SELECT count(*) FROM allot.transfers "
                                   "WHERE transfer_id LIKE 'charge:leonardo:c%' "
                                   "OR transfer_id ~ '^s[0-9]-'"),
                         str(4 * 10 * 20 + 2 * 20 * 5))
        blocks = self.wait_sealed()
        self.check_one_chain()
        # The last block's sealer logged it in the callback that counts it.
        last = self.psql("SELECT max(number) FROM allot.blocks")
        rx = re.compile(rf"sealed block {last}: ")
        deadline = time.monotonic() + WAIT_S
        while not any(rx.search(ln) for d in (self.daemon, self.other) for ln in d.lines()):
            self.assertLess(time.monotonic(), deadline, f"no allotd logged sealing block {last}")
            time.sleep(0.05)
        sealed = {"blocks": 0, "entries": 0}
        for d in (self.daemon, self.other):
            st, body = d.healthz("/metrics")
            self.assertEqual(st, 200)
            text = body.decode() if isinstance(body, bytes) else body
            for k in sealed:
                m = re.search(rf"^allot_audit_{k}_sealed_total (\d+)$", text, re.M)
                self.assertIsNotNone(m, f"no allot_audit_{k}_sealed_total in /metrics")
                sealed[k] += int(m.group(1))
        self.assertEqual(sealed, {
            "blocks": blocks,
            "entries": int(self.psql("SELECT count(*) FROM allot.transfers"))})

    def twirp_to(self, daemon, method, body):
        from harness import twirp
        return twirp(daemon.port, method, body, "collector-leonardo")


if __name__ == "__main__":
    unittest.main()
