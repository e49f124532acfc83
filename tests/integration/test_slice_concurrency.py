"""Several allotd processes on one PostgreSQL: no correctness may depend on there
being only one. Two daemons ingest the same jobs' cumulative records and create the
same grant at the same time; every job is charged exactly once for its final usage."""

import random
import threading
import unittest

from harness import TwoDaemonCase, charge_units, job, twirp

DAY = "2026-11-21T"


class TwoDaemons(TwoDaemonCase):

    def test_same_records_through_both(self):
        self.create_project("race", allocations=(("leonardo", (), 1000),))
        jobs = range(40)
        final = {j: 600 * (1 + j % 5) for j in jobs}

        def batches(tag):
            # Each job reported at a third, two thirds and all of its final elapsed time,
            # in an order of the sender's own: locks must not deadlock across batches.
            rng = random.Random(tag)
            out = []
            for step in (1, 2, 3):
                recs = [job(20000 + j, DAY + "09:00:00Z", "race", "boost_usr_prod",
                            1 + j % 4, 8, 0, 1, final[j] * step // 3) for j in jobs]
                rng.shuffle(recs)
                out.append(recs)
            return [(f"{tag}-{i}", recs) for i, recs in enumerate(out)]

        results, errors = [], []

        def send(port, tag):
            try:
                for batch_id, recs in batches(tag):
                    st, _, body = twirp(port, "Usage/Ingest", {
                        "site": "leonardo", "batchId": batch_id, "records": recs},
                        cert="collector-leonardo")
                    if st != 200:
                        errors.append((st, body))
                    else:
                        results.append(body)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=send, args=(self.port, "a")),
                   threading.Thread(target=send, args=(self.other.port, "b")),
                   threading.Thread(target=send, args=(self.port, "c")),
                   threading.Thread(target=send, args=(self.other.port, "d"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 12)
        want = sum(charge_units(1 + j % 4, final[j], 1000) for j in jobs)
        self.assertEqual(self.charged_units("race"), want)
        self.assertEqual(sum(r["rejected"] for r in results), 0)
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_same_grant_through_both(self):
        self.call("Admin/CreateProject", {"name": "grant-race", "organization": "acme"})
        body = {"project": "grant-race", "site": "lumi", "resources": [], "gpuHours": "77",
                "startsAt": "2026-01-01", "endsAt": "2027-01-01", "transferId": "race-grant"}
        answers = []

        def grant(port):
            answers.append(twirp(port, "Admin/CreateAllocation", body))

        threads = [threading.Thread(target=grant, args=(p,))
                   for p in (self.port, self.other.port) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual([a[0] for a in answers], [200] * 8)
        self.assertEqual(len({a[2]["id"] for a in answers}), 1)
        self.assertEqual(self.psql("SELECT count(*) FROM allot.transfers "
                                   "WHERE transfer_id = 'race-grant'"), "1")


if __name__ == "__main__":
    unittest.main()
