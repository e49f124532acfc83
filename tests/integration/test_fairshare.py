"""Fair share (README "Fair share"): a real allotd builds the tree from usage ingested at
several sites, and answers FairShare.GetPriorities, Explain and WhatIf; the same from a
second allotd on the same database and after a restart; bad input refused.

The world (half-life 0, no decay): program eurohpc-aif > organizations acme and beta.
  acme-vision  1000 GPU-hours  users ann (10 h at LEONARDO), bob (30 h at LEONARDO)
  acme-llm     5000 GPU-hours  user cat (40 h at LUMI)
  beta-one     2000 GPU-hours  users dan (20 h at LEONARDO, under the site account
                               BETA_01), eve (no use)
Charged GPU-hours: at LEONARDO boost_usr_prod (weight 1000) 1 GPU for 1 hour is one;
at LUMI small-g (weight 500) 8 GPUs for 10 hours are 40. Everything used: 100 h.

Fair Tree, worked by hand (S = shares / siblings' shares, U = usage / parent's usage,
LF = S / U; siblings by LF descending, depth first; 5 users, rank counts down from 5):
  eurohpc-aif  S 1, U 1, LF 1
  acme  S 6000/8000 = 0.75, U 80/100 = 0.8, LF 0.9375
  beta  S 0.25,             U 0.2,          LF 1.25         -> beta first
    beta-one S 1, U 1: eve S 0.5 U 0 LF inf -> rank 5 (1.0); dan S 0.5 U 1 LF 0.5 -> 4 (0.8)
  acme: acme-llm S 5/6 U 0.5 LF 5/3; acme-vision S 1/6 U 0.5 LF 1/3 -> llm first
    acme-llm: cat -> rank 3 (0.6)
    acme-vision: ann S 0.5 U 0.25 LF 2 -> rank 2 (0.4); bob U 0.75 LF 2/3 -> 1 (0.2)

Classic, by hand (S = product of the shares along the path; U = usage / all usage;
UE = U + (UE_parent - U) * shares / siblings' shares, root UE 1; F = 2^(-UE/S)):
  acme UE 0.8 + 0.2 * 0.75 = 0.95; beta 0.2 + 0.8 * 0.25 = 0.4
  acme-vision 0.4 + 0.55/6 = 0.4916667; acme-llm 0.4 + 0.55 * 5/6 = 0.8583333;
  beta-one 0.2 + 0.2 = 0.4
  ann: S 0.0625, UE 0.1 + 0.3916667/2 = 0.2958333, F 2^-4.7333333 = 0.0375662
  bob: S 0.0625, UE 0.3 + 0.1916667/2 = 0.3958333, F 2^-6.3333333 = 0.0124023
  cat: S 0.625,  UE 0.8583333,                 F 2^-1.3733333 = 0.3862011
  dan: S 0.125,  UE 0.2 + 0.2/2 = 0.3,         F 2^-2.4       = 0.1894646
  eve: S 0.125,  UE 0 + 0.4/2 = 0.2,           F 2^-1.6       = 0.3298770

Fair Tree of one site's usage (usage_site), the same tree and shares, by hand:
  LEONARDO (ann 10, bob 30, dan 20; 60 h): acme S 0.75 U 40/60 LF 1.125, beta S 0.25
    U 1/3 LF 0.75 -> acme first; acme-llm U 0 LF inf before acme-vision (LF 1/6):
    cat 5 (1.0); ann LF 2 -> 4 (0.8), bob LF 2/3 -> 3 (0.6); beta-one: eve LF inf ->
    2 (0.4), dan LF 0.5 -> 1 (0.2)
  LUMI (cat 40 h): beta U 0 LF inf first: eve and dan both LF inf, tied: rank 5 (1.0
    each); acme: acme-vision U 0 LF inf before acme-llm (LF 5/6): ann and bob tied at
    rank 3 (0.6 each); cat 1 (0.2)
  JUPITER (no usage): every LF infinite, every account tied and merged, every user
    tied: all rank 5 (1.0)
"""

import calendar
import math
import time

from harness import AllotTestCase, TwoDaemonCase, job, statuses, twirp

WINDOW = ("2024-01-01T00:00:00Z", "2028-01-01T00:00:00Z")
START = "2026-11-20T08:00:00Z"

FAIR_TREE = {"eve": 1.0, "dan": 0.8, "cat": 0.6, "ann": 0.4, "bob": 0.2}
FAIR_TREE_AT = {"leonardo": {"cat": 1.0, "ann": 0.8, "bob": 0.6, "eve": 0.4, "dan": 0.2},
                "lumi": {"eve": 1.0, "dan": 1.0, "ann": 0.6, "bob": 0.6, "cat": 0.2},
                "jupiter": {"eve": 1.0, "dan": 1.0, "ann": 1.0, "bob": 1.0, "cat": 1.0}}
CLASSIC = {"ann": 2 ** (-0.2958333333 / 0.0625), "bob": 2 ** (-0.3958333333 / 0.0625),
           "cat": 2 ** (-0.8583333333 / 0.625), "dan": 2 ** -2.4, "eve": 2 ** -1.6}
PAIRS = [("acme-vision", "ann"), ("acme-vision", "bob"), ("acme-llm", "cat"),
         ("BETA_01", "dan"), ("beta-one", "eve")]
PACING_PERMILLE = 250


def build_world(tc, start=START):
    """Creates beta and beta-one, the users, the site account, and ingests the usage."""
    tc.call("Admin/CreateOrganization", {"name": "beta", "program": "eurohpc-aif"})
    tc.call("Admin/CreateProject", {"name": "beta-one", "organization": "beta",
                                    "users": ["dan", "eve"]})
    tc.call("Admin/CreateAllocation", {"project": "beta-one", "site": "", "resources": [],
                                       "gpuHours": "2000", "startsAt": WINDOW[0],
                                       "endsAt": WINDOW[1], "transferId": "grant:beta-one"})
    for u in ("ann", "bob"):
        tc.call("Admin/AddProjectUser", {"project": "acme-vision", "user": u})
    tc.call("Admin/AddProjectUser", {"project": "acme-llm", "user": "cat"})
    tc.call("Admin/AddSiteAccount", {"project": "beta-one", "site": "leonardo",
                                     "account": "BETA_01"})
    leo = [job("v1", start, "acme-vision", "boost_usr_prod", 1, 8, 1000, 1, 36000, user="ann"),
           job("v2", start, "acme-vision", "boost_usr_prod", 3, 24, 1000, 1, 36000, user="bob"),
           job("b1", start, "BETA_01", "boost_usr_prod", 2, 16, 1000, 1, 36000, user="dan")]
    tc.assertEqual(statuses(tc.ingest("leonardo", leo, "fs-leo")), ["CHARGED"] * 3)
    lumi = [job("l1", start, "acme-llm", "small-g", 8, 64, 1000, 1, 36000, user="cat")]
    tc.assertEqual(statuses(tc.ingest("lumi", lumi, "fs-lumi")), ["CHARGED"])


def restart(daemon):
    """Stops and starts daemon: it reads the state again at start."""
    assert daemon.stop() == 0, daemon.tail()
    daemon.start()


def epoch(rfc3339):
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


def clamp01(x):
    return min(1.0, max(0.0, x))


class WorldCase(AllotTestCase):
    """Builds the world, then restarts every allotd of the class so that it reads it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.prepare(_ClassCaller(cls))
            for d in cls.daemons():
                restart(d)
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def prepare(cls, caller):
        build_world(caller)

    @classmethod
    def daemons(cls):
        return [cls.daemon]


class FairTree(WorldCase, TwoDaemonCase):
    """Fair Tree, no decay; a second allotd on the same database."""

    config = {"fairshare_half_life_s": 0, "fairshare_period_s": 86400,
              "fairshare_pacing_permille": PACING_PERMILLE, "fairshare_algorithm": "fair_tree"}
    other_config = config

    @classmethod
    def daemons(cls):
        return [cls.daemon, cls.other]

    def priorities(self, port=None, cert="admin", site="leonardo", pairs=PAIRS, usage_site=None):
        req = {"site": site, "pairs": [{"account": a, "user": u} for a, u in pairs]}
        if usage_site is not None:
            req["usageSite"] = usage_site
        st, _, body = twirp(port or self.port, "FairShare/GetPriorities", req, cert)
        self.assertEqual(st, 200, body)
        return body

    def explain(self, project, port=None, cert="admin", usage_site=None):
        req = {"project": project}
        if usage_site is not None:
            req["usageSite"] = usage_site
        st, _, body = twirp(port or self.port, "FairShare/Explain", req, cert)
        self.assertEqual(st, 200, body)
        return body

    def test_factors_as_worked_by_hand(self):
        got = self.priorities()
        self.assertEqual(got["algorithm"], "fair_tree")
        by_user = {p["user"]: p for p in got["priorities"]}
        self.assertEqual([p["user"] for p in got["priorities"]], [u for _, u in PAIRS])
        for user, f in FAIR_TREE.items():
            self.assertAlmostEqual(by_user[user]["fairshare"], f, places=12, msg=user)
        # The site account BETA_01 resolved at LEONARDO, as ingestion resolved dan's jobs.
        self.assertEqual(by_user["dan"]["project"], "beta-one")
        self.assertTrue(all(p.get("knownUser") for p in got["priorities"]))

    def test_usage_of_one_site_as_worked_by_hand(self):
        every = self.priorities()
        for site, want in FAIR_TREE_AT.items():
            got = self.priorities(usage_site=site)
            self.assertEqual(got["usageSite"], site)
            by_user = {p["user"]: p for p in got["priorities"]}
            for user, f in want.items():
                self.assertAlmostEqual(by_user[user]["fairshare"], f, places=12,
                                       msg=f"{site} {user}")
            # Pacing is the allocations', whatever usage counts; combined follows.
            for a, b in zip(every["priorities"], got["priorities"]):
                self.assertEqual(a["pacing"], b["pacing"])
                self.assertEqual(b["project"], a["project"])
                self.assertAlmostEqual(b["combined"], clamp01(
                    (1 - PACING_PERMILLE / 1000) * b["fairshare"] +
                    PACING_PERMILLE / 1000 * b["pacing"]), places=12)
        # "" is all sites, as without the field.
        self.assertEqual(self.priorities(usage_site="")["priorities"], every["priorities"])
        self.assertEqual(every.get("usageSite", ""), "")

    def test_explain_and_what_if_of_one_site(self):
        e = self.explain("acme-llm", usage_site="lumi")
        self.assertEqual(e["usageSite"], "lumi")
        self.assertEqual(e["usersTotal"], 5)
        lv = {x["name"]: x for x in e["levels"]}
        self.assertAlmostEqual(lv["root"]["usageRaw"], 40.0)
        self.assertAlmostEqual(lv["acme"]["usageNorm"], 1.0)
        self.assertAlmostEqual(lv["acme"]["levelFs"], 0.75)
        self.assertAlmostEqual(lv["acme-llm"]["levelFs"], 5 / 6)
        self.assertAlmostEqual(lv["cat"]["usageRaw"], 40.0)
        self.assertEqual(lv["cat"]["rank"], 1)
        self.assertAlmostEqual(lv["cat"]["fairshare"], 0.2)
        self.assertEqual(e["pacing"], self.explain("acme-llm")["pacing"])
        leo = {x["name"]: x for x in self.explain("acme-vision", usage_site="leonardo")["levels"]}
        self.assertAlmostEqual(leo["acme"]["usageRaw"], 40.0)
        self.assertAlmostEqual(leo["root"]["usageRaw"], 60.0)
        self.assertAlmostEqual(leo["acme"]["levelFs"], 1.125)
        self.assertEqual((leo["ann"]["rank"], leo["bob"]["rank"]), (4, 3))
        # By hand, 10 h more for ann counted at LUMI (ann 10, cat 40 of 50): acme-llm
        # S 5/6 U 0.8 LF 25/24 before acme-vision S 1/6 U 0.2 LF 5/6, after beta (eve,
        # dan tied at 5): cat 3 (0.6), bob LF inf 2 (0.4), ann LF 0.5 1 (0.2).
        before = self.counts()
        w = self.call("FairShare/WhatIf", {"project": "acme-vision", "gpuHours": 10,
                                           "user": "ann", "usageSite": "lumi"})
        self.assertEqual(w["now"]["usageSite"], "lumi")
        now = {x["name"]: x for x in w["now"]["levels"]}
        after = {x["name"]: x for x in w["after"]["levels"]}
        self.assertAlmostEqual(now["ann"]["fairshare"], 0.6)
        self.assertAlmostEqual(after["root"]["usageRaw"], 50.0)
        self.assertAlmostEqual(after["acme-vision"]["levelFs"], 5 / 6)
        self.assertAlmostEqual(after["ann"]["fairshare"], 0.2)
        self.assertAlmostEqual(after["bob"]["fairshare"], 0.4)
        self.assertEqual(self.counts(), before)

    def test_usage_site_same_from_two_allotd(self):
        for site in ("leonardo", "lumi"):
            self.assertEqual(self.priorities(usage_site=site),
                             self.priorities(port=self.other.port, usage_site=site))
            self.assertEqual(self.explain("beta-one", usage_site=site),
                             self.explain("beta-one", port=self.other.port, usage_site=site))

    def test_unknown_usage_site_refused(self):
        for method, body in (
                ("GetPriorities", {"site": "leonardo", "pairs": [{"account": "acme-llm"}]}),
                ("Explain", {"project": "acme-llm"}),
                ("WhatIf", {"project": "acme-llm", "gpuHours": 5})):
            body = dict(body, usageSite="atlantis")
            self.assertTwirpError(self.twirp("FairShare/" + method, body), "not_found",
                                  'usage_site: "atlantis" is not a site')
        # Names are exact, as site names are stored.
        self.assertTwirpError(self.twirp("FairShare/Explain", {"project": "acme-llm",
                                                               "usageSite": "LUMI"}),
                              "not_found", 'usage_site: "LUMI" is not a site')

    def test_combined_is_weighted_pacing(self):
        got = self.priorities()
        for p in got["priorities"]:
            self.assertTrue(0.0 <= p["pacing"] <= 1.0)
            self.assertAlmostEqual(p["combined"], clamp01(
                (1 - PACING_PERMILLE / 1000) * p["fairshare"] +
                PACING_PERMILLE / 1000 * p["pacing"]), places=12)

    def test_explain_levels_like_sshare(self):
        e = self.explain("acme-vision")
        levels = {(lv["kind"], lv["name"]): lv for lv in e["levels"]}
        self.assertEqual([lv["kind"] for lv in e["levels"]],
                         ["root", "program", "organization", "project", "user", "user"])
        self.assertEqual(e["usersTotal"], 5)
        acme = levels[("organization", "acme")]
        self.assertAlmostEqual(acme["sharesRaw"], 6000.0)
        self.assertAlmostEqual(acme["sharesNorm"], 0.75)
        self.assertAlmostEqual(acme["usageRaw"], 80.0)
        self.assertAlmostEqual(acme["usageNorm"], 0.8)
        self.assertAlmostEqual(acme["levelFs"], 0.9375)
        vis = levels[("project", "acme-vision")]
        self.assertAlmostEqual(vis["sharesRaw"], 1000.0)
        self.assertAlmostEqual(vis["sharesNorm"], 1 / 6)
        self.assertAlmostEqual(vis["usageNorm"], 0.5)
        self.assertAlmostEqual(vis["levelFs"], 1 / 3)
        ann, bob = levels[("user", "ann")], levels[("user", "bob")]
        self.assertAlmostEqual(ann["usageRaw"], 10.0)
        self.assertAlmostEqual(ann["levelFs"], 2.0)
        self.assertEqual((ann["rank"], bob["rank"]), (2, 1))
        self.assertAlmostEqual(ann["fairshare"], 0.4)
        self.assertAlmostEqual(bob["levelFs"], 2 / 3)
        # eve has no usage: LF is infinite.
        beta = {lv["name"]: lv for lv in self.explain("beta-one")["levels"]}
        self.assertEqual(beta["eve"]["levelFs"], "Infinity")
        self.assertEqual(beta["eve"]["rank"], 5)

    def test_explain_pacing(self):
        p = self.explain("beta-one")["pacing"]
        at = self.explain("beta-one")["evaluatedAt"]
        self.assertTrue(p["active"])
        self.assertEqual((p["windowStart"], p["windowEnd"]), WINDOW)
        self.assertAlmostEqual(p["grantedGpuHours"], 2000.0)
        self.assertAlmostEqual(p["usedGpuHours"], 20.0)
        start, end, now = epoch(WINDOW[0]), epoch(WINDOW[1]), epoch(at)
        expected = 2000.0 * (now - start) / (end - start)
        self.assertAlmostEqual(p["expectedGpuHours"], expected, places=6)
        self.assertAlmostEqual(p["aheadGpuHours"], 20.0 - expected, places=6)
        self.assertEqual(p["months"], 48)
        q = 2000.0 / 48
        self.assertAlmostEqual(p["monthBaseGpuHours"], q)
        # Far behind the straight line: the full pacing factor.
        self.assertAlmostEqual(p["factor"], clamp01(0.5 - (20.0 - expected) / (2 * q)))
        self.assertEqual(p["factor"], 1.0)

    def test_same_answers_from_two_allotd_and_after_a_restart(self):
        a = self.priorities()
        b = self.priorities(port=self.other.port)
        self.assertEqual(a, b)
        self.assertEqual(self.explain("acme-llm"), self.explain("acme-llm", port=self.other.port))
        restart(self.other)
        self.assertEqual(self.priorities(port=self.other.port), a)

    def test_what_if_changes_nothing(self):
        before = self.counts()
        p0 = self.priorities()
        w = self.call("FairShare/WhatIf", {"project": "acme-vision", "gpuHours": 40,
                                           "user": "ann"})
        self.assertAlmostEqual(w["gpuHours"], 40.0)
        now = {lv["name"]: lv for lv in w["now"]["levels"]}
        after = {lv["name"]: lv for lv in w["after"]["levels"]}
        # By hand: ann 50 h of 140; acme-vision U 80/120, LF 0.25, after acme-llm
        # (LF 2.5); ann LF 0.5/0.625 = 0.8 below bob's 0.5/0.375: ann rank 1, bob 2.
        self.assertAlmostEqual(now["ann"]["fairshare"], 0.4)
        self.assertAlmostEqual(after["ann"]["usageRaw"], 50.0)
        self.assertAlmostEqual(after["ann"]["fairshare"], 0.2)
        self.assertAlmostEqual(after["bob"]["fairshare"], 0.4)
        self.assertAlmostEqual(after["acme-vision"]["levelFs"], 0.25)
        self.assertAlmostEqual(w["after"]["pacing"]["usedGpuHours"],
                               w["now"]["pacing"]["usedGpuHours"] + 40.0)
        self.assertEqual(self.counts(), before)
        self.assertEqual(self.priorities(), p0)

    def test_what_if_tie(self):
        # 20 h more for ann: ann and bob 30 h each, the same LF (0.5 / 0.5): Slurm's tied
        # users share the rank of the first, 2 of 5 (0.4), and nobody takes rank 1.
        w = self.call("FairShare/WhatIf", {"project": "acme-vision", "gpuHours": 20,
                                           "user": "ann"})
        after = {lv["name"]: lv for lv in w["after"]["levels"]}
        self.assertAlmostEqual(after["ann"]["levelFs"], 1.0)
        self.assertAlmostEqual(after["bob"]["levelFs"], 1.0)
        self.assertEqual((after["ann"]["rank"], after["bob"]["rank"]), (2, 2))
        self.assertAlmostEqual(after["ann"]["fairshare"], 0.4)
        self.assertAlmostEqual(after["bob"]["fairshare"], 0.4)

    def test_unknown_pairs(self):
        got = self.priorities(pairs=[("nobody", "x"), ("acme-llm", "zed")])["priorities"]
        self.assertEqual(got[0]["project"], "")
        self.assertEqual(got[0]["fairshare"], 0)
        # A user of acme-llm not yet seen starts where cat does.
        self.assertEqual(got[1]["project"], "acme-llm")
        self.assertFalse(got[1].get("knownUser", False))
        self.assertAlmostEqual(got[1]["fairshare"], 0.6)

    def test_bad_input_refused(self):
        self.assertTwirpError(self.twirp("FairShare/Explain", {"project": "nobody"}),
                              "not_found", 'project "nobody" does not exist')
        self.assertTwirpError(self.twirp("FairShare/Explain", {"project": ""}),
                              "invalid_argument", "project is required")
        self.assertTwirpError(
            self.twirp("FairShare/WhatIf", {"project": "acme-llm", "gpuHours": -5}),
            "invalid_argument", "gpu_hours must be more than 0")
        self.assertTwirpError(
            self.twirp("FairShare/WhatIf", {"project": "nobody", "gpuHours": 5}),
            "not_found", 'project "nobody" does not exist')
        many = [{"account": "acme-llm", "user": "cat"}] * 20001
        self.assertTwirpError(
            self.twirp("FairShare/GetPriorities", {"site": "leonardo", "pairs": many}),
            "invalid_argument", "pairs: 20001 asked, at most 20000")
        self.assertTwirpError(
            self.twirp("FairShare/GetPriorities", {"site": "leonardo", "pairs": []}),
            "invalid_argument", "at least one")

    def test_roles(self):
        # A scheduler asks for its own site only; a project reads its own standing only.
        self.priorities(cert="scheduler-leonardo")
        self.assertTwirpError(self.twirp("FairShare/GetPriorities",
                                         {"site": "lumi", "pairs": [{"account": "a"}]},
                                         cert="scheduler-leonardo"), "permission_denied")
        self.assertTwirpError(self.twirp("FairShare/GetPriorities",
                                         {"site": "leonardo", "pairs": [{"account": "a"}]},
                                         cert="project-acme-vision"), "permission_denied")
        self.explain("acme-vision", cert="project-acme-vision")
        self.explain("acme-llm", cert="auditor")
        self.assertTwirpError(self.twirp("FairShare/Explain", {"project": "acme-llm"},
                                         cert="project-acme-vision"), "permission_denied")
        self.assertTwirpError(self.twirp("FairShare/SetShares",
                                         {"project": "acme-llm", "shares": 1},
                                         cert="auditor"), "permission_denied")

    def test_cli_share(self):
        r = self.cli("share", "--project", "acme-vision")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("Account", lines[0])
        self.assertIn("LevelFS", lines[0])
        users = {ln.split()[1]: ln.split() for ln in lines[2:8] if len(ln.split()) == 9}
        self.assertEqual(set(users), {"ann", "bob"}, r.stdout)
        # RawShares, NormShares, RawUsage, NormUsage, EffectvUsage, FairShare, LevelFS
        self.assertEqual(users["ann"][2:], ["1.00", "0.500000", "10.000000", "0.250000",
                                            users["ann"][6], "0.400000", "2.000000"])
        self.assertTrue(lines[8].startswith("evaluated at "), r.stdout)
        self.assertTrue(any(ln.startswith("pacing: 40.00 of 1000.00 GPU-hours used")
                            for ln in lines), r.stdout)
        r = self.cli("share", "--project", "acme-vision", "--what-if", "40", "--user", "ann")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("what if acme-vision uses 40 GPU-hours more", r.stdout)
        self.assertIn("  ann        0.400000 -> 0.200000", r.stdout.splitlines())
        self.assertIn("  bob        0.200000 -> 0.400000", r.stdout.splitlines())
        r = self.cli("share", "--project", "acme-llm", "--usage-site", "lumi")
        self.assertEqual(r.returncode, 0, r.stderr)
        cat = [ln.split() for ln in r.stdout.splitlines() if ln.split()[1:2] == ["cat"]]
        self.assertEqual(cat[0][2:5], ["1.00", "1.000000", "40.000000"], r.stdout)
        self.assertEqual(cat[0][7], "0.200000", r.stdout)
        self.assertIn("usage of site lumi)", r.stdout)
        r = self.cli("share", "--project", "acme-vision", "--usage-site", "lumi",
                     "--what-if", "10", "--user", "ann")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("  ann        0.600000 -> 0.200000", r.stdout.splitlines())
        r = self.cli("share", "--project", "acme-llm", "--usage-site", "atlantis")
        self.assertEqual(r.returncode, 1)
        self.assertIn('not_found: usage_site: "atlantis" is not a site', r.stderr)
        r = self.cli("share", "--project", "acme-vision", "--what-if", "-3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--what-if", r.stderr)
        r = self.cli("share", "--project", "nobody")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip(), 'allot: not_found: project "nobody" does not exist')


class Classic(WorldCase):
    """Classic fair share on the same world."""

    config = {"fairshare_half_life_s": 0, "fairshare_period_s": 86400,
              "fairshare_algorithm": "classic"}

    def test_factors_as_worked_by_hand(self):
        got = self.call("FairShare/GetPriorities", {"site": "leonardo", "pairs": [
            {"account": a, "user": u} for a, u in PAIRS]})
        self.assertEqual(got["algorithm"], "classic")
        for p in got["priorities"]:
            self.assertAlmostEqual(p["fairshare"], CLASSIC[p["user"]], places=6, msg=p["user"])
        e = self.call("FairShare/Explain", {"project": "acme-llm"})
        lv = {x["name"]: x for x in e["levels"]}
        self.assertAlmostEqual(lv["acme"]["usageEfctv"], 0.95)
        self.assertAlmostEqual(lv["acme-llm"]["usageEfctv"], 0.4 + 0.55 * 5 / 6)
        self.assertAlmostEqual(lv["cat"]["sharesGlobal"], 0.625)


class Decay(WorldCase):
    """A half-life of one day, evaluated at the period boundary (midnight UTC); explicit
    shares set through SetShares."""

    HALF_LIFE = 86400
    config = {"fairshare_half_life_s": HALF_LIFE, "fairshare_period_s": 86400}

    @classmethod
    def prepare(cls, caller):
        today = int(time.time()) // 86400 * 86400
        cls.start = today - 3 * 86400 + 8 * 3600  # three days ago, 08:00
        build_world(caller, start=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cls.start)))
        caller.call("FairShare/SetShares", {"project": "acme-vision", "shares": 3000})

    def test_usage_decays_from_midday_of_its_day(self):
        e = self.call("FairShare/Explain", {"project": "acme-vision"})
        at = epoch(e["evaluatedAt"])
        self.assertEqual(at % 86400, 0, "evaluated at the period boundary")
        self.assertEqual(e["halfLifeS"], str(self.HALF_LIFE))
        day = self.start // 86400 * 86400
        d = 1 - math.log(2) / self.HALF_LIFE
        f = d ** (at - (day + 43200))  # two and a half days: about 2^-2.5
        lv = {x["name"]: x for x in e["levels"]}
        self.assertAlmostEqual(lv["ann"]["usageRaw"], 10.0 * f, places=9)
        self.assertAlmostEqual(lv["bob"]["usageRaw"], 30.0 * f, places=9)
        self.assertAlmostEqual(f, 2 ** -2.5, places=4)

    def test_explicit_shares(self):
        e = self.call("FairShare/Explain", {"project": "acme-vision"})
        lv = {x["name"]: x for x in e["levels"]}
        self.assertTrue(lv["acme-vision"]["sharesExplicit"])
        self.assertAlmostEqual(lv["acme-vision"]["sharesRaw"], 3000.0)
        # acme sums its projects: 3000 + 5000.
        self.assertAlmostEqual(lv["acme"]["sharesRaw"], 8000.0)
        self.assertTwirpError(self.twirp("FairShare/SetShares", {"project": "acme-vision",
                                                                 "shares": -1}),
                              "invalid_argument", "shares must be a finite number")


class _ClassCaller:
    """What build_world needs of a test case, for setUpClass (no instance yet)."""

    def __init__(self, cls):
        self.cls = cls

    def call(self, method, body, cert="admin"):
        st, _, parsed = twirp(self.cls.daemon.port, method, body, cert)
        if st != 200:
            raise AssertionError(f"setup: {method} {body!r} answered {st}: {parsed!r}")
        return parsed

    def ingest(self, site, records, batch_id):
        return self.call("Usage/Ingest", {"site": site, "batchId": batch_id,
                                          "records": records}, f"collector-{site}")

    def assertEqual(self, a, b, msg=None):
        if a != b:
            raise AssertionError(msg or f"{a!r} != {b!r}")
