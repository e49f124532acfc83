"""GPU metrics through allotd (Usage.IngestMetrics, in protobuf and JSON) and a
project's jobs with their efficiency and energy (Usage.ListJobs, `allot jobs` in
table, JSON and CSV). Every figure is worked out here.

acme-vision has 1000 GPU-hours on LEONARDO (weight 1000, 8 core-h per GPU-hour).
Job 9001: 2 GPUs for an hour from 08:00 (2 GPU-hours, 16 core-h), sampled on two
GPUs at 0, 60 and 120 s. GPU 0: 1,000, 13,000 and 25,000 J on its counter (200 W),
utilization 0, 0, 100; GPU 1: 500, 6,500, 12,500 J (100 W), utilization 50 three
times. Energy 24,000 + 12,000 J = 36,000 J = 0.01 kWh; 60 GPU-seconds at 0 % (GPU 0
from 0 to 60 s) = 0.016667 GPU-hours; mean utilization 250 / 6 = 41.67 %.
Job 9002: 1 GPU for half an hour from 10:00 (0.5 GPU-hours, 4 core-h), no samples.
"""

import csv
import io
import json
import unittest

from harness import AllotTestCase, job, twirp

SITE, PART = "leonardo", "boost_usr_prod"
DAY = "2026-11-21T"
J = 1_000_000  # microjoules per joule


def sample(gpu, t, util, energy_j, job_id="9001", host="lrdn0001"):
    return {"jobId": job_id, "host": host, "gpu": str(gpu),
            "time": f"{DAY}08:{t // 60:02d}:{t % 60:02d}Z", "utilizationPct": util,
            "energyUj": str(energy_j * J)}


SAMPLES = [sample(0, 0, 0, 1000), sample(1, 0, 50, 500), sample(0, 60, 0, 13000),
           sample(1, 60, 50, 6500), sample(0, 120, 100, 25000), sample(1, 120, 50, 12500)]


class GpuMetrics(AllotTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st, _, resp = twirp(cls.daemon.port, "Usage/Ingest", {
            "site": SITE, "batchId": "jobs", "records": [
                job(9001, DAY + "08:00:00Z", "acme-vision", PART, 2, 16, 0, 1, 3600),
                job(9002, DAY + "10:00:00Z", "acme-vision", PART, 1, 8, 0, 1, 1800)]})
        assert st == 200 and resp["charged"] == 2, resp
        # The first half in protobuf, the second in JSON.
        for batch, part, ct in (("m-1", SAMPLES[:2], "application/protobuf"),
                                ("m-2", SAMPLES[2:], "application/json")):
            st, _, resp = twirp(cls.daemon.port, "Usage/IngestMetrics",
                                {"site": SITE, "batchId": batch, "samples": part},
                                cert="collector-leonardo", content_type=ct)
            assert st == 200, resp

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, f"allot {' '.join(args)}: {r.stderr}")
        return r.stdout

    def metrics(self, batch, samples, cert="collector-leonardo", **kw):
        return self.twirp("Usage/IngestMetrics", {"site": SITE, "batchId": batch,
                                                  "samples": samples}, cert=cert, **kw)

    def test_jobs_json(self):
        out = json.loads(self.ok("--format", "json", "jobs", "--project", "acme-vision",
                                 cert="project-acme-vision"))
        self.assertEqual([j["jobId"] for j in out["jobs"]], ["9002", "9001"])
        self.assertEqual(out["nextPageToken"], "")
        j = out["jobs"][1]
        self.assertEqual(
            {k: j[k] for k in ("site", "user", "gpus", "elapsedS", "chargedUnits",
                               "chargedGpuHours", "nativeMilli", "nativeUnit", "samples",
                               "meanUtilizationPct", "energyKwh", "zeroUtilizationGpuHours")},
            {"site": SITE, "user": "user1", "gpus": 2, "elapsedS": "3600",
             "chargedUnits": str(2 * 3_600_000), "chargedGpuHours": 2.0,
             "nativeMilli": "16000", "nativeUnit": "core-h", "samples": "6",
             "meanUtilizationPct": 41.67, "energyKwh": 0.01,
             "zeroUtilizationGpuHours": 0.016667})
        self.assertNotIn("energyKwh", out["jobs"][0])
        self.assertNotIn("meanUtilizationPct", out["jobs"][0])

    def test_jobs_table_and_csv(self):
        table = self.ok("jobs", "--project", "acme-vision").splitlines()
        self.assertRegex(table[0], r"^site\s+job\s+user\s+gpus\s+elapsed\s+GPU-h\s+native\s+"
                                   r"unit\s+util %\s+idle GPU-h\s+energy kWh$")
        self.assertRegex(table[1], r"^leonardo\s+9002\s+user1\s+1\s+0:30:00\s+0\.50\s+4\.00\s+"
                                   r"core-h\s+-\s+0\.00\s+-$")
        self.assertRegex(table[2], r"^leonardo\s+9001\s+user1\s+2\s+1:00:00\s+2\.00\s+16\.00\s+"
                                   r"core-h\s+41\.7\s+0\.02\s+0\.010$")
        rows = list(csv.reader(io.StringIO(self.ok("jobs", "--project", "acme-vision",
                                                   "--format", "csv"))))
        self.assertEqual(rows[0][:3], ["site", "job_id", "user"])
        self.assertEqual(rows[2], ["leonardo", "9001", "user1", "acme-vision", PART,
                                   DAY + "08:00:00Z", "COMPLETED", "2", "3600", "2.000000",
                                   "16.000", "core-h", "6", "41.67", "0.016667", "0.010000"])
        self.assertEqual(rows[1][12:], ["0", "", "0.000000", ""])
        # --since and --site filter; a later start leaves only 9002.
        since = self.ok("jobs", "--project", "acme-vision", "--since", DAY + "09:00:00Z",
                        "--format", "csv").splitlines()
        self.assertEqual([r.split(",")[1] for r in since[1:]], ["9002"])
        self.assertEqual(len(self.ok("jobs", "--project", "acme-vision", "--site", "lumi",
                                     "--format", "csv").splitlines()), 1)

    def test_help(self):
        out = self.ok("jobs", "--help")
        self.assertIn("usage: allot jobs --project P", out)
        self.assertIn("jobs --project P", self.ok("--help"))
        r = self.cli("jobs", "--format", "xml", "--project", "acme-vision")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not table, json or csv", r.stderr)
        self.assertEqual(self.cli("jobs").returncode, 2)

    def test_pages(self):
        first = self.call("Usage/ListJobs", {"project": "acme-vision", "limit": 1})
        self.assertEqual([j["jobId"] for j in first["jobs"]], ["9002"])
        self.assertNotEqual(first["nextPageToken"], "")
        second = self.call("Usage/ListJobs", {"project": "acme-vision", "limit": 1,
                                              "pageToken": first["nextPageToken"]})
        self.assertEqual(([j["jobId"] for j in second["jobs"]], second["nextPageToken"]),
                         (["9001"], ""))
        # The CLI follows the pages up to its --limit.
        out = json.loads(self.ok("--format", "json", "jobs", "--project", "acme-vision",
                                 "--limit", "1"))
        self.assertEqual(([j["jobId"] for j in out["jobs"]], out["nextPageToken"] != ""),
                         (["9002"], True))

    def test_replay_conflict_duplicates(self):
        # The same samples under the same id, in the other encoding: the first answer.
        st, _, again = self.metrics("m-1", SAMPLES[:2], content_type="application/json")
        self.assertEqual((st, again["stored"], again["duplicates"]), (200, 2, 0))
        self.assertTwirpError(self.metrics("m-1", SAMPLES[:1]), "already_exists", "m-1")
        st, _, dup = self.metrics("m-3", SAMPLES[:3])
        self.assertEqual((dup["stored"], dup["duplicates"]), (0, 3))
        j = self.call("Usage/ListJobs", {"project": "acme-vision"})["jobs"][1]
        self.assertEqual((j["samples"], j["energyKwh"]), ("6", 0.01))

    def test_bad_samples_are_refused_alone(self):
        bad = [dict(sample(0, 300, 120, 1), jobId="9003"),
               dict(sample(0, 300, 10, 1), time="yesterday", jobId="9003"),
               dict(sample(0, 300, 10, 1), host="", jobId="9003"),
               sample(0, 300, 10, 1, job_id="9003", host="lrdn0002")]
        st, _, r = self.metrics("m-bad", bad)
        self.assertEqual((st, r["stored"], r["rejected"]), (200, 1, 3))
        self.assertEqual(r["reasons"], ["sample 0: utilization_pct 120 is not between 0 and 100",
                                        'sample 1: time "yesterday" is not an RFC 3339 time',
                                        "sample 2: host is required (1 to 255 characters)"])
        self.assertTwirpError(self.metrics("", bad), "invalid_argument", "batch_id")
        self.assertTwirpError(self.metrics("m-none", []), "invalid_argument", "1 to")

    def test_roles(self):
        for cert in ("collector-lumi", "project-acme-vision", "auditor", "scheduler-leonardo"):
            with self.subTest(cert=cert):
                self.assertTwirpError(self.metrics("m-r", SAMPLES[:1], cert=cert),
                                      "permission_denied")
        self.call("Usage/ListJobs", {"project": "acme-vision"}, cert="auditor")
        self.assertTwirpError(self.twirp("Usage/ListJobs", {"project": "acme-vision"},
                                         cert="project-acme-llm"),
                              "permission_denied", "acme-vision")
        self.assertTwirpError(self.twirp("Usage/ListJobs", {"project": "acme-vision"},
                                         cert="collector-leonardo"), "permission_denied")
        self.assertTwirpError(self.twirp("Usage/ListJobs", {"project": "nobody"}), "not_found",
                              "nobody")


if __name__ == "__main__":
    unittest.main()
