"""Completeness and reconciliation through allotd and the CLI.

For each site: a generated set of jobs (running jobs reported twice, steps, a
rejected record) ingested through allotd; the site's own budget tool output for
the same jobs, generated in the site's format (saldo -b, bsc_acct, jutil JSON,
lumi-allocations JSON) with the site's unit and printing precision; `allot
reconcile` agrees (exit 0) once every job is in, and shows the account and the
figures of a job held back (exit 1); `allot completeness` shows the days, a day
with nothing as a gap. Figures are worked out here from the resources' rules.
"""

import json
import random
import re
import threading

from harness import AllotTestCase, RESOURCES, TwoDaemonCase, job, twirp

DAYS = ["2026-11-20", "2026-11-21", "2026-11-23"]  # the 22nd: nothing reported
SINCE, UNTIL = "2026-11-19", "2026-11-24"


def ceil_div(a, b):
    return -(-a // b)


def occupied(res, gpus, cpus, mem_mb, nodes):
    """The occupied GPUs of billing.c's rule for resource res (a RESOURCES row)."""
    _, _, _, gpn, rule, cores_per_gpu, tpc, mem_per_gpu = res[:8]
    if rule == "WHOLE_NODE":
        return nodes * gpn
    cores = ceil_div(cpus, tpc or 1)
    return max(gpus, ceil_div(cores, cores_per_gpu),
               ceil_div(mem_mb, mem_per_gpu) if mem_per_gpu > 0 else 0)


class Jobs:
    """Generated jobs of one site: each with its final record and its figures."""

    def __init__(self, site, accounts, seed, n=24):
        rng = random.Random(seed)
        self.site = site
        self.resources = [r for r in RESOURCES if r[0] == site]
        self.jobs = []
        for i in range(n):
            res = self.resources[i % len(self.resources)]
            gpn = res[3]
            if res[4] == "WHOLE_NODE":
                nodes = rng.randint(1, 2)
                gpus, cpus = nodes * gpn, 0
            else:
                nodes = 1
                gpus = rng.randint(1, gpn)
                cpus = gpus * res[5] * (res[6] or 1) // rng.choice((1, 2))
            elapsed = rng.randint(600, 6 * 3600)
            day = DAYS[i % len(DAYS)]
            start = f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
            occ = occupied(res, gpus, cpus, 1000, nodes)
            self.jobs.append({
                "id": f"{site[:3]}{9000 + i}", "account": accounts[i % len(accounts)],
                "day": day, "record": job(f"{site[:3]}{9000 + i}", start,
                                          accounts[i % len(accounts)], res[1], gpus, cpus,
                                          1000, nodes, elapsed),
                "gpu_ms": occ * elapsed * 1000,
                "native_milli": occ * elapsed * res[9] // 3600,
            })
        # The largest job: the one a collector will lose.
        self.lost = max(self.jobs, key=lambda j: j["native_milli"])

    def batches(self, without=None):
        """Two batches: running records (half the elapsed) of every other job, steps and
        a record of an unknown account; then every job's final record."""
        first, second = [], []
        for k, j in enumerate(self.jobs):
            if j is without:
                continue
            r = j["record"]
            if k % 2 == 0:
                first.append(dict(r, elapsedS=str(int(r["elapsedS"]) // 2), state="RUNNING"))
            first.append(dict(r, step="batch"))
            second.append(r)
        first.append(dict(self.jobs[0]["record"], jobId="lost-account", account="nobody-here"))
        return first, second

    def native_of(self, account, without=None):
        return sum(j["native_milli"] for j in self.jobs
                   if j["account"] == account and j is not without)

    def day(self, day, without=None):
        js = [j for j in self.jobs if j["day"] == day and j is not without]
        return len(js), sum(j["gpu_ms"] for j in js), sum(j["native_milli"] for j in js)


def half_up(milli, per):
    """milli thousandths as a count of units of `per` thousandths, half up."""
    return (milli + per // 2) // per


def books_saldo(used):
    lines = ["-" * 131,
             "account          start         end         total        localCluster   "
             "totConsumed     totConsumed     monthTotal     monthConsumed",
             "                                       (local h)   Consumed(local h)     "
             "(local h)               %      (local h)         (local h)",
             "-" * 131]
    for account, milli in used.items():
        h = half_up(milli, 1000)
        lines.append(f"{account:<13} 20260101    20271231        500000      {h:>14}"
                     f"  {h:>12}  {h * 100 / 500000:>14.1f}  {0:>13}  {0:>16}")
    return "\n".join(lines) + "\n"


def books_bsc_acct(used):
    out = []
    for account, milli in used.items():
        kh = half_up(milli, 10000)  # hundredths of khours
        out += ["-" * 63, "CPU GROUP BUDGET:",
                f"Project: Generated allocation for {account} ({account})",
                "Project's Expiration Date:     2027-12-10", "",
                "Machine:                    Total (classA,classB)[khours]:          "
                "Used [khours]:", "",
                "Marenostrum5 GPP                                 undefined                    0.00",
                f"Marenostrum5 ACC                       5760.00 (0.00,0.00)            "
                f"{kh // 100}.{kh % 100:02d} (05%)",
                "-" * 63, "", "USER CONSUMED CPU:",
                "User:                                             Machine:          Used [khours]:",
                "",
                f"bsc900001 (Someone)                           Marenostrum5 ACC      "
                f"{kh // 100}.{kh % 100:02d}(100%)"]
    out += ["-" * 63, "", "Accounting updated on 2026-11-30 11:30:23"]
    return "\n".join(out) + "\n"


def books_jutil(used):
    return json.dumps([{
        "acct-mode": "fixed", "coreh-quota-total": "1008000", "project": account.upper(),
        "coreh-consumed-total": str(half_up(milli, 1000)), "budget-account": account,
        "acct-period-start": "2026-09-01", "acct-period-end": "2027-02-28",
        "system": "jupiter"} for account, milli in used.items()], indent=2)


def books_lumi(used):
    return json.dumps([{
        "name": account, "title": "generated",
        "billing": {"cpu_hours": {"alloc": 1000, "used": 0},
                    "gpu_hours": {"alloc": 100000, "used": half_up(milli, 10) / 100}}}
        for account, milli in used.items()], indent=2)


# site -> (books writer, the books' figure as Allot sees it: milli rounded as printed)
BOOKS = {
    "leonardo": (books_saldo, lambda m: half_up(m, 1000) * 1000),
    "marenostrum5": (books_bsc_acct, lambda m: half_up(m, 10000) * 10000),
    "jupiter": (books_jutil, lambda m: half_up(m, 1000) * 1000),
    "lumi": (books_lumi, lambda m: half_up(m, 10) * 10),
}


def milli_text(m):
    return f"{'-' if m < 0 else ''}{abs(m) // 1000}.{abs(m) % 1000:03d}"


class Reconcile(AllotTestCase):

    # The sites' own account names (upper case on LEONARDO, as saldo prints them).
    SITE_ACCOUNTS = {
        "leonardo": ["AIFAC_P02_548", "AIFAC_P02_549"],
        "marenostrum5": ["ehpc103", "ehpc104"],
        "jupiter": ["e-dev-2026d09-128", "e-dev-2026d09-129"],
        "lumi": ["project_465000123", "project_465000124"],
    }

    def accounts(self, site):
        """Two projects, each mapped from one of the site's own account names, which
        the jobs carry and the books list."""
        names = self.SITE_ACCOUNTS[site]
        for i, n in enumerate(names):
            project = f"rec-{site[:4]}-{'ab'[i]}"
            self.create_project(project, allocations=(("", (), 100000),))
            self.call("Admin/AddSiteAccount", {"project": project, "site": site, "account": n})
        return names

    def write(self, name, text):
        path = f"{self.workdir}/{name}"
        with open(path, "w") as f:
            f.write(text)
        return path

    def reconcile(self, site, path, *extra):
        return self.cli("reconcile", "--site", site, "--until", UNTIL, *extra, path)

    def check_site(self, site, seed):
        accounts = self.accounts(site)
        jobs = Jobs(site, accounts, seed)
        unit = "GPU-h" if site == "lumi" else "core-h"
        writer, as_printed = BOOKS[site]
        used = {a: jobs.native_of(a) for a in accounts}
        books = self.write(f"{site}-books", writer(used))

        # Every job but the largest: the books show it, Allot does not.
        first, second = jobs.batches(without=jobs.lost)
        r1 = self.ingest(site, first, f"{site}-rec-1")
        self.assertEqual(r1["rejected"], 1, r1)
        self.ingest(site, second, f"{site}-rec-2")
        r = self.reconcile(site, books, "--tolerance", "0")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lost = jobs.lost["account"]
        allot = jobs.native_of(lost, without=jobs.lost)
        shown = as_printed(used[lost])
        row = re.search(rf"(?m)^{lost}\s+{re.escape(unit)}\s+(\S+)\s+(\S+)\s+(\S+)\s.*DIFFERS$",
                        r.stdout)
        self.assertIsNotNone(row, r.stdout)
        self.assertEqual(row.groups(), (milli_text(shown), milli_text(allot),
                                        milli_text(allot - shown)), r.stdout)
        other = [a for a in accounts if a != lost][0]
        self.assertRegex(r.stdout, rf"(?m)^{other}\s.*agrees$")
        self.assertIn("1 of 2 accounts of the books differ beyond 0.000 %", r.stdout)

        # The day the lost job started is short by it; the 22nd is a gap.
        out = self.cli("completeness", "--site", site, "--since", SINCE, "--until", UNTIL)
        self.assertEqual(out.returncode, 0, out.stderr)
        for day in DAYS:
            n, gpu_ms, native = jobs.day(day, without=jobs.lost)
            gpu_h = f"{(gpu_ms + 18000) // 36000 // 100}.{(gpu_ms + 18000) // 36000 % 100:02d}"
            self.assertRegex(out.stdout, rf"(?m)^{day}\s+{n}\s+{re.escape(gpu_h)}\s+"
                                         rf"{re.escape(milli_text(native))} {re.escape(unit)}$")
        for gap in ("2026-11-19", "2026-11-22", "2026-11-24"):
            self.assertRegex(out.stdout, rf"(?m)^{gap}\s+-\s+-\s+-  gap: nothing reported$")
        self.assertIn("3 of 6 days with nothing reported", out.stdout)

        # The collector finds the lost job: the books agree, to the printed precision.
        self.ingest(site, [jobs.lost["record"]], f"{site}-rec-3")
        r = self.reconcile(site, books, "--tolerance", "0")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("all 2 accounts of the books agree within 0.000 %", r.stdout)
        got = self.call("Usage/GetSiteTotals", {"site": site, "since": SINCE, "until": UNTIL},
                        f"collector-{site}")
        self.assertEqual(
            {a["account"]: (a["nativeUnit"], int(a["nativeMilli"]), int(a["jobs"]))
             for a in got["accounts"]},
            {a: (unit, used[a], sum(1 for j in jobs.jobs if j["account"] == a))
             for a in accounts})
        days = self.call("Usage/GetCompleteness", {"site": site, "since": SINCE, "until": UNTIL},
                         "auditor")["days"]
        self.assertEqual([d["day"] for d in days],
                         ["2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23",
                          "2026-11-24"])
        for d in days:
            n, gpu_ms, native = jobs.day(d["day"])
            self.assertEqual((int(d["jobs"]), int(d["gpuMs"])), (n, gpu_ms), d)
            self.assertEqual(d["native"], [{"unit": unit, "milli": str(native)}] if n else [])
        self.assertEqual(self.psql("SELECT allot.check_site_days()"), "t")
        # --format json prints the answers as they came.
        out = self.cli("--format", "json", "completeness", "--site", site, "--since", SINCE,
                       "--until", UNTIL, cert="auditor")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["days"], days)
        out = self.cli("--format", "json", "reconcile", "--site", site, "--until", UNTIL,
                       books, cert=f"collector-{site}")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(sorted(a["account"] for a in json.loads(out.stdout)["accounts"]),
                         sorted(accounts))

    def test_leonardo_saldo(self):
        self.check_site("leonardo", 1)

    def test_marenostrum5_bsc_acct(self):
        self.check_site("marenostrum5", 2)

    def test_jupiter_jutil(self):
        self.check_site("jupiter", 3)

    def test_lumi_allocations(self):
        self.check_site("lumi", 4)

    def test_roles(self):
        body = {"site": "leonardo", "since": SINCE, "until": UNTIL}
        for method in ("Usage/GetCompleteness", "Usage/GetSiteTotals"):
            for cert in ("admin", "auditor", "collector-leonardo"):
                with self.subTest(method=method, cert=cert):
                    st, _, _ = self.twirp(method, body, cert)
                    self.assertEqual(st, 200)
            for cert in ("collector-lumi", "scheduler-leonardo", "project-acme-llm"):
                with self.subTest(method=method, cert=cert):
                    self.assertTwirpError(self.twirp(method, body, cert), "permission_denied")

    def test_bad_input(self):
        for body, code, msg in (
                ({"site": "nowhere"}, "not_found", "nowhere"),
                ({"site": "leonardo", "since": "2026-11-24", "until": "2026-11-23"},
                 "invalid_argument", "since 2026-11-24 is after until 2026-11-23"),
                ({"site": "leonardo", "since": "yesterday"}, "invalid_argument", "yesterday"),
                ({"site": "leonardo", "since": "1900-01-01", "until": "2026-11-23"},
                 "invalid_argument", "at most 36600")):
            with self.subTest(body=body):
                self.assertTwirpError(self.twirp("Usage/GetCompleteness", body), code, msg)
        before = self.counts()
        bad = self.write("bad-saldo", "account start end\nProj_A 20110323 20300323 5 x 1 1 1 1\n")
        r = self.reconcile("leonardo", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not saldo output: line 2: column 5 is not a number: \"x\"", r.stderr)
        r = self.reconcile("lumi", self.write("bad-lumi", "{\"name\": \"p\",\n \"billing\": "))
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"not lumi-allocations output: line 2, column \d+")
        r = self.reconcile("leonardo", f"{self.workdir}/no-such-file")
        self.assertEqual(r.returncode, 2)
        self.assertIn("could not open", r.stderr)
        for args, msg in ((["reconcile", "--site", "leonardo"], "BOOKS_FILE is required"),
                          (["reconcile", "--site", "leonardo", "--tolerance", "1%", "f"],
                           "--tolerance: \"1%\" is not a percentage"),
                          (["reconcile", "--site", "karolina", "f"], "give --books-format"),
                          (["completeness"], "--site is required"),
                          (["completeness", "--site", "lumi", "--since", "11/20"],
                           "is not a day")):
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(msg, r.stderr)
        self.assertEqual(self.counts(), before)


class ConcurrentDays(TwoDaemonCase):
    """Two allotd taking batches of one site at once, each batch storing new jobs on one
    day and re-reporting stored jobs of the other: the two orders in which the days'
    rows would be locked cross, which the per-site lock of site_days' triggers keeps
    from deadlocking. Every batch commits and the days equal the jobs."""

    def test_cross_days(self):
        self.create_project("rec-conc", allocations=(("", (), 100000),))
        day = {"A": "2026-11-20T06:00:00Z", "B": "2026-11-21T06:00:00Z"}

        def rec(jid, d, elapsed):
            return job(jid, day[d], "rec-conc", "boost_usr_prod", 1, 8, 1000, 1, elapsed,
                       state="RUNNING")

        stored = {d: [f"s{d}{i}" for i in range(50)] for d in day}
        self.ingest("leonardo", [rec(j, d, 1000) for d in day for j in stored[d]], "conc-0")
        errors = []
        elapsed = {}
        for k in range(1, 9):
            barrier = threading.Barrier(2)
            # Daemon 1: new jobs of day A, stored jobs of day B; daemon 2 the reverse.
            sends = []
            for port, new_day, old_day in ((self.daemon.port, "A", "B"),
                                           (self.other.port, "B", "A")):
                el = 1000 + 100 * k
                elapsed[old_day] = el
                recs = [rec(f"n{new_day}{k}-{i}", new_day, 600) for i in range(50)]
                recs += [rec(j, old_day, el) for j in stored[old_day]]
                sends.append((port, {"site": "leonardo", "batchId": f"conc-{k}-{new_day}",
                                     "records": recs}))

            def send(port, body):
                barrier.wait()
                st, _, parsed = twirp(port, "Usage/Ingest", body, "collector-leonardo")
                if st != 200 or parsed.get("charged") != 100:
                    errors.append((st, parsed))

            threads = [threading.Thread(target=send, args=a) for a in sends]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        days = self.call("Usage/GetCompleteness", {"site": "leonardo", "since": "2026-11-20",
                                                   "until": "2026-11-21"})["days"]
        # Each day: 50 stored jobs at their last elapsed, 8 x 50 new jobs of 600 s.
        for d, got in zip("AB", days):
            self.assertEqual((int(got["jobs"]), int(got["gpuMs"])),
                             (450, (50 * elapsed[d] + 400 * 600) * 1000), got)
        self.assertEqual(self.psql("SELECT allot.check_site_days()"), "t")
