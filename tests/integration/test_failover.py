"""The bank workload through a failover to a synchronous standby: nothing
acknowledged is lost.

A durable primary, a streaming hot standby of it (pg_basebackup -R, a replication
slot) that the primary waits for at every commit (synchronous_standby_names), and two
allotd on a multi-host connection string naming both (target_session_attrs=
read-write). At a point of the workload the seed chooses, the primary is stopped with
`pg_ctl stop -m immediate` and the standby promoted (`pg_ctl promote`); the clients
keep retrying with the same ids, allotd finds the new primary, and every invariant of
banklib.Bank.check() must then hold on it, every acknowledged operation included.

  ALLOT_BANK_SEED=N  runs seed N (what a failure prints; default a random one)
"""

import os
import sys
import unittest

from banklib import Bank, OwnClusterCase, daemon_config, seeds
from harness import Daemon, psql, subject

STANDBY = "allot_standby"
DB = "failover"


class Failover(OwnClusterCase):

    prefix = "allot-it-failover-"

    @classmethod
    def start(cls):
        cls.primary, cls.pg_primary = cls.durable_cluster("primary")
        cls.migrate(DB, cls.pg_primary)
        cls.standby = cls.primary.make_standby(os.path.join(cls.workdir, "standby"),
                                               STANDBY, int(cls.pg_primary["PGPORT"]) + 10)
        cls.clusters.append(cls.standby)
        cls.primary.sync_standby(STANDBY)

    def multi_host(self):
        p, s = self.pg_primary, self.standby.vars
        return (f"host={p['PGHOST']},{s['PGHOST']} port={p['PGPORT']},{s['PGPORT']} "
                f"user={p['PGUSER']} dbname={DB} target_session_attrs=read-write "
                "connect_timeout=2")

    def test_nothing_acknowledged_is_lost(self):
        n = seeds(1)[0]
        print(f"failover: seed {n} (rerun: ALLOT_BANK_SEED={n})", file=sys.stderr, flush=True)
        # The standby is synchronous: a commit returns once the standby has it.
        self.assertEqual(psql("SELECT sync_state FROM pg_stat_replication WHERE "
                              f"application_name = '{STANDBY}'", pg=self.pg_primary), "sync")
        daemons = []
        for name in ("a", "b"):
            os.makedirs(os.path.join(self.workdir, name))
            daemons.append(Daemon(os.path.join(self.workdir, name), DB,
                                  **daemon_config(), database=self.multi_host()))
        daemons[0].add_principal(subject("admin"), "admin")
        serving = {"pg": self.pg_primary}
        try:
            for d in daemons:
                d.start()
            bank = Bank(n, daemons, DB, lambda: serving["pg"])
            bank.setup()

            def fail_over(rng):
                self.primary.crash()
                bank.faults.append(f"primary lost at {bank.done}")
                self.standby.promote()
                serving["pg"] = self.standby.vars
                bank.faults.append(f"standby promoted at {bank.done}")

            bank.run(fail_over, 1)
            self.assertEqual(psql("SELECT pg_is_in_recovery()", pg=self.standby.vars), "f")
            problems = bank.check(self.workdir, [self.primary.log(), self.standby.log()])
            print(f"failover: seed {n}: {bank.summary()}", file=sys.stderr, flush=True)
        finally:
            rcs = [d.stop() for d in daemons]
        self.assertEqual(problems, [], f"seed {n} (rerun: ALLOT_BANK_SEED={n})")
        self.assertEqual(rcs, [0, 0], f"seed {n}: allotd exit status after SIGTERM")


if __name__ == "__main__":
    unittest.main()
