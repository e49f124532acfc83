"""Site accounts: a site's own account names (LEONARDO's AIFAC_P02_548) mapped to
projects through the Admin RPC and the CLI, and resolved in quotes, reservations
and ingestion, with the project principal's scope checked on the resolved project.

On LEONARDO's boost_usr_prod (weight 1000) one occupied GPU for one second is 1,000
units; a GPU-hour is 3,600,000 units.
"""

import json
import unittest

from harness import AllotTestCase, job, statuses, twirp

H = 3_600_000
SITE, PART = "leonardo", "boost_usr_prod"
START = "2026-11-21T08:00:00Z"


def reserve_req(lien, job_id, account, gpus, limit_s):
    return {"lienId": lien, "site": SITE, "jobId": str(job_id), "partition": PART,
            "account": account, "user": "ada", "gpus": gpus, "cpus": 8 * gpus,
            "memMb": "0", "nodes": 1, "timeLimitS": str(limit_s)}


class SiteAccounts(AllotTestCase):
    """acme-vision has 1000 GPU-hours on LEONARDO, acme-llm 5000 on every site."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st, _, body = twirp(cls.daemon.port, "Admin/AddSiteAccount",
            {"project": "acme-vision", "site": SITE, "account": "AIFAC_P02_548"})
        assert st == 200, body

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"allot {' '.join(args)}: {r.stderr}")
        return r.stdout

    def pending(self, project):
        return int(self.balance(project)["total"]["pendingUnits"])

    def test_cli_add_list_remove(self):
        out = json.loads(self.ok("--format", "json", "admin", "add-site-account", "--project",
                                 "acme-llm", "--site", "lumi", "--account",
                                 "project_465000123"))
        self.assertEqual(out, {"project": "acme-llm", "site": "lumi",
                               "account": "project_465000123"})
        # The same mapping again is a replay.
        self.ok("admin", "add-site-account", "--project", "acme-llm", "--site", "lumi",
                "--account", "project_465000123")
        r = self.cli("admin", "add-site-account", "--project", "acme-vision", "--site", "lumi",
                     "--account", "project_465000123")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(), 'allot: already_exists: account "project_465000123" '
                         'of site "lumi" is already mapped to project "acme-llm"')
        r = self.cli("admin", "add-site-account", "--project", "nobody", "--site", "lumi",
                     "--account", "x")
        self.assertEqual(r.stderr.strip(), 'allot: not_found: project "nobody" does not exist')
        table = self.ok("admin", "list-site-accounts", "--site", "lumi")
        self.assertRegex(table, r"(?m)^acme-llm\s+lumi\s+project_465000123$")
        self.assertNotIn("AIFAC_P02_548", table)
        self.assertIn("AIFAC_P02_548", self.ok("admin", "list-site-accounts", cert="auditor"))
        r = self.cli("admin", "add-site-account", "--project", "acme-llm", "--site", "lumi",
                     "--account", "y", cert="auditor")
        self.assertTrue(r.stderr.startswith("allot: permission_denied: "), r.stderr)
        gone = json.loads(self.ok("--format", "json", "admin", "remove-site-account",
                                  "--site", "lumi", "--account", "project_465000123"))
        self.assertEqual(gone["project"], "acme-llm")
        r = self.cli("admin", "remove-site-account", "--site", "lumi", "--account",
                     "project_465000123")
        self.assertEqual(r.stderr.strip(), 'allot: not_found: account "project_465000123" '
                         'of site "lumi" is not mapped')

    def test_quote_and_reserve_with_the_sites_account(self):
        alloc = self.call("Admin/ListAllocations", {"project": "acme-vision"})["allocations"][0]
        q = self.call("Ledger/Quote", {"site": SITE, "partition": PART,
                                       "account": "AIFAC_P02_548", "gpus": 2,
                                       "timeLimitS": "3600"}, cert="scheduler-leonardo")
        self.assertEqual((q["allowed"], q["allocationId"], q["costUnits"]),
                         (True, alloc["id"], str(2 * H)))
        before = self.pending("acme-vision")
        # 4 GPUs for an hour: 4 GPU-hours held on acme-vision's allocation.
        lien = self.call("Ledger/Reserve", reserve_req("sa-1", 8101, "AIFAC_P02_548", 4, 3600),
                         cert="scheduler-leonardo")
        self.assertEqual((lien["project"], lien["allocationId"], lien["heldUnits"]),
                         ("acme-vision", alloc["id"], str(4 * H)))
        self.assertEqual(self.pending("acme-vision"), before + 4 * H)
        self.assertEqual(self.psql("SELECT account FROM allot.liens WHERE id = 'sa-1'"),
                         "AIFAC_P02_548")
        # The project's own principal may use the site's name for its account.
        own = self.call("Ledger/Reserve", reserve_req("sa-2", 8102, "AIFAC_P02_548", 1, 3600),
                        cert="project-acme-vision")
        self.assertEqual(own["project"], "acme-vision")
        q = self.call("Ledger/Quote", {"site": SITE, "partition": PART,
                                       "account": "AIFAC_P02_548", "gpus": 1,
                                       "timeLimitS": "60"}, cert="project-acme-vision")
        self.assertTrue(q["allowed"])
        self.call("Ledger/Settle", {"site": SITE, "jobId": "8102"}, cert="project-acme-vision")
        self.call("Ledger/Settle", {"site": SITE, "jobId": "8101"}, cert="scheduler-leonardo")
        self.assertEqual(self.pending("acme-vision"), before)

    def test_project_principal_scope_follows_the_mapping(self):
        before = self.counts()
        # acme-llm's principal may not act for acme-vision's account at LEONARDO...
        for method, body in (
                ("Ledger/Reserve", reserve_req("sa-x", 8201, "AIFAC_P02_548", 1, 60)),
                ("Ledger/Quote", {"site": SITE, "partition": PART, "account": "AIFAC_P02_548",
                                  "gpus": 1, "timeLimitS": "60"}),
                ("Ledger/Reserve", reserve_req("sa-y", 8202, "acme-vision", 1, 60)),
                ("Ledger/Reserve", reserve_req("sa-z", 8203, "nobody", 1, 60))):
            with self.subTest(method=method, account=body["account"]):
                self.assertTwirpError(self.twirp(method, body, cert="project-acme-llm"),
                                      "permission_denied", "project of acme-llm",
                                      f'account "{body["account"]}"')
        self.assertEqual(self.counts(), before)
        # ... and the mapping goes by site: at LUMI the name means nothing, so unknown.
        lumi = dict(reserve_req("sa-w", 8204, "AIFAC_P02_548", 1, 60), site="lumi",
                    partition="small-g")
        self.assertTwirpError(self.twirp("Ledger/Reserve", lumi), "not_found",
                              'unknown account "AIFAC_P02_548"')

    def test_ingest_with_the_sites_account(self):
        before = self.charged_units("acme-vision")
        # 2 GPUs for an hour under LEONARDO's account: 2 GPU-hours for acme-vision.
        r = self.ingest(SITE, [job(8301, START, "AIFAC_P02_548", PART, 2, 16, 0, 1, 3600),
                               job(8302, START, "AIFAC_P02_000", PART, 1, 8, 0, 1, 60)],
                        "sa-ingest")
        self.assertEqual(statuses(r), ["CHARGED", "REJECTED"])
        self.assertEqual(r["results"][0]["chargedUnits"], str(2 * H))
        self.assertEqual(r["results"][1]["reason"], 'unknown account "AIFAC_P02_000"')
        self.assertEqual(self.charged_units("acme-vision"), before + 2 * H)
        self.assertEqual(self.psql("SELECT u.account || ' ' || p.name FROM allot.job_usage u "
                                   "JOIN allot.projects p ON p.id = u.project_id "
                                   "WHERE u.job_id = '8301'"), "AIFAC_P02_548 acme-vision")
        # At another site the name is not mapped: unknown there.
        r = self.ingest("lumi", [job(8303, START, "AIFAC_P02_548", "small-g", 1, 8, 0, 1, 60)],
                        "sa-lumi")
        self.assertEqual(r["results"][0]["reason"], 'unknown account "AIFAC_P02_548"')
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_heartbeat_with_the_sites_account(self):
        # 1 GPU for 2 hours held; a heartbeat at 30 minutes charges 0.5 GPU-hours from it.
        self.call("Ledger/Reserve", reserve_req("sa-h", 8401, "AIFAC_P02_548", 1, 7200),
                  cert="project-acme-vision")
        hb = self.call("Ledger/Heartbeat", {"site": SITE, "jobId": "8401", "elapsedS": "1800"},
                       cert="project-acme-vision")
        self.assertEqual((hb["action"], hb["chargedUnits"], hb["heldUnits"]),
                         ("HEARTBEAT_ACTION_CONTINUE", str(H // 2), str(2 * H - H // 2)))
        self.assertEqual(self.psql("SELECT p.name FROM allot.job_usage u JOIN allot.projects p "
                                   "ON p.id = u.project_id WHERE u.job_id = '8401'"),
                         "acme-vision")


if __name__ == "__main__":
    unittest.main()
