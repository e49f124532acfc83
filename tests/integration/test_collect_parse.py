"""`allot-collect parse` of the sites' sacct output piped into `allot ingest` against a
real allotd: the charges are the ones worked out by hand from the fixtures' rows under
each site's billing rule, steps are recorded and not charged, a later report of a
running job charges only its growth, and input the collector cannot read stops before
anything is sent."""

import os
import subprocess

from harness import REPO, AllotTestCase, binary, cert_files, certs_dir, charge_units, cli_path

SITES = os.path.join(REPO, "tests", "fixtures", "sites")
MN5_FIELDS = ("JobID,JobName,Account,Partition,QOS,State,Submit,Start,End,ElapsedRaw,"
              "NNodes,AllocCPUS,AllocTRES,CPUTimeRAW,ExitCode,WorkDir,ConsumedEnergyRaw")


def collect_path():
    return binary(os.path.join("clients", "collect", "allot-collect"))


class CollectIntoIngest(AllotTestCase):

    def parse(self, site, fixture, *args, input=None):
        argv = [collect_path(), "parse", "--site", site, "--format", "sacct", *args]
        argv.append(os.path.join(SITES, fixture) if fixture else "-")
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60)

    def pipe(self, site, fixture, *args):
        """allot-collect parse ... FILE | allot ingest --site SITE -, as a shell pipe
        would run them; returns (parse, ingest) CompletedProcess-like results."""
        files = cert_files(f"collector-{site}")
        ingest = [cli_path(), "--server", f"https://127.0.0.1:{self.port}",
                  "--ca", os.path.join(certs_dir(), "ca.crt"), "--cert", files[0],
                  "--key", files[1], "ingest", "--site", site, "-"]
        argv = [collect_path(), "parse", "--site", site, "--format", "sacct", *args,
                os.path.join(SITES, fixture)]
        env = {k: v for k, v in os.environ.items()
               if k not in ("ALLOT_SERVER", "ALLOT_CERT", "ALLOT_KEY", "ALLOT_CA")}
        p1 = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p2 = subprocess.Popen(ingest, stdin=p1.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
        p1.stdout.close()
        out2, err2 = p2.communicate(timeout=60)
        err1 = p1.stderr.read().decode()
        p1.stderr.close()
        rc1 = p1.wait(timeout=60)
        return (rc1, err1), (p2.returncode, out2, err2)

    def test_leonardo_steps_recorded_not_charged(self):
        # 48411710: 1 GPU, 8 CPUs (8 cores, 8 per GPU), 64G = 65536 MB (128000 per GPU):
        # 1 occupied GPU for 271 s; .batch and .extern repeat it and are not charged.
        self.create_project("iscrc_simp", allocations=(("leonardo", (), 100),))
        (rc1, err1), (rc2, out, err2) = self.pipe("leonardo", "sacct/leonardo-with-times.psv",
                                                  "--timezone", "Europe/Rome")
        self.assertEqual(rc1, 0, err1)
        self.assertEqual(rc2, 0, err2)
        self.assertRegex(out, r"1 charged, 0 duplicate, 2 recorded, 0 rejected")
        self.assertEqual(self.charged_units("iscrc_simp"), charge_units(1, 271, 1000))
        self.assertEqual(self.charged_units("iscrc_simp"), 271000)
        # Europe/Rome is UTC+1 in November: 09:12:40 local is 08:12:40Z.
        self.assertEqual(self.psql(
            "SELECT to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
            "FROM allot.job_usage WHERE job_id = '48411710' AND step = ''"),
            "2026-11-21 08:12:40")

    def test_jupiter_typed_gpus_counted_once_whole_nodes(self):
        # gres/gpu:gh200=4 beside gres/gpu=4: 4 GPUs; booster bills whole nodes of 4, so
        # 1618998 (19 s) and 1618999 (16 s) are 4 GPUs each.
        self.create_project("e-dev-2026d09-128", allocations=(("jupiter", (), 100),))
        (rc1, err1), (rc2, out, err2) = self.pipe("jupiter", "sacct/jupiter-with-times.psv",
                                                  "--timezone", "Europe/Berlin")
        self.assertEqual(rc1, 0, err1)
        self.assertEqual(rc2, 0, err2)
        self.assertRegex(out, r"2 charged, 0 duplicate, 0 recorded, 0 rejected")
        self.assertEqual(self.charged_units("e-dev-2026d09-128"),
                         charge_units(4, 19, 1000) + charge_units(4, 16, 1000))
        self.assertEqual(self.charged_units("e-dev-2026d09-128"), 140000)

    def test_marenostrum5_no_header_and_a_running_job_growing(self):
        # -n output read with --fields. acc (GPU share, 20 cores per GPU, 2 threads per
        # core, 125000 MB per GPU): 46783172 4 GPUs 11632 s (ehpc103); 21687187 1 GPU
        # 22 s and 4534836 32 GPUs 7208 s (bsc32). The pending jobs are not sent. The
        # gpp rows (CPU jobs of bsc32) name a partition with no resource: allotd
        # refuses those two, and ingest says so.
        self.create_project("ehpc103", allocations=(("marenostrum5", (), 1000),))
        self.create_project("bsc32", allocations=(("marenostrum5", (), 1000),))
        (rc1, err1), (rc2, out, err2) = self.pipe("marenostrum5", "sacct/mn5.psv",
                                                  "--timezone", "Europe/Madrid",
                                                  "--fields", MN5_FIELDS)
        self.assertEqual(rc1, 0, err1)
        self.assertEqual(rc2, 1, out + err2)
        self.assertRegex(out, r"3 charged, 0 duplicate, 0 recorded, 2 rejected")
        self.assertIn("job 1120989", out)
        self.assertIn("job 1748055", out)
        self.assertEqual(self.charged_units("ehpc103"), charge_units(4, 11632, 1000))
        self.assertEqual(self.charged_units("bsc32"),
                         charge_units(1, 22, 1000) + charge_units(32, 7208, 1000))
        self.assertEqual(self.charged_units("bsc32"), 230678000)
        self.assertEqual(self.psql("SELECT count(*) FROM allot.job_usage "
                                   "WHERE job_id IN ('46784789', '46799999')"), "0")

        # The next report: the running job has run 600 s more; only that is charged.
        with open(os.path.join(SITES, "sacct", "mn5.psv")) as f:
            first = f.readline().replace("|11632|", "|12232|")
        p = self.parse("marenostrum5", None, "--timezone", "Europe/Madrid",
                       "--fields", MN5_FIELDS, input=first)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = self.cli("ingest", "--site", "marenostrum5", "-", input=p.stdout,
                     cert="collector-marenostrum5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"1 charged, 0 duplicate, 0 recorded, 0 rejected")
        self.assertEqual(self.charged_units("ehpc103"), charge_units(4, 12232, 1000))
        # The same report again is a replay: nothing more.
        r = self.cli("ingest", "--site", "marenostrum5", "-", input=p.stdout,
                     cert="collector-marenostrum5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.charged_units("ehpc103"), charge_units(4, 12232, 1000))
        self.assertEqual(self.psql("SELECT allot.check_ledger()"), "t")

    def test_unreadable_input_sends_nothing(self):
        # LEONARDO's verbatim sample has no Start or End: nothing to charge by.
        before = self.counts()
        (rc1, err1), (rc2, out, err2) = self.pipe("leonardo", "sacct/leonardo.psv",
                                                  "--timezone", "Europe/Rome")
        self.assertEqual(rc1, 1)
        self.assertIn("line 1: no Start (or End) field: add it to sacct's --format", err1)
        # ingest read an empty input: no batch, no record.
        self.assertEqual(rc2, 0, err2)
        self.assertEqual(self.counts(), before)
        p = self.parse("leonardo", None, "--timezone", "Europe/Rome",
                       input="JobID|Account|Partition|State|Start|ElapsedRaw|AllocTRES\n"
                             "1|a|p|RUNNING|2026-11-21T09:00:00|x|\n")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("line 2: ElapsedRaw: not a number: \"x\"", p.stderr)
        p = self.parse("leonardo", None, "--timezone", "Nowhere/Atlantis", input="")
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown time zone \"Nowhere/Atlantis\"", p.stderr)
        p = subprocess.run([collect_path(), "parse", "--format", "sacct", "-"], input="",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--site is required", p.stderr)
        p = subprocess.run([collect_path(), "parse", "--help"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: allot-collect parse", p.stdout)
