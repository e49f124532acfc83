"""A batch of 50,000 records in one call answers exactly as the same records in 50
batches of 1,000: ingestion is set-based, and its result does not depend on how a
collector cuts its stream. The two runs use job ids of their own ("a-", "b-") under
the same project, so their answers can be compared record by record."""

import unittest

from harness import AllotTestCase, job

N = 50_000
START = "2026-11-21T08:00:00Z"


def records(prefix):
    """A mix on LEONARDO's rule (GPUs, cores or memory deciding), jobs seen before (reported again, with a
    later and with an earlier elapsed time), steps, and records that are refused."""
    out = []
    for i in range(N):
        k = i % 10
        j = f"{prefix}{i}"
        if k == 0:
            out.append(job(j, START, "bulk", "boost_usr_prod", 1 + i % 4, 8, 0, 1, 60 + i % 900))
        elif k == 1:  # cores decide: 32 / 8 = 4 GPUs
            out.append(job(j, START, "bulk", "boost_usr_prod", 1, 32, 0, 1, 30 + i % 500))
        elif k == 2:  # memory decides: 300,000 MB / 128,000 = 3 GPUs
            out.append(job(j, START, "bulk", "boost_usr_prod", 1, 8, 300000, 1, 120))
        elif k == 3:
            out.append(job(j, START, "bulk", "boost_usr_prod", 8, 64, 0, 2, 45 + i % 7))
        elif k == 4:  # started, nothing used yet
            out.append(job(j, START, "bulk", "boost_usr_prod", 2, 16, 0, 1, 0))
        elif k == 5:  # seen before with elapsed 100: later now
            out.append(job(f"{prefix}seen{i}", START, "bulk", "boost_usr_prod", 1, 8, 0, 1, 400))
        elif k == 6:  # seen before with elapsed 100: earlier now
            out.append(job(f"{prefix}seen{i}", START, "bulk", "boost_usr_prod", 1, 8, 0, 1, 50))
        elif k == 7:
            out.append(job(f"{prefix}seen{i - 2}", START, "bulk", "boost_usr_prod", 1, 8, 0, 1,
                           100, step="batch"))
        elif k == 8:
            out.append(job(j, START, "nobody", "boost_usr_prod", 1, 8, 0, 1, 60))
        else:
            out.append(job(j, START, "bulk", "no_such", 1, 8, 0, 1, 60))
    return out


def seen_before(prefix):
    return [job(f"{prefix}seen{i}", START, "bulk", "boost_usr_prod", 1, 8, 0, 1, 100)
            for i in range(N) if i % 10 in (5, 6)]


class BulkBatch(AllotTestCase):

    config = {"max_body_bytes": 64 << 20}

    def test_one_batch_of_50000_answers_as_50_batches(self):
        self.create_project("bulk", allocations=(("", (), 10_000_000),))
        for prefix in ("a-", "b-"):
            seen = seen_before(prefix)
            for i in range(0, len(seen), 5000):
                self.ingest("leonardo", seen[i:i + 5000], f"{prefix}seen-{i}", cert="admin")
        big = self.call("Usage/Ingest", {"site": "leonardo", "batchId": "a-all",
                                         "records": records("a-")})
        self.assertEqual(len(big["results"]), N)
        small = []
        recs = records("b-")
        for i in range(0, N, 1000):
            r = self.call("Usage/Ingest", {"site": "leonardo", "batchId": f"b-{i}",
                                           "records": recs[i:i + 1000]})
            small.extend(r["results"])

        def key(r):
            return (r["status"], r["chargedUnits"], r["allocationId"],
                    r["reason"].replace("b-", "a-"))
        for i, (x, y) in enumerate(zip(big["results"], small)):
            self.assertEqual(int(x["index"]), i)
            if key(x) != key(y):
                self.fail(f"record {i}: one batch answered {x}, fifty batches {y}")
        counts = {}
        for r in big["results"]:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        # k = 0..5 charge (6 in 10), 6 is a duplicate, 7 a step, 8 and 9 refused.
        self.assertEqual(counts, {"INGEST_STATUS_CHARGED": N * 6 // 10,
                                  "INGEST_STATUS_DUPLICATE": N // 10,
                                  "INGEST_STATUS_RECORDED": N // 10,
                                  "INGEST_STATUS_REJECTED": N * 2 // 10})
        a = self.psql("SELECT sum(charged_units) FROM allot.job_usage WHERE job_id LIKE 'a-%'")
        b = self.psql("SELECT sum(charged_units) FROM allot.job_usage WHERE job_id LIKE 'b-%'")
        self.assertEqual(a, b)
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")
        # The replay of the big batch is answered from what it stored.
        again = self.call("Usage/Ingest", {"site": "leonardo", "batchId": "a-all",
                                           "records": records("a-")})
        self.assertEqual(again["charged"], 0)
        self.assertEqual(again["rejected"], N * 2 // 10)
        self.assertEqual(again["duplicates"], N * 8 // 10)


if __name__ == "__main__":
    unittest.main()
