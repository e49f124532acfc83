"""allotd on a multi-host connection string, and on a server that turned read-only.

A failover leaves allotd either on a dead host or on one that refuses writes
(SQLSTATE 25006, a standby): both must answer `unavailable`, drop the connection and
find the host that serves.
"""

import os
import time
import unittest

from harness import AllotTestCase, Daemon, dsn, free_port, psql, twirp


class MultiHost(AllotTestCase):
    start_daemon = False
    standard = False

    def raw_call(self, d, method, body):
        return twirp(d.port, method, body)

    def wait_ok(self, d, method, body, seconds=15):
        deadline = time.monotonic() + seconds
        while True:
            st, _, out = self.raw_call(d, method, body)
            if st == 200 or time.monotonic() > deadline:
                return st, out
            time.sleep(0.2)

    def test_dead_first_host_is_skipped(self):
        # Nothing listens on dead: libpq tries it, then the live server.
        dead = free_port()
        live = dsn(self.dbname)
        parts = dict(kv.split("=", 1) for kv in live.split())
        conninfo = (f"host={parts['host']},{parts['host']} port={dead},{parts['port']} "
                    f"user={parts['user']} dbname={self.dbname} "
                    "target_session_attrs=read-write")
        d = Daemon(self.workdir, self.dbname, database=conninfo)
        d.start()
        try:
            st, _, body = self.raw_call(d, "Admin/CreateSite", {"name": "multi"})
            self.assertEqual(st, 200, body)
            st, _, body = self.raw_call(d, "Admin/ListSites", {})
            self.assertEqual([s["name"] for s in body["sites"]], ["multi"])
        finally:
            self.assertEqual(d.stop(), 0)

    def test_read_only_server_answers_unavailable_then_recovers(self):
        d = Daemon(self.workdir, self.dbname, db_reconnect_max_s=1)
        d.start()
        try:
            self.assertEqual(self.raw_call(d, "Admin/CreateSite", {"name": "before"})[0], 200)
            psql(f'ALTER DATABASE "{self.dbname}" SET default_transaction_read_only = on')
            # allotd's sessions reconnect and come back read-only, like a standby's.
            psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 f"WHERE datname = '{self.dbname}' AND application_name LIKE 'allotd%'")
            st, _, body = self.wait_until_unavailable(d)
            self.assertTwirpError((st, _, body), "unavailable", "database")
            psql(f'ALTER DATABASE "{self.dbname}" RESET default_transaction_read_only')
            st, body = self.wait_ok(d, "Admin/CreateSite", {"name": "after"})
            self.assertEqual(st, 200, body)
            st, _, body = self.raw_call(d, "Admin/ListSites", {})
            names = {s["name"] for s in body["sites"]}
            # The refused write left nothing; both accepted ones are there.
            self.assertLessEqual({"after", "before"}, names)
            self.assertNotIn("refused", names)
            self.assertTrue(any("read-only or shutting down" in ln for ln in d.lines()))
        finally:
            self.assertEqual(d.stop(), 0)

    def wait_until_unavailable(self, d, seconds=15):
        # The terminated sessions come back on the daemon's reconnect timer; until then
        # calls are answered unavailable for want of a connection. Wait for the refusal
        # by the read-only server itself, which the log names.
        deadline = time.monotonic() + seconds
        while True:
            st, h, body = self.raw_call(d, "Admin/CreateSite", {"name": "refused"})
            if st == 200 or time.monotonic() > deadline:
                return st, h, body
            if any("read-only or shutting down" in ln for ln in d.lines()):
                return st, h, body
            time.sleep(0.2)


if __name__ == "__main__":
    unittest.main()
