"""The bank test: Jepsen's bank test in TigerBeetle's style of seeded runs.

Its own durable PostgreSQL (fsync and synchronous commit on), two allotd on one
database, and banklib's seeded workload from many clients at once, while at random
(seeded) moments an allotd is killed with SIGKILL and started again, or PostgreSQL
is stopped with `pg_ctl stop -m immediate` and started again (crash recovery).
After each seed every invariant of banklib.Bank.check() must hold.

  ALLOT_BANK_SEED=N   runs seed N only (what a failure prints)
  ALLOT_BANK_SEEDS=K  runs K seeds from a random first one (default 3)
"""

import os
import subprocess
import sys
import unittest

from banklib import Bank, OwnClusterCase, daemon_config, seeds
from harness import AllotTestCase, Daemon, pg_env, psql, subject

FAULTS = 3   # per seed


class BankTest(OwnClusterCase):

    prefix = "allot-it-bank-"

    @classmethod
    def start(cls):
        cls.cluster, cls.pg = cls.durable_cluster("pg")
        cls.migrate("bank_template", cls.pg)

    def test_seeds(self):
        for seed in seeds():
            with self.subTest(seed=seed):
                self.run_seed(seed)

    def run_seed(self, seed):
        print(f"bank: seed {seed} (rerun: ALLOT_BANK_SEED={seed})", file=sys.stderr,
              flush=True)
        db = f"bank_{seed}"
        psql(f"CREATE DATABASE {db} TEMPLATE bank_template STRATEGY FILE_COPY", pg=self.pg)
        here = os.path.join(self.workdir, f"seed-{seed}")
        daemons = []
        for name in ("a", "b"):
            os.makedirs(os.path.join(here, name))
            daemons.append(Daemon(os.path.join(here, name), db, pg=self.pg, **daemon_config()))
        daemons[0].add_principal(subject("admin"), "admin")
        try:
            for d in daemons:
                d.start()
            bank = Bank(seed, daemons, db, lambda: self.pg)
            bank.setup()

            def fault(rng):
                if rng.random() < 0.6:
                    i = rng.randrange(len(daemons))
                    daemons[i].kill()
                    bank.faults.append(f"allotd {'ab'[i]} killed at {bank.done}")
                    daemons[i].start()
                else:
                    self.cluster.crash()
                    bank.faults.append(f"postgres crashed at {bank.done}")
                    self.cluster.start()

            bank.run(fault, FAULTS)
            problems = bank.check(here, [self.cluster.log()])
            print(f"bank: seed {seed}: {bank.summary()}", file=sys.stderr, flush=True)
        finally:
            rcs = [d.stop() for d in daemons]
        self.assertEqual(problems, [], f"seed {seed} (rerun: ALLOT_BANK_SEED={seed})")
        self.assertEqual(rcs, [0, 0], f"seed {seed}: allotd exit status after SIGTERM")
        psql(f"DROP DATABASE {db} WITH (FORCE)", pg=self.pg)


if __name__ == "__main__":
    unittest.main()


class LockOrder(AllotTestCase):
    """What the bank test found (0015): a writer that holds an allocation's row FOR
    UPDATE and waits for its accounts, as ingestion does between its allocations and
    the journal, must not be waited for by a reservation or an allocation change
    that already holds those accounts; before 0015 their foreign keys' KEY SHARE on
    the allocation made the two deadlock. Here the allocation stays locked by a
    session of its own while the calls run: each must answer without it."""

    def test_writers_do_not_wait_for_a_locked_allocation(self):
        (alloc,) = self.create_project("lock-order", allocations=(("leonardo", (), 10),))
        holder = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dbname],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=pg_env())
        try:
            holder.stdin.write("BEGIN;\nSELECT 'locked ' || id FROM allot.allocations "
                               f"WHERE id = {alloc} FOR UPDATE;\n")
            holder.stdin.flush()
            self.assertEqual(holder.stdout.readline().strip(), f"locked {alloc}")
            calls = [
                ("Allocations/Deposit", {"transferId": "lo-dep", "allocationId": str(alloc),
                                         "amountUnits": "1000", "reason": "top-up"}, "admin"),
                ("Ledger/Reserve", {"lienId": "lo-lien", "site": "leonardo", "jobId": "4242",
                                    "partition": "boost_usr_prod", "account": "lock-order",
                                    "user": "ada", "gpus": 1, "cpus": 8, "memMb": "0",
                                    "nodes": 1, "timeLimitS": "600"}, "scheduler-leonardo"),
            ]
            for method, body, cert in calls:
                try:
                    st, _, out = self.twirp(method, body, cert=cert, timeout=10)
                except OSError as e:
                    self.fail(f"{method} waited for the locked allocation: {e!r}")
                self.assertEqual(st, 200, f"{method}: {out!r}")
        finally:
            holder.stdin.write("ROLLBACK;\n")
            holder.stdin.close()
            holder.wait(30)
        self.assertEqual(self.psql("SELECT count(*) FROM allot.liens WHERE id = 'lo-lien'"), "1")
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")
