"""The allot CLI against a real allotd: admin calls, balances, ingestion, errors."""

import json
import os
import unittest

from harness import AllotTestCase, charge_units, job

DAY = "2026-11-21T"


class Cli(AllotTestCase):

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"allot {' '.join(args)}: {r.stderr}")
        return r.stdout

    def test_help_everywhere(self):
        for args in (["--help"], ["admin", "--help"], ["admin", "create-resource", "--help"],
                     ["balance", "--help"], ["ingest", "--help"]):
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("usage", r.stdout.lower())
        self.assertIn("--gpus-per-node", self.ok("admin", "create-resource", "--help"))
        self.assertIn("create-allocation", self.ok("admin", "--help"))

    def test_ledger_reserve_refuse_settle(self):
        self.assertIn("reserve-campaign", self.ok("ledger", "--help"))
        self.assertIn("--time-limit-s", self.ok("ledger", "reserve", "--help"))
        self.create_project("cli-lien", allocations=(("leonardo", (), 2),))
        job = ["--site", "leonardo", "--partition", "boost_usr_prod", "--account", "cli-lien",
               "--gpus", "1", "--cpus", "8", "--nodes", "1"]
        out = json.loads(self.ok("--format", "json", "ledger", "reserve", "--lien-id", "cli-1",
                                 "--job-id", "7001", "--time-limit-s", "3600", *job,
                                 cert="scheduler-leonardo"))
        self.assertEqual((out["status"], out["heldUnits"]), ("LIEN_STATUS_ACTIVE", "3600000"))
        # 2 GPU-hours granted, 1 held: 2 more do not fit.
        r = self.cli("ledger", "reserve", "--lien-id", "cli-2", "--job-id", "7002",
                     "--time-limit-s", "7200", *job, cert="scheduler-leonardo")
        self.assertEqual(r.returncode, 1)
        self.assertIn("allot: resource_exhausted: could not reserve 2.00 GPU-h (7200000 units)",
                      r.stderr)
        self.assertIn("1.00 GPU-h (3600000 units) available", r.stderr)
        table = self.ok("ledger", "settle", "--site", "leonardo", "--job-id", "7001",
                        cert="scheduler-leonardo")
        self.assertRegex(table, r"(?m)^status: settled$")
        self.assertRegex(table, r"(?m)^released_units: 3600000$")

    def test_admin_round_trip(self):
        out = self.ok("--format", "json", "admin", "create-site", "--name", "cli-site",
                      "--description", "made by the CLI")
        self.assertEqual(json.loads(out), {"name": "cli-site", "description": "made by the CLI"})
        table = self.ok("admin", "list-sites")
        self.assertRegex(table, r"(?m)^cli-site\s+made by the CLI$")
        self.ok("admin", "create-principal", "--subject", "CN=cli,O=Allot Dev", "--role",
                "collector", "--scope", "cli-site")
        listed = json.loads(self.ok("--format", "json", "admin", "list-principals"))
        self.assertIn({"subject": "CN=cli,O=Allot Dev", "role": "ROLE_COLLECTOR",
                       "scope": "cli-site"}, listed["principals"])

    def test_usage_and_rpc_errors(self):
        r = self.cli("admin", "create-site", "--no-such-flag", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--no-such-flag", r.stderr)
        r = self.cli("balance", "--project", "nobody")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(), 'allot: not_found: project "nobody" does not exist')
        r = self.cli("admin", "create-site", "--name", "x", cert="auditor")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("allot: permission_denied: "), r.stderr)

    def test_wire_formats_agree(self):
        self.ingest("leonardo", [job(1, DAY + "08:00:00Z", "acme-vision", "boost_usr_prod",
                                     2, 16, 0, 1, 1800)], "cli-wire")
        outs = [self.ok("--wire", w, "--format", "json", "balance", "--project", "acme-vision")
                for w in ("protobuf", "json")]
        self.assertEqual(json.loads(outs[0]), json.loads(outs[1]))
        self.assertEqual(json.loads(outs[0])["total"]["chargedUnits"],
                         str(charge_units(2, 1800, 1000)))

    def test_ingest_file_twice_and_balance_table(self):
        path = os.path.join(self.workdir, "jobs.jsonl")
        recs = [job(9001, DAY + "09:00:00Z", "acme-llm", "acc", 4, 160, 500000, 1, 3600),
                job(9002, DAY + "10:00:00Z", "acme-llm", "acc", 1, 40, 0, 1, 1800)]
        with open(path, "w") as f:
            f.write("# two MareNostrum5 jobs\n\n")
            f.writelines(json.dumps(r) + "\n" for r in recs)
        out = self.ok("ingest", "--site", "marenostrum5", path, cert="collector-marenostrum5")
        self.assertRegex(out, r"2 charged, 0 duplicate, 0 recorded, 0 rejected")
        out = self.ok("ingest", "--site", "marenostrum5", path, cert="collector-marenostrum5")
        self.assertRegex(out, r"0 charged, 2 duplicate, 0 recorded, 0 rejected")
        want = charge_units(4, 3600, 1000) + charge_units(1, 1800, 1000)
        self.assertEqual(self.charged_units("acme-llm"), want)
        # 4.5 GPU-hours charged of the 5000 granted on all sites.
        table = self.ok("balance", "--project", "acme-llm", cert="project-acme-llm")
        self.assertIn("all sites", table)
        self.assertRegex(table, r"5000\.00\s+4\.50\s+0\.00\s+4995\.50")

    def test_ingest_reports_rejections(self):
        path = os.path.join(self.workdir, "bad.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(job(9101, DAY + "09:00:00Z", "ghost", "acc", 1, 1, 0, 1, 5)))
            f.write("\n")
        r = self.cli("ingest", "--site", "marenostrum5", path, cert="collector-marenostrum5")
        self.assertEqual(r.returncode, 1)
        self.assertIn('unknown account "ghost"', r.stdout + r.stderr)
        with open(path, "w") as f:
            f.write("{not json\n")
        r = self.cli("ingest", "--site", "marenostrum5", path, cert="collector-marenostrum5")
        self.assertEqual(r.returncode, 2)
        self.assertIn("line 1", r.stderr)


if __name__ == "__main__":
    unittest.main()
