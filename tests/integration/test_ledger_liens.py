"""Liens: quote, reserve, usage drawing the hold down, settle, release, replace,
replays, campaigns, refusals with their figures, an exhausted project, heartbeats,
and expiry with two allotd. Every figure is worked out in the test.

On LEONARDO's boost_usr_prod (weight 1000) one occupied GPU for one second is 1,000
units; a GPU-hour is 3,600,000 units; in LEONARDO's books a GPU-hour is 8 core-h.
"""

import threading
import time
import unittest

from harness import AllotTestCase, TwoDaemonCase, job, twirp

H = 3_600_000  # units per GPU-hour
SITE, PART = "leonardo", "boost_usr_prod"
START = "2026-12-01T08:00:00Z"


def reserve_req(lien, job_id, account, gpus, limit_s, **kw):
    r = {"lienId": lien, "site": SITE, "jobId": str(job_id), "partition": PART,
         "account": account, "user": "ada", "gpus": gpus, "cpus": 8 * gpus,
         "memMb": "0", "nodes": 1, "timeLimitS": str(limit_s)}
    r.update(kw)
    return r


class Liens(AllotTestCase):
    """One project per test, each with its own allocation on LEONARDO."""

    def project(self, name, gpu_hours):
        (alloc,) = self.create_project(name, allocations=((SITE, (), gpu_hours),))
        return alloc

    def alloc_balance(self, name):
        b = self.balance(name)["allocations"][0]["balance"]
        return (int(b["grantedUnits"]), int(b["chargedUnits"]), int(b["pendingUnits"]),
                int(b["availableUnits"]))

    def reserve(self, *a, cert="scheduler-leonardo", **kw):
        return self.call("Ledger/Reserve", reserve_req(*a, **kw), cert=cert)

    def usage(self, job_id, account, gpus, elapsed_s, batch):
        r = self.ingest(SITE, [job(job_id, START, account, PART, gpus, 8 * gpus, 0, 1,
                                   elapsed_s, state="RUNNING")], batch)
        return r["results"][0]

    def lien(self, lien_id):
        row = self.psql(f"SELECT status, held, drawn, released FROM allot.liens "
                        f"WHERE id = '{lien_id}'")
        st, held, drawn, released = row.split("|")
        return st, int(held), int(drawn), int(released)

    def check_ledger(self):
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_quote(self):
        alloc = self.project("lq", 10)
        # 2 GPUs, 8 CPUs (1 GPU's share of cores), for an hour: max(2, 8/8) = 2 GPUs.
        q = self.call("Ledger/Quote", {"site": SITE, "partition": PART, "account": "lq",
                                       "gpus": 2, "cpus": 8, "timeLimitS": "3600"},
                      cert="scheduler-leonardo")
        self.assertTrue(q["allowed"])
        self.assertEqual(int(q["allocationId"]), alloc)
        self.assertEqual(int(q["occupiedGpus"]), 2)
        self.assertEqual(int(q["costUnits"]), 2 * H)
        self.assertEqual(q["costGpuHours"], 2)
        self.assertEqual(int(q["availableUnits"]), 10 * H)
        self.assertEqual(int(q["nativeCostMilli"]), 16000)  # 2 GPU-h = 16 core-h
        self.assertEqual(q["nativeUnit"], "core-h")
        big = self.call("Ledger/Quote", {"site": SITE, "partition": PART, "account": "lq",
                                         "gpus": 4, "timeLimitS": str(3 * 3600)})
        self.assertFalse(big["allowed"])  # 12 GPU-h > 10
        self.assertIn("exhausted", big["reason"])
        self.assertEqual(self.alloc_balance("lq"), (10 * H, 0, 0, 10 * H), "a quote holds nothing")
        nope = self.call("Ledger/Quote", {"site": SITE, "partition": PART, "account": "nobody",
                                          "gpus": 1, "timeLimitS": "60"})
        self.assertFalse(nope["allowed"])
        self.assertIn('unknown account "nobody"', nope["reason"])

    def test_reserve_usage_draws_the_lien_then_settle(self):
        alloc = self.project("ld", 10)
        lien = self.reserve("ld-1", 9001, "ld", 2, 3600)
        self.assertEqual(lien["status"], "LIEN_STATUS_ACTIVE")
        self.assertEqual(int(lien["allocationId"]), alloc)
        self.assertEqual(int(lien["heldUnits"]), 2 * H)
        self.assertEqual(int(lien["availableUnits"]), 8 * H)
        self.assertEqual(self.alloc_balance("ld"), (10 * H, 0, 2 * H, 8 * H))
        # Half the time limit used: charged 1 GPU-h, the lien holds the other.
        r = self.usage(9001, "ld", 2, 1800, "ld-b1")
        self.assertEqual(int(r["chargedUnits"]), H)
        self.assertEqual(self.lien("ld-1"), ("active", H, H, 0))
        self.assertEqual(self.alloc_balance("ld"), (10 * H, H, H, 8 * H),
                         "charged + pending stays the lien while usage is below it")
        # Past the time limit: 4000 s x 2 GPUs = 8,000,000 units in all; the lien's
        # last 3,600,000 are posted, 800,000 charged beyond it.
        r = self.usage(9001, "ld", 2, 4000, "ld-b2")
        self.assertEqual(int(r["chargedUnits"]), 8_000_000 - H)
        self.assertEqual(self.lien("ld-1"), ("active", 0, 2 * H, 0))
        self.assertEqual(self.alloc_balance("ld"), (10 * H, 8_000_000, 0, 10 * H - 8_000_000))
        s = self.call("Ledger/Settle", {"site": SITE, "jobId": "9001"}, cert="scheduler-leonardo")
        self.assertEqual(s["status"], "LIEN_STATUS_SETTLED")
        self.assertEqual(int(s["releasedUnits"]), 0)
        again = self.call("Ledger/Settle", {"site": SITE, "jobId": "9001"})
        self.assertEqual(again["status"], "LIEN_STATUS_SETTLED", "settling twice is harmless")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.transfers WHERE lien = 'ld-1'"), "3",
                         "reserve, and two posts; nothing to void")
        self.check_ledger()

    def test_settle_releases_the_rest_and_release_all(self):
        self.project("ls", 10)
        self.reserve("ls-1", 9101, "ls", 1, 7200)  # 2 GPU-h held
        self.usage(9101, "ls", 1, 600, "ls-b1")  # 600,000 used
        s = self.call("Ledger/Settle", {"site": SITE, "jobId": "9101"})
        self.assertEqual(int(s["releasedUnits"]), 2 * H - 600_000)
        self.assertEqual(int(s["drawnUnits"]), 600_000)
        self.assertEqual(self.alloc_balance("ls"), (10 * H, 600_000, 0, 10 * H - 600_000))
        self.reserve("ls-2", 9102, "ls", 1, 3600)
        r = self.call("Ledger/Release", {"site": SITE, "jobId": "9102"})
        self.assertEqual(r["status"], "LIEN_STATUS_RELEASED")
        self.assertEqual(int(r["releasedUnits"]), H)
        self.assertEqual(self.alloc_balance("ls"), (10 * H, 600_000, 0, 10 * H - 600_000))
        self.check_ledger()

    def test_replace_and_replay(self):
        self.project("lr", 10)
        self.reserve("lr-1", 9201, "lr", 1, 3600)
        second = self.reserve("lr-2", 9201, "lr", 2, 3600)
        self.assertEqual(second["replaced"], "lr-1")
        self.assertEqual(self.lien("lr-1"), ("replaced", 0, 0, H))
        self.assertEqual(self.alloc_balance("lr")[2], 2 * H, "the new hold replaced the old")
        before = self.counts()
        replay = self.reserve("lr-2", 9201, "lr", 2, 3600)
        self.assertEqual(replay, second, "the same body answers the first answer")
        self.assertTwirpError(self.twirp("Ledger/Reserve", reserve_req("lr-2", 9201, "lr", 3, 3600)),
                              "already_exists", "lr-2")
        self.assertEqual(self.counts(), before, "a replay and a conflict change nothing")
        self.assertEqual(self.alloc_balance("lr")[2], 2 * H)
        # A replacement that does not fit leaves the old hold.
        self.assertTwirpError(self.twirp("Ledger/Reserve", reserve_req("lr-3", 9201, "lr", 4, 3 * 3600)),
                              "resource_exhausted")
        self.assertEqual(self.lien("lr-2"), ("active", 2 * H, 0, 0))
        self.check_ledger()

    def test_same_job_and_same_lien_at_once(self):
        """Reservations that arrive together for one job, or under one lien id, are
        weighed one after the other: one active hold per job, one lien per id."""
        self.project("lt", 10)
        results = {}

        def send(key, req):
            results[key] = twirp(self.port, "Ledger/Reserve", req, cert="scheduler-leonardo")

        reqs = {"a": reserve_req("lt-a", 9250, "lt", 1, 3600),
                "b": reserve_req("lt-b", 9250, "lt", 2, 3600),
                "c1": reserve_req("lt-c", 9251, "lt", 1, 1800),
                "c2": reserve_req("lt-c", 9251, "lt", 1, 1800)}
        threads = [threading.Thread(target=send, args=kv) for kv in reqs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual({k: v[0] for k, v in results.items()},
                         {"a": 200, "b": 200, "c1": 200, "c2": 200})
        self.assertEqual(results["c1"][2], results["c2"][2], "one lien id, one answer")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.liens WHERE job_id = '9250' "
                                   "AND status = 'active'"), "1")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.liens WHERE job_id = '9250' "
                                   "AND status = 'replaced'"), "1")
        active = self.psql("SELECT held FROM allot.liens WHERE job_id = '9250' "
                           "AND status = 'active'")
        self.assertEqual(self.alloc_balance("lt")[2], int(active) + H // 2)
        self.check_ledger()

    def test_refused_reservation_says_why(self):
        alloc = self.project("lx", 10)
        self.reserve("lx-1", 9301, "lx", 4, 2 * 3600)  # 8 GPU-h: 2 left
        before = self.counts()
        resp = self.twirp("Ledger/Reserve", reserve_req("lx-2", 9302, "lx", 1, 3 * 3600))
        msg = self.assertTwirpError(resp, "resource_exhausted", "9302", "lx")
        meta = resp[2]["meta"]
        self.assertEqual(meta["requested_units"], str(3 * H))
        self.assertEqual(float(meta["requested_gpu_hours"]), 3.0)
        self.assertEqual(meta["available_units"], str(2 * H))
        self.assertEqual(float(meta["available_gpu_hours"]), 2.0)
        self.assertEqual(meta["allocation"], str(alloc))
        self.assertIn(str(3 * H), msg)
        self.assertEqual(self.counts(), before, "a refusal stores nothing")

    def test_exhausted_project_and_heartbeats(self):
        self.project("le", 1)
        lien = self.reserve("le-1", 9401, "le", 1, 3600)
        self.assertEqual(int(lien["availableUnits"]), 0, "the whole grant is held")
        hb = self.call("Ledger/Heartbeat", {"site": SITE, "jobId": "9401", "elapsedS": "1800"})
        self.assertEqual(hb["action"], "HEARTBEAT_ACTION_CONTINUE")
        self.assertEqual(int(hb["chargedUnits"]), 1800 * 1000, "a heartbeat charges its usage")
        self.assertEqual(int(hb["heldUnits"]), H - 1_800_000)
        # The collector reports 2 hours: usage overdraws the grant by one GPU-hour.
        r = self.usage(9401, "le", 1, 7200, "le-b1")
        self.assertEqual(int(r["chargedUnits"]), 7_200_000 - 1_800_000)
        self.assertEqual(self.alloc_balance("le"), (H, 2 * H, 0, -H))
        hb = self.call("Ledger/Heartbeat", {"site": SITE, "jobId": "9401", "elapsedS": "7200"})
        self.assertEqual(hb["action"], "HEARTBEAT_ACTION_STOP")
        self.assertEqual(hb["reason"], "exhausted")
        self.assertEqual(int(hb["chargedUnits"]), 0, "nothing new: the same usage again")
        q = self.call("Ledger/Quote", {"site": SITE, "partition": PART, "account": "le",
                                       "gpus": 1, "timeLimitS": "1"})
        self.assertFalse(q["allowed"])
        self.assertIn("exhausted", q["reason"])
        resp = self.twirp("Ledger/Reserve", reserve_req("le-2", 9402, "le", 1, 1))
        self.assertTwirpError(resp, "resource_exhausted")
        self.assertEqual(resp[2]["meta"]["available_units"], str(-H))
        # Granting hours lifts the exhaustion.
        self.call("Admin/CreateAllocation", {"project": "le", "site": SITE, "gpuHours": "2",
                                             "startsAt": "2026-01-01", "endsAt": "2026-12-31",
                                             "transferId": "grant:le:more"})
        self.check_ledger()

    def test_heartbeat_after_settle_and_unknown_job(self):
        self.project("lh", 10)
        self.reserve("lh-1", 9501, "lh", 1, 600)
        self.call("Ledger/Settle", {"site": SITE, "jobId": "9501"})
        hb = self.call("Ledger/Heartbeat", {"site": SITE, "jobId": "9501", "elapsedS": "0"})
        self.assertEqual((hb["action"], hb["reason"]), ("HEARTBEAT_ACTION_STOP", "lien released"))
        self.assertTwirpError(self.twirp("Ledger/Heartbeat", {"site": SITE, "jobId": "nope"}),
                              "not_found", "nope")

    def test_campaign(self):
        alloc = self.project("lc", 20)
        c = self.call("Ledger/ReserveCampaign", {"lienId": "lc-run", "project": "lc",
                                                 "site": SITE, "partition": PART,
                                                 "gpuHours": "5", "endsAt": "2027-06-01"})
        self.assertEqual((c["kind"], int(c["heldUnits"]), int(c["allocationId"])),
                         ("campaign", 5 * H, alloc))
        # A 2 GPU-h job of the campaign holds nothing of its own.
        j = self.reserve("lc-j1", 9601, "lc", 1, 2 * 3600, campaign="lc-run")
        self.assertEqual(int(j["heldUnits"]), 0)
        self.assertEqual(self.alloc_balance("lc")[2], 5 * H)
        # Its usage draws from the campaign: 1 GPU-h.
        self.usage(9601, "lc", 1, 3600, "lc-b1")
        self.assertEqual(self.lien("lc-run"), ("active", 4 * H, H, 0))
        # A 6 GPU-h job: the campaign's 4 cover part of it; it holds the other 2.
        j2 = self.reserve("lc-j2", 9602, "lc", 2, 3 * 3600, campaign="lc-run")
        self.assertEqual(int(j2["heldUnits"]), 2 * H)
        self.assertEqual(self.alloc_balance("lc"), (20 * H, H, 6 * H, 13 * H))
        # 3 GPU-h of usage: 3 from the campaign first, the job's own hold untouched.
        self.usage(9602, "lc", 2, 5400, "lc-b2")
        self.assertEqual(self.lien("lc-run"), ("active", H, 4 * H, 0))
        self.assertEqual(self.lien("lc-j2"), ("active", 2 * H, 0, 0))
        done = self.call("Ledger/Settle", {"lienId": "lc-run"})
        self.assertEqual((done["status"], int(done["releasedUnits"])), ("LIEN_STATUS_SETTLED", H))
        other = self.project("lc-other", 5)
        self.assertNotEqual(other, alloc)
        self.assertTwirpError(self.twirp("Ledger/Reserve", reserve_req(
            "lc-x", 9603, "lc-other", 1, 60, campaign="lc-run")), "failed_precondition", "lc-run")
        self.check_ledger()

    def test_roles_and_scopes(self):
        self.project("lz", 10)
        # A project principal holds budget for its own project's jobs only.
        own = self.call("Ledger/Reserve", reserve_req("lz-own", 9701, "acme-llm", 1, 60),
                        cert="project-acme-llm")
        self.assertEqual(own["project"], "acme-llm")
        self.assertTwirpError(self.twirp("Ledger/Reserve", reserve_req("lz-1", 9702, "lz", 1, 60),
                                         cert="project-acme-llm"), "permission_denied", "lz")
        self.assertTwirpError(self.twirp("Ledger/Reserve", reserve_req("lz-2", 9703, "lz", 1, 60),
                                         cert="collector-leonardo"), "permission_denied")
        lumi = reserve_req("lz-3", 9704, "lz", 1, 60)
        lumi["site"] = "lumi"
        self.assertTwirpError(self.twirp("Ledger/Reserve", lumi, cert="scheduler-leonardo"),
                              "permission_denied", "lumi")
        self.reserve("lz-4", 9705, "lz", 1, 60)
        self.assertTwirpError(self.twirp("Ledger/Settle", {"site": SITE, "jobId": "9705"},
                                         cert="project-acme-llm"), "permission_denied", "lz-4")
        self.assertEqual(self.lien("lz-4")[0], "active")
        self.assertTwirpError(self.twirp("Ledger/Heartbeat", {"site": SITE, "jobId": "9705"},
                                         cert="project-acme-llm"), "permission_denied")

    def test_bad_input_changes_nothing(self):
        self.project("lb", 10)
        before = self.counts()
        for req, code, part in [
            (reserve_req("", 1, "lb", 1, 60), "invalid_argument", "lien_id"),
            (reserve_req("lb-1", 1, "lb", 1, 0), "invalid_argument", "time_limit_s"),
            (reserve_req("lb-1", 1, "lb", 1, -5), "invalid_argument", "time_limit_s"),
            (reserve_req("lb-1", 1, "lb", -1, 60), "invalid_argument", "gpus"),
            (reserve_req("lb-1", 1, "nobody", 1, 60), "not_found", "nobody"),
            (dict(reserve_req("lb-1", 1, "lb", 1, 60), partition="nope"), "invalid_argument",
             "nope"),
            (dict(reserve_req("lb-1", 1, "lb", 1, 60), campaign="nope"), "not_found", "nope"),
        ]:
            with self.subTest(part=part, code=code):
                self.assertTwirpError(self.twirp("Ledger/Reserve", req), code, part)
        self.assertTwirpError(self.twirp("Ledger/Settle", {"site": SITE, "jobId": "none"}),
                              "not_found")
        self.assertEqual(self.counts(), before)


class Expiry(TwoDaemonCase):
    """Liens nobody settles are released by the service, each exactly once, with two
    allotd sweeping every second."""

    config = other_config = {"lien_sweep_s": 1}

    def test_expiry_once_with_two_daemons(self):
        self.create_project("lexp", allocations=((SITE, (), 100),))
        n = 20
        for i in range(n):
            self.call("Ledger/Reserve", reserve_req(f"exp-{i}", 9800 + i, "lexp", 1, 3600,
                                                    expiresInS="1"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.psql("SELECT count(*) FROM allot.liens WHERE status = 'active'") == "0":
                break
            time.sleep(0.1)
        self.assertEqual(self.psql("SELECT count(*) FROM allot.liens WHERE status = 'expired'"),
                         str(n))
        self.assertEqual(self.psql("SELECT count(*) FROM allot.transfers WHERE kind = 'void'"),
                         str(n), "each lien released once")
        self.assertEqual(self.psql("SELECT sum(released) FROM allot.liens"), str(n * H))
        logged = 0
        for d in (self.daemon, self.other):
            for line in d.lines():
                if "expired liens" in line:
                    logged += int(line.split("released ")[1].split()[0])
        self.assertEqual(logged, n, "the two sweepers together released each lien once")
        b = self.balance("lexp")["total"]
        self.assertEqual(int(b["pendingUnits"]), 0)
        hb = self.call("Ledger/Heartbeat", {"site": SITE, "jobId": "9800"})
        self.assertEqual((hb["action"], hb["reason"]), ("HEARTBEAT_ACTION_STOP", "lien expired"))
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")


class ConcurrentReservations(TwoDaemonCase):
    """32 clients reserving on one allocation through two allotd: the holds never
    exceed what was available, every refusal says why, the books hold."""

    def test_32_clients_two_daemons_one_allocation(self):
        # 10 GPU-hours; each hold is 1 GPU for 1800 s (half a GPU-hour): 20 fit.
        self.create_project("hot", allocations=((SITE, (), 10),))
        clients, per_client = 32, 3
        ok, refused, other = [], [], []
        lock = threading.Lock()

        def client(c):
            port = (self.daemon, self.other)[c % 2].port
            for k in range(per_client):
                st, _, body = twirp(port, "Ledger/Reserve", reserve_req(
                    f"hot-{c}-{k}", f"{c}-{k}", "hot", 1, 1800), cert="scheduler-leonardo")
                with lock:
                    if st == 200:
                        ok.append(int(body["heldUnits"]))
                    elif st == 429 and body.get("code") == "resource_exhausted":
                        refused.append(body)
                    else:
                        other.append((st, body))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(other, [], "every answer is a hold or a refusal")
        self.assertEqual(len(ok) + len(refused), clients * per_client)
        self.assertLessEqual(sum(ok), 10 * H, "the holds never exceed the grant")
        self.assertEqual(len(ok), 20, "every hold that fits is made")
        for body in refused:
            self.assertIn("available", body["msg"])
            self.assertEqual(body["meta"]["requested_units"], str(H // 2))
            self.assertLess(int(body["meta"]["available_units"]), H // 2)
        b = self.balance("hot")["total"]
        self.assertEqual(int(b["pendingUnits"]), sum(ok))
        self.assertEqual(int(b["availableUnits"]), 10 * H - sum(ok))
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")
        groups = reservations = 0
        for d in (self.daemon, self.other):
            m = d.healthz("/metrics")[1]
            groups += metric(m, "allot_reserve_groups_total")
            reservations += metric(m, "allot_reservations_total")
        self.assertEqual(reservations, clients * per_client)
        self.assertLess(groups, reservations, "concurrent reservations were coalesced")


def metric(text, name):
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(f"no metric {name}")


if __name__ == "__main__":
    unittest.main()
