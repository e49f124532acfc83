"""Principals in memory: every allotd reads allot.principals at start, again when the
table's trigger notifies allot_principals, and again after reconnecting. A principal
added or removed, through either allotd or straight in SQL, takes effect on both
within a second, without a restart (and one that the table lacks is looked up again
before it is refused, so a new principal is known from its commit on); while
PostgreSQL restarts, allotd keeps the principals it read, and reads them again once
it is back."""

import json
import os
import time
import unittest

from harness import (AllotTestCase, Daemon, PgCluster, TwoDaemonCase, make_cert, psql, subject,
                     twirp)

# The bound on how long a change may take to reach every allotd.
WITHIN_S = 1.0
POLL_S = 0.05


def outcome(port, cert, method="Admin/ListSites", body=None):
    """'ok', or the Twirp error code of calling method with cert."""
    st, _, parsed = twirp(port, method, body if body is not None else {}, cert=cert)
    if st == 200:
        return "ok"
    return parsed["code"] if isinstance(parsed, dict) else f"HTTP {st}"


class Waiting:
    """Polling with a deadline: a change must be seen within a bound, never slept on."""

    def await_outcome(self, ports, cert, want, within=WITHIN_S, method="Admin/ListSites",
                      body=None):
        """Polls every POLL_S until every port answers cert's call with want ('ok' or an
        error code); fails after within seconds with what each port answered last."""
        deadline = time.monotonic() + within
        pending = set(ports)
        last = {}
        while True:
            for port in sorted(pending):
                last[port] = outcome(port, cert, method, body)
                if last[port] == want:
                    pending.discard(port)
            if not pending:
                return
            if time.monotonic() >= deadline:
                self.fail(f"{cert} calling {method}: wanted {want} within {within} s, "
                          f"got {last} from ports {sorted(pending)}")
            time.sleep(POLL_S)


class TwoDaemons(Waiting, TwoDaemonCase):
    """Two allotd on one database, as test_slice_concurrency runs them."""
    standard = False

    @property
    def ports(self):
        return (self.port, self.other.port)

    def test_added_then_removed_through_the_rpc(self):
        cert = make_cert("notify-rpc")
        principal = {"subject": subject(cert), "role": "ROLE_AUDITOR", "scope": ""}
        self.await_outcome(self.ports, cert, "unauthenticated", within=0)
        self.assertEqual(self.call("Admin/CreatePrincipal", principal), principal)
        self.await_outcome(self.ports, cert, "ok")
        # Removed through the other allotd: the first one hears of it from PostgreSQL.
        st, _, removed = twirp(self.other.port, "Admin/RemovePrincipal",
                               {"subject": subject(cert)})
        self.assertEqual((st, removed), (200, principal))
        self.await_outcome(self.ports, cert, "unauthenticated")
        msg = self.assertTwirpError(self.twirp("Admin/ListSites", {}, cert=cert),
                                    "unauthenticated", subject(cert))
        self.assertIn("not a known principal", msg)
        self.assertTwirpError(self.twirp("Admin/RemovePrincipal", {"subject": subject(cert)}),
                              "not_found", f'principal "{subject(cert)}" does not exist')

    def test_added_changed_and_removed_in_sql(self):
        cert = make_cert("notify-sql")
        subj = subject(cert).replace("'", "''")
        self.await_outcome(self.ports, cert, "unauthenticated", within=0)
        self.psql(f"INSERT INTO allot.principals (subject, role) VALUES ('{subj}', 'admin')")
        self.await_outcome(self.ports, cert, "ok")
        # Demoted: admin calls become permission_denied on both.
        self.psql(f"UPDATE allot.principals SET role = 'auditor' WHERE subject = '{subj}'")
        for port in self.ports:
            self.await_outcome([port], cert, "permission_denied", method="Admin/CreateProgram",
                               body={"name": f"demoted-{port}"})
        self.await_outcome(self.ports, cert, "ok")
        self.psql(f"DELETE FROM allot.principals WHERE subject = '{subj}'")
        self.await_outcome(self.ports, cert, "unauthenticated")

    def test_known_at_once_without_a_notification(self):
        # Inserted with triggers off (session_replication_role = replica), so that no
        # notification is sent: neither allotd has read it, and yet the first call on
        # each is served, since a subject the table lacks waits for a fresh read.
        cert = make_cert("notify-silent")
        subj = subject(cert).replace("'", "''")
        self.await_outcome(self.ports, cert, "unauthenticated", within=0)
        self.psql("SET session_replication_role = replica; "
                  f"INSERT INTO allot.principals (subject, role) VALUES ('{subj}', 'auditor')")
        self.await_outcome(self.ports, cert, "ok", within=0)
        # Created through one allotd, it is known on the other at its first call.
        other = make_cert("notify-at-once")
        principal = {"subject": subject(other), "role": "ROLE_AUDITOR", "scope": ""}
        self.assertEqual(self.call("Admin/CreatePrincipal", principal), principal)
        self.await_outcome([self.other.port], other, "ok", within=0)
        self.psql(f"DELETE FROM allot.principals WHERE subject IN ('{subj}', "
                  f"'{subject(other)}')")
        self.await_outcome(self.ports, cert, "unauthenticated")

    def test_many_changes_in_a_burst(self):
        # Transactions committed back to back, each notifying: notifications that come
        # while a reading runs fold into one more, and both end with the last state.
        certs = [make_cert(f"notify-burst-{i}") for i in range(3)]
        burst = [f"BEGIN; INSERT INTO allot.principals (subject, role) "
                 f"VALUES ('{subject(cert)}', 'auditor'); COMMIT;" for cert in certs]
        burst.append(f"BEGIN; DELETE FROM allot.principals "
                     f"WHERE subject = '{subject(certs[0])}'; COMMIT;")
        self.psql(" ".join(burst))
        self.await_outcome(self.ports, certs[0], "unauthenticated")
        for cert in certs[1:]:
            self.await_outcome(self.ports, cert, "ok")
        self.psql("DELETE FROM allot.principals WHERE subject LIKE 'CN=notify-burst-%'")
        for cert in certs:
            self.await_outcome(self.ports, cert, "unauthenticated")

    def test_cli_remove_principal(self):
        cert = make_cert("notify-cli")
        r = self.cli("admin", "create-principal", "--subject", subject(cert), "--role",
                     "auditor")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.await_outcome(self.ports, cert, "ok")
        r = self.cli("--format", "json", "admin", "remove-principal", "--subject",
                     subject(cert))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout),
                         {"subject": subject(cert), "role": "ROLE_AUDITOR", "scope": ""})
        self.await_outcome(self.ports, cert, "unauthenticated")
        r = self.cli("admin", "remove-principal", "--subject", subject(cert))
        self.assertEqual(r.returncode, 1)
        self.assertIn("not_found", r.stderr)

    def test_only_admin_removes(self):
        self.call("Admin/CreatePrincipal", {"subject": "CN=keep-me", "role": "ROLE_AUDITOR"})
        make_cert("auditor")
        self.psql(f"INSERT INTO allot.principals (subject, role) "
                  f"VALUES ('{subject('auditor')}', 'auditor') ON CONFLICT DO NOTHING")
        self.await_outcome([self.port], "auditor", "ok")
        self.assertTwirpError(self.twirp("Admin/RemovePrincipal", {"subject": "CN=keep-me"},
                                         cert="auditor"),
                              "permission_denied", "auditor", "Admin/RemovePrincipal")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.principals "
                                   "WHERE subject = 'CN=keep-me'"), "1")


class DatabaseRestart(Waiting, AllotTestCase):
    """PostgreSQL stopped and started under a running allotd, on a cluster of its own."""
    start_daemon = False
    standard = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = PgCluster(os.path.join(cls.workdir, "pg2"))
        try:
            cls.pg = cls.cluster.start()
            psql("CREATE DATABASE allot", pg=cls.pg)
            d = cls.new_daemon("migrate")
            r = d.run("--migrate")
            assert r.returncode == 0, r.stderr
            d.add_principal(subject("admin"), "admin")
        except BaseException:
            cls.cluster.stop()
            cls._cleanup_class()
            raise

    @classmethod
    def new_daemon(cls, name):
        folder = os.path.join(cls.workdir, name)
        os.makedirs(folder)
        return Daemon(folder, "allot", pg=cls.pg, db_reconnect_max_s=1)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()
        super().tearDownClass()

    def psql2(self, sql):
        return psql(sql, "allot", self.pg)

    def start_daemon_checked(self):
        self.d = self.new_daemon(self._testMethodName)
        self.d.start()
        self.addCleanup(self.stop_daemon_checked)

    def stop_daemon_checked(self):
        rc = self.d.stop()
        self.assertEqual(rc, 0)
        # Lost connections are warnings, not errors.
        self.assertEqual(self.d.unexpected_errors(), [])

    def test_cached_while_down_and_read_again_after(self):
        self.start_daemon_checked()
        port = self.d.port
        kept, added = make_cert("restart-kept"), make_cert("restart-added")
        self.assertEqual(twirp(port, "Admin/CreatePrincipal",
                               {"subject": subject(kept), "role": "ROLE_AUDITOR"})[0], 200)
        self.await_outcome([port], kept, "ok")
        # Changes that notify nobody: only a reading after the reconnection shows them.
        self.psql2("BEGIN; ALTER TABLE allot.principals DISABLE TRIGGER principals_notify;"
                   f"INSERT INTO allot.principals (subject, role) "
                   f"VALUES ('{subject(added)}', 'auditor');"
                   f"DELETE FROM allot.principals WHERE subject = '{subject(kept)}';"
                   "ALTER TABLE allot.principals ENABLE TRIGGER principals_notify; COMMIT")
        self.cluster.stop()
        try:
            # The principals read before serve on: the role check needs no database,
            # and a call the role allows fails on the database, not on authentication.
            self.assertTwirpError(twirp(port, "Admin/CreateSite", {"name": "x"}, cert=kept),
                                  "permission_denied", "auditor")
            self.assertTwirpError(twirp(port, "Admin/ListSites", {}, cert=kept),
                                  "unavailable", "database")
            self.assertTwirpError(twirp(port, "Admin/ListSites", {}, cert=added),
                                  "unauthenticated", subject(added))
        finally:
            self.cluster.start()
        # Reconnection (backoff up to db_reconnect_max_s = 1) and a full reading.
        self.await_outcome([port], added, "ok", within=15)
        self.await_outcome([port], kept, "unauthenticated", within=WITHIN_S)
        # And notifications work again on the new listening connection.
        self.psql2(f"DELETE FROM allot.principals WHERE subject = '{subject(added)}'")
        self.await_outcome([port], added, "unauthenticated")

    def test_unavailable_until_first_read(self):
        self.cluster.stop()
        try:
            self.start_daemon_checked()
            self.assertTwirpError(twirp(self.d.port, "Admin/ListSites", {}),
                                  "unavailable", "database is unavailable")
            self.assertTwirpError(twirp(self.d.port, "Admin/ListSites", {}, cert="auditor"),
                                  "unavailable", "database is unavailable")
        finally:
            self.cluster.start()
        self.await_outcome([self.d.port], "admin", "ok", within=15)


if __name__ == "__main__":
    unittest.main()
