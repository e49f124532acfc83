"""Ingestion through a real allotd: each site's rule on the sites' real sacct samples,
cumulative records, replays, and bad input that must change nothing."""

import random
import socket
import unittest

from harness import (AllotTestCase, charge_units, client_context, job, send_then_read,
                     statuses, twirp_path)

DAY = "2026-11-21T"


def occupied_share(gpus, cpus, mem_mb, cores_per_gpu, threads_per_core, mem_per_gpu_mb):
    """GPU_SHARE, as DESIGN.md states it: max(gpus, ceil(cores / cores_per_gpu),
    ceil(mem / mem_per_gpu)) with cores = ceil(cpus / threads_per_core)."""
    cores = -(-cpus // threads_per_core)
    by_mem = -(-mem_mb // mem_per_gpu_mb) if mem_per_gpu_mb else 0
    return max(gpus, -(-cores // cores_per_gpu), by_mem)


class SiteRules(AllotTestCase):
    """The real-format samples of shared/fixtures/sacct, as a collector would send them.
    Each site's project is fresh, so its charged total is exactly the site's jobs."""

    def charged_by(self, project, site, records, batch):
        self.create_project(project, allocations=((site, (), 1000),))
        resp = self.ingest(site, records, batch)
        self.assertEqual(resp["rejected"], 0, resp)
        return self.charged_units(project)

    def test_leonardo(self):
        # leonardo.psv: 48411710 boost_usr_prod, AllocTRES cpu=8,gres/gpu=1,mem=64G,
        # node=1, Elapsed 00:04:31 = 271 s, with its .batch and .extern steps, which
        # repeat the allocation and must not be charged again.
        recs = [job(48411710, DAY + "08:12:40Z", "iscrc_simp", "boost_usr_prod", 1, 8,
                    65536, 1, 271, "FAILED"),
                job(48411710, DAY + "08:12:40Z", "iscrc_simp", "", 1, 8, 65536, 1, 271,
                    "FAILED", step="batch"),
                job(48411710, DAY + "08:12:40Z", "iscrc_simp", "", 1, 8, 65536, 1, 271,
                    "COMPLETED", step="extern")]
        got = self.charged_by("iscrc_simp", "leonardo", recs, "leo-1")
        occ = occupied_share(1, 8, 65536, 8, 1, 128000)  # = 1
        self.assertEqual(got, charge_units(occ, 271, 1000))
        self.assertEqual(got, 271000)

    def test_marenostrum5(self):
        # mn5.psv acc rows: 46783172 (gres/gpu=4, 160 CPUs = 80 cores with 2 threads
        # each, 500000M, 11632 s), 21687187 (1 GPU, 40 CPUs, 125000M, 22 s),
        # 4534836 (32 GPUs, 8 nodes, 1280 CPUs, 4000000M, 7208 s).
        rows = [(46783172, 4, 160, 500000, 1, 11632), (21687187, 1, 40, 125000, 1, 22),
                (4534836, 32, 1280, 4000000, 8, 7208)]
        recs = [job(j, DAY + "08:48:23Z", "ehpc103", "acc", g, c, m, n, e)
                for j, g, c, m, n, e in rows]
        got = self.charged_by("ehpc103", "marenostrum5", recs, "mn5-1")
        want = sum(charge_units(occupied_share(g, c, m, 20, 2, 125000), e, 1000)
                   for _, g, c, m, _, e in rows)
        self.assertEqual(got, want)
        self.assertEqual(got, (4 * 11632 + 22 + 32 * 7208) * 1000)

    def test_jupiter_whole_nodes(self):
        # jupiter.psv: 1618998 (4 GPUs, 19 s) and 1618999 (asked 1 GPU, given node=1,
        # 16 s): whole nodes of 4 GH200 each.
        recs = [job(1618998, DAY + "10:05:00Z", "e-dev-2026d09-128", "booster", 4, 288,
                    878535, 1, 19),
                job(1618999, DAY + "10:06:00Z", "e-dev-2026d09-128", "booster", 1, 72,
                    878535, 1, 16)]
        got = self.charged_by("e-dev-2026d09-128", "jupiter", recs, "jup-1")
        self.assertEqual(got, charge_units(1 * 4, 19, 1000) + charge_units(1 * 4, 16, 1000))

    def test_lumi(self):
        # Slurm on LUMI counts GCDs; one LUMI GPU-hour is a module of 2 GCDs (weight 500).
        # standard-g: 2 whole nodes = 16 GCDs for 6 h. small-g: 2 GCDs with 24 cores ->
        # ceil(24 / 8) = 3 GCDs for 3 h.
        recs = [job(9100001, DAY + "06:00:00Z", "project_465000001", "standard-g", 16, 112,
                    0, 2, 21600),
                job(9100002, DAY + "13:30:00Z", "project_465000001", "small-g", 2, 24,
                    120000, 1, 10800)]
        got = self.charged_by("project_465000001", "lumi", recs, "lumi-1")
        want = charge_units(2 * 8, 21600, 500) + \
            charge_units(occupied_share(2, 24, 120000, 8, 1, 64000), 10800, 500)
        self.assertEqual(got, want)
        # 48 + 4.5 normalized GPU-hours, and the same in LUMI's own GPU-hours.
        b = self.balance("project_465000001")["total"]
        self.assertAlmostEqual(b["chargedGpuHours"], 52.5)
        self.assertEqual(b["nativeUnit"], "GPU-h")
        self.assertAlmostEqual(b["nativeCharged"], 52.5)


class Cumulative(AllotTestCase):

    def test_running_job_charged_once_for_final_elapsed(self):
        self.create_project("run-once", allocations=(("leonardo", (), 100),))
        for i, elapsed in enumerate((600, 1800, 3600)):
            r = self.ingest("leonardo", [job(5001, DAY + "09:00:00Z", "run-once",
                                             "boost_usr_prod", 4, 32, 0, 1, elapsed,
                                             "RUNNING")], f"run-{i}")
            self.assertEqual(statuses(r), ["CHARGED"])
        self.assertEqual(self.charged_units("run-once"), charge_units(4, 3600, 1000))
        self.assertEqual(self.psql("SELECT count(*) FROM allot.transfers WHERE kind = 'charge' "
                                   "AND reason LIKE 'job 5001 %'"), "3")
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_replays_shuffles_and_duplicates_give_the_same_balance(self):
        recs = []
        for j in range(12):
            for elapsed in (100, 250, 400):
                recs.append(job(6000 + j, DAY + "09:00:00Z", "shuffled", "acc", 1 + j % 4,
                                40, 0, 1, elapsed * (j + 1)))
        want = sum(charge_units(1 + j % 4, 400 * (j + 1), 1000) for j in range(12))
        self.create_project("shuffled", allocations=(("marenostrum5", (), 1000),))
        self.ingest("marenostrum5", recs, "in-order")
        self.assertEqual(self.charged_units("shuffled"), want)
        # The same batch again: every record is a duplicate, nothing changes.
        again = self.ingest("marenostrum5", recs, "in-order")
        self.assertEqual(again["duplicates"], len(recs))
        self.assertEqual(self.charged_units("shuffled"), want)

        # Another project gets the same records shuffled, duplicated, over three batches.
        rng = random.Random(7)
        self.create_project("shuffled2", allocations=(("marenostrum5", (), 1000),))
        mixed = [dict(r, account="shuffled2", jobId="x" + r["jobId"]) for r in recs]
        mixed = mixed + rng.sample(mixed, len(mixed) // 2)
        rng.shuffle(mixed)
        for i in range(3):
            self.ingest("marenostrum5", mixed[i::3], f"mixed-{i}")
        self.assertEqual(self.charged_units("shuffled2"), want)
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_bad_record_does_not_stop_the_batch(self):
        self.create_project("partial", allocations=(("leonardo", (), 100),))
        before = int(self.psql("SELECT count(*) FROM allot.job_usage"))
        r = self.ingest("leonardo", [
            job(7001, DAY + "09:00:00Z", "partial", "boost_usr_prod", 1, 8, 0, 1, 60),
            job(7002, DAY + "09:00:00Z", "no-such-account", "boost_usr_prod", 1, 8, 0, 1, 60),
            job(7003, DAY + "09:00:00Z", "partial", "no_such_partition", 1, 8, 0, 1, 60),
            job(7004, DAY + "09:00:00Z", "partial", "boost_usr_prod", -1, 8, 0, 1, 60),
            job(7005, "yesterday", "partial", "boost_usr_prod", 1, 8, 0, 1, 60),
            job(7006, DAY + "09:00:00Z", "partial", "boost_usr_prod", 2, 8, 0, 1, 30),
        ], "partial-1")
        self.assertEqual(statuses(r), ["CHARGED", "REJECTED", "REJECTED", "REJECTED",
                                       "REJECTED", "CHARGED"])
        reasons = [x["reason"] for x in r["results"]]
        self.assertIn('unknown account "no-such-account"', reasons[1])
        self.assertIn('unknown partition "no_such_partition"', reasons[2])
        self.assertIn("gpus must not be negative", reasons[3])
        self.assertIn("not an RFC 3339 time", reasons[4])
        self.assertEqual(self.charged_units("partial"), charge_units(1, 60, 1000) +
                         charge_units(2, 30, 1000))
        self.assertEqual(int(self.psql("SELECT count(*) FROM allot.job_usage")), before + 2)


class BadInput(AllotTestCase):
    """A clear error, and nothing in the database changes."""

    def assertRefused(self, method, body, code, *parts, cert="admin"):
        before = self.counts()
        balance = self.balance("acme-llm")
        self.assertTwirpError(self.twirp(method, body, cert=cert), code, *parts)
        self.assertEqual(self.counts(), before)
        self.assertEqual(self.balance("acme-llm"), balance)

    def grant(self, **kw):
        body = {"project": "acme-llm", "site": "", "resources": [], "gpuHours": "10",
                "startsAt": "2026-01-01", "endsAt": "2027-01-01", "transferId": "bad-input"}
        body.update(kw)
        return body

    def test_negative_and_absurd_amounts(self):
        self.assertRefused("Admin/CreateAllocation", self.grant(gpuHours="-10"),
                           "invalid_argument", "gpu_hours", "-10")
        self.assertRefused("Admin/CreateAllocation", self.grant(gpuHours="0"),
                           "invalid_argument", "gpu_hours")
        self.assertRefused("Admin/CreateAllocation", self.grant(gpuHours="5000000000"),
                           "invalid_argument", "gpu_hours")
        self.assertRefused("Admin/CreateAllocation",
                           self.grant(gpuHours="99999999999999999999"), "malformed",
                           "gpu_hours")

    def test_unknown_project(self):
        self.assertRefused("Admin/CreateAllocation", self.grant(project="nobody"),
                           "not_found", 'project "nobody" does not exist')
        self.assertRefused("Ledger/GetBalance", {"project": "nobody"}, "not_found",
                           'project "nobody"')

    def test_end_before_start(self):
        self.assertRefused("Admin/CreateAllocation",
                           self.grant(startsAt="2027-01-01", endsAt="2026-01-01"),
                           "invalid_argument", "ends_at", "after starts_at")
        self.assertRefused("Admin/CreateAllocation", self.grant(startsAt="soon"),
                           "invalid_argument", "starts_at", "soon")

    def test_transfer_id_reused_with_another_body(self):
        first = self.call("Admin/CreateAllocation", self.grant(transferId="once"))
        again = self.call("Admin/CreateAllocation", self.grant(transferId="once"))
        self.assertEqual(first, again)
        self.assertRefused("Admin/CreateAllocation",
                           self.grant(transferId="once", gpuHours="11"),
                           "already_exists", 'transfer id "once"', "different body")

    def test_batch_id_reused_with_other_records(self):
        rec = job(8001, DAY + "09:00:00Z", "acme-llm", "boost_usr_prod", 1, 8, 0, 1, 60)
        self.ingest("leonardo", [rec], "batch-once")
        self.assertRefused("Usage/Ingest", {"site": "leonardo", "batchId": "batch-once",
                                            "records": [dict(rec, elapsedS="120")]},
                           "already_exists", "batch-once", cert="collector-leonardo")

    LIMIT = 1 << 20  # this class's max_body_bytes

    def oversized_site(self):
        """A CreateSite body over the limit that would store site "oversized" if read."""
        pad = b" " * self.LIMIT
        return b'{"name":"oversized",' + pad + b'"description":"too big"}'

    def head(self, extra):
        return (f"POST {twirp_path('Admin/CreateSite')} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n").encode()

    def assertNothingStored(self, before):
        self.assertEqual(self.counts(), before)
        self.assertEqual(
            self.psql("SELECT count(*) FROM allot.sites WHERE name = 'oversized'"), "0")
        self.assertEqual(self.daemon.healthz()[0], 200)

    def test_oversized_body(self):
        # The client writes its whole request before it reads, as http.client and most
        # clients do. allotd answers 413 after the headers, then must keep reading (and
        # discarding) the body: closing with it unread sends a reset that loses the
        # answer. Repeated, because that reset was a race a single try often won.
        before = self.counts()
        body = self.oversized_site()
        for i in range(20):
            st, hdrs, _, _ = send_then_read(
                self.port, self.head({"Content-Length": len(body)}), [body])
            self.assertEqual(st, 413, f"try {i}")
            self.assertEqual(hdrs.get("connection"), "close", f"try {i}")
        # The harness's own client, http.client, reads it too.
        self.assertEqual(self.twirp("Admin/CreateSite", body)[0], 413)
        self.assertNothingStored(before)

    def test_oversized_chunked_body(self):
        # Without a Content-Length the cap is found while the chunks come in.
        before = self.counts()
        body = self.oversized_site()
        step = 1 << 16
        chunks = [b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                  for i in range(0, len(body), step)] + [b"0\r\n\r\n"]
        st, _, _, _ = send_then_read(
            self.port, self.head({"Transfer-Encoding": "chunked"}), chunks)
        self.assertEqual(st, 413)
        self.assertNothingStored(before)

    def test_oversized_body_not_read_forever(self):
        # Lingering is bounded: a client that keeps sending far past the limit is cut
        # off after twice max_body_bytes (2 MiB here), plus what the sockets buffer.
        before = self.counts()
        claimed = 64 * self.LIMIT
        block = b" " * (1 << 16)
        sent = 0
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            with client_context("admin").wrap_socket(s, server_hostname="127.0.0.1") as t:
                try:
                    t.sendall(self.head({"Content-Length": claimed}))
                    while sent < claimed:
                        t.sendall(block)
                        sent += len(block)
                except TimeoutError:
                    self.fail(f"allotd stopped reading after {sent} bytes but kept the "
                              "connection open")
                except OSError:
                    pass  # reset: cut off
                else:
                    self.fail(f"allotd read and discarded all {claimed} bytes")
        self.assertLess(sent, claimed // 2)
        self.assertNothingStored(before)

    config = {"max_body_bytes": LIMIT}


if __name__ == "__main__":
    unittest.main()
