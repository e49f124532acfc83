"""allotd's life: configuration check, reload, drain on SIGTERM, and PostgreSQL
going away and coming back under a running daemon."""

import os
import signal
import subprocess
import threading
import time
import unittest

from harness import (AllotTestCase, Daemon, PgCluster, create_database, psql,
                     server_certificate, subject)


class ConfigCheck(AllotTestCase):
    standard = False

    def test_check_good_and_bad(self):
        r = self.daemon.run("-n")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "configuration OK"))
        r = subprocess.run([self.daemon_path(), "-n", self.daemon.conf], capture_output=True,
                           text=True)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "configuration OK"))
        bad = os.path.join(self.workdir, "bad.conf")
        with open(bad, "w") as f:
            f.write(self.daemon.config_lines() + "db_pool_size = 0\n")
        r = subprocess.run([self.daemon_path(), "-n", "-c", bad], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        lineno = len(self.daemon.config_lines().splitlines()) + 1
        self.assertIn(f"{bad}:{lineno}: value 0 of \"db_pool_size\" is out of range 1..64",
                      r.stderr)
        with open(bad, "w") as f:
            f.write(self.daemon.config_lines(tls_cert="/nonexistent.crt"))
        r = subprocess.run([self.daemon_path(), "-n", "-c", bad], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent.crt", r.stderr)

    def test_migrate_again_changes_nothing(self):
        r = self.daemon.run("--migrate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("schema is up to date", r.stdout)

    def daemon_path(self):
        from harness import allotd_path
        return allotd_path()


class Reload(AllotTestCase):
    standard = False

    def test_sighup_reloads_and_keeps_serving(self):
        self.call("Admin/ListSites", {})
        mark = len(self.daemon.lines())
        self.daemon.write_config(log_level="info", idle_timeout_s=30)
        self.daemon.signal(signal.SIGHUP)
        self.daemon.wait_log("configuration and certificates reloaded", since=mark)
        self.call("Admin/ListSites", {})
        # debug lines stop once log_level = info took effect
        mark = len(self.daemon.lines())
        self.call("Admin/ListSites", {})
        time.sleep(0.2)
        self.assertFalse([ln for ln in self.daemon.lines()[mark:] if " debug: " in ln])

    def test_broken_certificate_keeps_the_old_one(self):
        cert_before = server_certificate(self.port)
        mark = len(self.daemon.lines())
        self.daemon.write_config(tls_cert="/nonexistent/server.crt")
        self.daemon.signal(signal.SIGHUP)
        self.daemon.wait_log(r"warn: keeping the running configuration and certificates",
                             since=mark)
        self.assertEqual(server_certificate(self.port), cert_before)
        self.call("Admin/ListSites", {})
        self.daemon.write_config()
        self.daemon.signal(signal.SIGHUP)
        self.daemon.wait_log("configuration and certificates reloaded", since=mark)

    def test_restart_only_keys_are_kept(self):
        mark = len(self.daemon.lines())
        self.daemon.write_config(db_pool_size=2)
        self.daemon.signal(signal.SIGHUP)
        self.daemon.wait_log(r"warn: \"db_pool_size\" changed but only a restart applies it",
                             since=mark)
        self.call("Admin/ListSites", {})
        self.daemon.write_config()


class Drain(AllotTestCase):
    standard = False

    def test_sigterm_finishes_requests_in_flight(self):
        # Hold a lock so that a request waits in PostgreSQL while SIGTERM arrives.
        locker = subprocess.Popen(
            ["psql", "-X", "-q", "-d", self.dbname, "-c",
             "BEGIN; LOCK TABLE allot.sites IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.4)
        result = {}

        def slow_call():
            result["resp"] = self.twirp("Admin/ListSites", {})

        t = threading.Thread(target=slow_call)
        t.start()
        time.sleep(0.3)
        self.assertIsNone(self.daemon.proc.poll())
        self.daemon.signal(signal.SIGTERM)
        self.daemon.wait_log(r"stopping: no new connections, 1 requests in flight")
        # No new connections while draining.
        with self.assertRaises(OSError):
            self.daemon.healthz()
        t.join(10)
        locker.wait(10)
        self.assertEqual(result["resp"][0], 200, result["resp"])
        self.assertEqual(self.daemon.proc.wait(10), 0)


class DatabaseRestart(AllotTestCase):
    """PostgreSQL stopped and started again under a running allotd: its own cluster."""
    start_daemon = False
    standard = False

    def test_unavailable_then_resumes(self):
        cluster = PgCluster(os.path.join(self.workdir, "pg2"))
        pg = cluster.start()
        try:
            psql("CREATE DATABASE allot", pg=pg)
            d = Daemon(self.workdir, "allot", pg=pg, db_reconnect_max_s=1)
            self.assertEqual(d.run("--migrate").returncode, 0)
            d.add_principal(subject("admin"), "admin")
            d.start()
            try:
                self.assertEqual(self.raw_call(d, "Admin/CreateSite", {"name": "before"})[0], 200)
                cluster.stop()
                st, _, body = self.raw_call(d, "Admin/ListSites", {})
                self.assertTwirpError((st, _, body), "unavailable", "database")
                self.assertEqual(d.healthz()[0], 503)
                cluster.start()
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    st, _, body = self.raw_call(d, "Admin/ListSites", {})
                    if st == 200:
                        break
                    time.sleep(0.2)
                self.assertEqual(st, 200, body)
                self.assertEqual([s["name"] for s in body["sites"]], ["before"])
                self.assertEqual(d.healthz()[0], 200)
            finally:
                rc = d.stop()
            self.assertEqual(rc, 0)
            # Lost connections are warnings, not errors.
            self.assertEqual(d.unexpected_errors(), [])
        finally:
            cluster.stop()

    def raw_call(self, d, method, body):
        from harness import twirp
        return twirp(d.port, method, body)


if __name__ == "__main__":
    unittest.main()
