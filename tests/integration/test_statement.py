"""Signed statements end to end (Reports.GetStatement, `allot statement`, `allot
statement verify`), one scenario month worked out here.

Project acme-stmt (organization acme) has, in the standard world:
  - allocation A, every site, 500 GPU-hours, 2024-01-01 to 2028-01-01 (1461 days);
  - allocation X, LUMI only, 10 GPU-hours, 2026-11-01 to 2026-12-01: it ended at the
    start of December, nothing charged it, and allotd expires its 10 GPU-hours.
Both grants, the expiry, a deposit, a refund, an incident credit and the usage are
journaled now, so the period is the current month (from the month before when today
is one of the month's first three days) and its statement is "open". "December" and
"November" below are the period and the month before it, as on 2026-12-03. One
deposit of 100 GPU-hours is written into the journal backdated to 2026-11-15 (psql),
so November holds one entry, which allotd seals: November's statement is "sealed"
and its opening balance December's.

Usage in December (units: 3,600,000 a GPU-hour; charge = occupied GPUs x seconds x
1000 x weight / 1000):
  L1 leonardo boost_usr_prod (w 1000), alice, 12-01 08:00, 2 GPUs, 3600 s: 7,200,000
  U1 lumi small-g (w 500), bob, 12-01 10:00, 4 GPUs, 7200 s: 14,400,000
  M1 marenostrum5 acc (w 1000), alice, 12-02 09:00, 1 GPU, 1800 s: 1,800,000
  J1 jupiter booster (whole node of 4, w 1000), bob, 12-02 12:00, 3600 s: 14,400,000
charges 37,800,000 (10.5 GPU-h). L1 is sampled on two GPUs at 0, 60, 120 s (as in
test_gpu_metrics): 0.01 kWh, 0.016667 GPU-h at 0 %, mean utilization 41.67 %.
An incident at LEONARDO 08:30-09:00 on 12-01 credits L1 1800 of its 3600 s:
3,600,000. A refund of 1,800,000 and a deposit of 72,000,000 on A.
"""

import csv
import html.parser
import io
import json
import os
import time
import unittest
from datetime import datetime, timedelta, timezone

from harness import AllotTestCase, certs_dir, job

U = 3_600_000
SEAL_S = 1
WAIT_S = 60


def month_bounds():
    """The month before the scenario's, its first day, and the first day of the month
    after now: the scenario's days 1 and 2 are at least three days old (on the first
    days of a month the period is the previous month and this one)."""
    now = datetime.now(timezone.utc)
    first = (now - timedelta(days=3)).replace(day=1, hour=0, minute=0, second=0,
                                              microsecond=0)
    nxt = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) +
           timedelta(days=32)).replace(day=1)
    prev = (first - timedelta(days=1)).replace(day=1)
    return prev, first, nxt


PREV, FROM, TO = month_bounds()


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def day(n, hh, mm=0, ss=0):
    return iso(FROM.replace(day=n, hour=hh, minute=mm, second=ss))


def gpu_hours(units):
    """units / 3,600,000 to six decimals, as the statement writes it (exact here)."""
    q, r = divmod(abs(units) * 1_000_000, U)
    q += 1 if 2 * r >= U else 0
    s = f"{q // 1_000_000}.{q % 1_000_000:06d}"
    return "-" + s if units < 0 else s


def sample(gpu, t, util, energy_j):
    return {"jobId": "L1", "host": "lrdn0001", "gpu": str(gpu),
            "time": day(1, 8, t // 60, t % 60), "utilizationPct": util,
            "energyUj": str(energy_j * 1_000_000)}


GRANT_A, GRANT_X = 500 * U, 10 * U
DEPOSIT_NOV, DEPOSIT = 100 * U, 72_000_000
CHARGES = {"L1": 7_200_000, "U1": 14_400_000, "M1": 1_800_000, "J1": 14_400_000}
CHARGE = sum(CHARGES.values())
REFUND, CREDIT = 1_800_000, 3_600_000
EXPIRE = GRANT_X
OPENING = DEPOSIT_NOV
CLOSING = OPENING + GRANT_A + GRANT_X + DEPOSIT - CHARGE + REFUND + CREDIT - EXPIRE


class HtmlStatement(html.parser.HTMLParser):
    """The tables (id section-NAME: columns, rows), the <svg> charts, their bars'
    attributes, the embedded canonical text and signature of an HTML statement."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.svgs, self.rects, self.ids, self.tags = {}, [], [], {}, set()
        self._table = self._row = self._cell = self._id = None
        self._svg = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table" and a.get("id", "").startswith("section-"):
            self._table = {"columns": [], "rows": []}
            self.tables[a["id"][len("section-"):]] = self._table
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("th", "td") and self._row is not None:
            self._cell = []
        elif tag == "svg":
            self._svg = a.get("aria-label")
            self.svgs.append(self._svg)
        elif tag == "rect":
            self.rects.append((self._svg, a))
        if "id" in a and tag in ("pre", "code", "span"):
            self._id, self.ids[a["id"]] = a["id"], ""

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._table["columns"]:
                self._table["rows"].append(dict(zip(self._table["columns"], self._row)))
            else:
                self._table["columns"] = self._row
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag in ("pre", "code", "span"):
            self._id = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._id is not None:
            self.ids[self._id] += data


class Statement(AllotTestCase):
    config = {"audit_key": os.path.join(certs_dir(), "audit.key"), "audit_seal_s": SEAL_S,
              "allocation_expiry_s": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        call = cls.class_call
        call("Admin/CreateProject", {"name": "acme-stmt", "organization": "acme",
                                     "users": ["alice", "bob"]})
        cls.a = int(call("Admin/CreateAllocation", {
            "project": "acme-stmt", "site": "", "gpuHours": "500",
            "startsAt": "2024-01-01T00:00:00Z", "endsAt": "2028-01-01T00:00:00Z",
            "transferId": "grant:stmt:a"})["id"])
        cls.x = int(call("Admin/CreateAllocation", {
            "project": "acme-stmt", "site": "lumi", "gpuHours": "10",
            "startsAt": iso(PREV), "endsAt": iso(FROM), "transferId": "grant:stmt:x"})["id"])

    @classmethod
    def class_call(cls, method, body, cert="admin"):
        from harness import twirp
        st, _, parsed = twirp(cls.daemon.port, method, body, cert)
        assert st == 200, f"{method}: {st} {parsed!r}"
        return parsed

    def setUp(self):
        super().setUp()
        type(self).scenario_once(self)

    done = False

    @staticmethod
    def scenario_once(self):
        cls = type(self)
        if cls.done:
            return
        cls.done = True
        acct = self.psql(f"SELECT id FROM allot.accounts WHERE allocation_id = {cls.a}")
        prog = self.psql("SELECT a.id FROM allot.accounts a JOIN allot.programs p "
                         "ON p.id = a.program_id WHERE p.name = 'eurohpc-aif'")
        # The backdated deposit: one November entry in the journal.
        nov = iso(PREV.replace(day=15, hour=12))
        self.psql("INSERT INTO allot.transfers (transfer_id, kind, debit_account_id, "
                  f"credit_account_id, amount, body_hash, principal, reason, created_at) "
                  f"VALUES ('dep-nov', 'deposit', {prog}, {acct}, {DEPOSIT_NOV}, 'h', "
                  f"'CN=statement-test', 'November tranche', '{nov}')")
        self.ingest("leonardo", [job("L1", day(1, 8), "acme-stmt", "boost_usr_prod", 2, 16, 0,
                                     1, 3600, user="alice")], "s-l")
        self.ingest("lumi", [job("U1", day(1, 10), "acme-stmt", "small-g", 4, 32, 0, 1, 7200,
                                 user="bob")], "s-u")
        self.ingest("marenostrum5", [job("M1", day(2, 9), "acme-stmt", "acc", 1, 20, 0, 1,
                                         1800, user="alice")], "s-m")
        self.ingest("jupiter", [job("J1", day(2, 12), "acme-stmt", "booster", 4, 0, 0, 1, 3600,
                                    user="bob")], "s-j")
        samples = [sample(0, 0, 0, 1000), sample(1, 0, 50, 500), sample(0, 60, 0, 13000),
                   sample(1, 60, 50, 6500), sample(0, 120, 100, 25000),
                   sample(1, 120, 50, 12500)]
        self.call("Usage/IngestMetrics", {"site": "leonardo", "batchId": "s-m1",
                                          "samples": samples}, cert="collector-leonardo")
        self.call("Incidents/Declare", {
            "incidentId": "stmt-l-cooling", "site": "leonardo", "partition": "boost_usr_prod",
            "startsAt": day(1, 8, 30), "endsAt": day(1, 9), "reason": "cooling"})
        self.call("Allocations/Refund", {"transferId": "stmt-ref-1", "allocationId": cls.a,
                                         "amountUnits": str(REFUND), "reason": "node failed"})
        self.call("Allocations/Deposit", {"transferId": "stmt-dep-1", "allocationId": cls.a,
                                          "amountUnits": str(DEPOSIT), "reason": "tranche 2"})
        self.wait_for(f"SELECT count(*) FROM allot.transfers WHERE kind = 'expire' "
                      f"AND transfer_id = 'expire:{cls.x}'", "1")
        self.wait_for("SELECT count(*) FROM allot.seal_queue", "0")

    def wait_for(self, q, want):
        """Polls q until it answers want (allotd's timers: expiry and sealing)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.psql(q) == want:
                return
            time.sleep(0.05)
        self.fail(f"{q} did not answer {want} in {WAIT_S} s")

    # -- helpers

    def statement(self, *args, fmt="json", cert="admin", frm=FROM, to=TO):
        path = os.path.join(self.workdir, f"st-{time.monotonic_ns()}.{fmt}")
        r = self.cli("statement", "--project", "acme-stmt", "--from", iso(frm), "--to", iso(to),
                     "--format", fmt, "-o", path, *args, cert=cert)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            return path, f.read()

    @staticmethod
    def csv_sections(text):
        """{section: [row dicts]} and the signature of a CSV statement."""
        rows = list(csv.reader(io.StringIO(text)))
        sig = rows[-1]
        assert sig[0] == "signature", sig
        out, cols = {}, {}
        for r in rows[1:-1]:
            if r[0] == "columns":
                cols[r[1]] = r[2:]
                out[r[1]] = []
            else:
                out[r[0]].append(dict(zip(cols[r[0]], r[1:])))
        return out, sig[1]

    @staticmethod
    def json_sections(text):
        doc = json.loads(text)
        return {s["name"]: s["rows"] for s in doc["sections"]}, doc["signature"]

    def verify(self, path, key="audit"):
        return self.cli("statement", "verify", path, "--pubkey",
                        os.path.join(certs_dir(), key + ".pub"), cert=None)

    def assert_verifies_with_the_audit_key_only(self, path):
        r = self.verify(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("signature verifies", r.stdout)
        r = self.verify(path, key="other-audit")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("not the audit key's", r.stderr)

    def assert_changed_fails(self, path, text, changed, why):
        """Writes changed (not text) beside path: verify fails saying why."""
        self.assertNotEqual(changed, text)
        bad = path + ".changed"
        with open(bad, "w") as f:
            f.write(changed)
        r = self.verify(bad)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(why, r.stderr)

    # -- the figures

    def test_december_figures(self):
        _, text = self.statement()
        s, _ = self.json_sections(text)
        self.assertEqual(s["statement"], [{
            "project": "acme-stmt", "organization": "acme", "program": "eurohpc-aif",
            "from": iso(FROM), "to": iso(TO), "generated_at": s["statement"][0]["generated_at"],
            "by": "site,user,day,job"}])
        self.assertEqual(s["balance"], [{
            "opening_units": str(OPENING), "closing_units": str(CLOSING),
            "opening_gpu_hours": gpu_hours(OPENING), "closing_gpu_hours": gpu_hours(CLOSING)}])
        moves = {m["kind"]: (int(m["units"]), int(m["entries"])) for m in s["movement"]}
        self.assertEqual(moves, {
            "grant": (GRANT_A + GRANT_X, 2), "deposit": (DEPOSIT, 1), "move_in": (0, 0),
            "move_out": (0, 0), "adjust_in": (0, 0), "adjust_out": (0, 0),
            "charge": (CHARGE, 4), "refund": (REFUND, 1), "credit": (CREDIT, 1),
            "expire": (EXPIRE, 1)})
        self.assertEqual([m["gpu_hours"] for m in s["movement"] if m["kind"] == "charge"],
                         ["10.500000"])
        # Opening + movements = closing.
        self.assertEqual(OPENING + GRANT_A + GRANT_X + DEPOSIT - CHARGE + REFUND + CREDIT
                         - EXPIRE, int(s["balance"][0]["closing_units"]))
        # Only A overlaps December; X ended at its start.
        days = (TO - FROM).days
        plan = GRANT_A * days * 86400 // (1461 * 86400)
        self.assertEqual(s["allocation"], [{
            "id": str(self.a), "site": "*", "starts_at": "2024-01-01T00:00:00Z",
            "ends_at": "2028-01-01T00:00:00Z", "granted_units": str(GRANT_A),
            "opening_units": str(OPENING), "closing_units": str(CLOSING), "plan_units": str(plan)}])
        forecast = TO + timedelta(seconds=CLOSING * days * 86400 // CHARGE)
        self.assertEqual(s["plan"], [{
            "burn_units": str(CHARGE), "plan_units": str(plan), "burn_gpu_hours": "10.500000",
            "plan_gpu_hours": gpu_hours(plan),
            "burn_permille_of_plan": str(CHARGE * 1000 // plan),
            "forecast_exhaustion": iso(forecast)}])
        self.assertEqual(s["site"], [
            {"site": site, "units": str(u), "gpu_hours": gpu_hours(u)}
            for site, u in sorted([("leonardo", 7_200_000), ("lumi", 14_400_000),
                                   ("marenostrum5", 1_800_000), ("jupiter", 14_400_000)])])
        self.assertEqual(s["user"], [
            {"user": "alice", "units": "9000000", "gpu_hours": "2.500000"},
            {"user": "bob", "units": "28800000", "gpu_hours": "8.000000"}])
        self.assertEqual(s["day"], [
            {"day": FROM.strftime("%Y-%m-01"), "units": "21600000", "gpu_hours": "6.000000"},
            {"day": FROM.strftime("%Y-%m-02"), "units": "16200000", "gpu_hours": "4.500000"}])
        jobs = s["job"]
        self.assertEqual([(j["site"], j["job_id"], j["user"], j["gpus"], j["elapsed_s"],
                           j["charged_units"]) for j in jobs], [
            ("leonardo", "L1", "alice", "2", "3600", "7200000"),
            ("lumi", "U1", "bob", "4", "7200", "14400000"),
            ("marenostrum5", "M1", "alice", "1", "1800", "1800000"),
            ("jupiter", "J1", "bob", "4", "3600", "14400000")])
        self.assertEqual({k: jobs[0][k] for k in ("start_time", "gpu_hours", "native",
                                                  "native_unit", "mean_utilization_pct",
                                                  "zero_utilization_gpu_hours", "energy_kwh")},
                         {"start_time": day(1, 8)[:-1] + ".000000Z", "gpu_hours": "2.000000",
                          "native": "16.000", "native_unit": "core-h",
                          "mean_utilization_pct": "41.67",
                          "zero_utilization_gpu_hours": "0.016667", "energy_kwh": "0.010000"})
        self.assertEqual((jobs[1]["mean_utilization_pct"], jobs[1]["energy_kwh"]), ("-", "-"))
        self.assertEqual(s["jobs"], [{"page_jobs": "4", "next_job_cursor": ""}])
        prov = s["provenance"][0]
        self.assertEqual(prov["status"], "open")
        # Every December entry of the project: 2 grants, a deposit, 4 charges, a refund,
        # a credit, an expiry; all sealed (the queue is empty).
        self.assertEqual((prov["entries"], prov["unsealed_entries"]), ("10", "0"))
        # The blocks of the period's first and last entries (lowest and highest id).
        accts = f"(SELECT id FROM allot.accounts WHERE allocation_id IN ({self.a}, {self.x}))"
        ids = (f"SELECT {{}}(t.id) FROM allot.transfers t WHERE t.created_at >= '{iso(FROM)}' "
               f"AND t.created_at < '{iso(TO)}' AND (t.debit_account_id IN {accts} OR "
               f"t.credit_account_id IN {accts})")
        first, last = (self.psql(f"SELECT number FROM allot.blocks WHERE entries @> "
                                 f"ARRAY[({ids.format(f)})]") for f in ("min", "max"))
        self.assertEqual((prov["first_block"], prov["last_block"]), (first, last))
        self.assertEqual(prov["last_block_hash"], self.psql(
            f"SELECT encode(hash, 'hex') FROM allot.blocks WHERE number = {last}"))

    def test_november_sealed_and_its_closing_is_decembers_opening(self):
        _, text = self.statement(frm=PREV, to=FROM)
        s, _ = self.json_sections(text)
        self.assertEqual(s["balance"][0]["opening_units"], "0")
        self.assertEqual(s["balance"][0]["closing_units"], str(OPENING))
        self.assertEqual([(m["kind"], m["units"]) for m in s["movement"] if m["units"] != "0"],
                         [("deposit", str(DEPOSIT_NOV))])
        prov = s["provenance"][0]
        block = self.psql("SELECT b.number FROM allot.blocks b, allot.transfers t "
                          "WHERE t.transfer_id = 'dep-nov' AND t.id = ANY (b.entries)")
        self.assertEqual((prov["status"], prov["entries"], prov["unsealed_entries"],
                          prov["first_block"], prov["last_block"]),
                         ("sealed", "1", "0", block, block))
        # X is November's: its plan is all of its grant (30 of 30 days).
        self.assertEqual([(a["id"], a["plan_units"]) for a in s["allocation"]
                          if a["id"] == str(self.x)], [(str(self.x), str(GRANT_X))])

    def test_csv_and_json_carry_the_same_figures_and_signature(self):
        _, text = self.statement(fmt="json")
        j, jsig = self.json_sections(text)
        _, text = self.statement(fmt="csv")
        c, csig = self.csv_sections(text)
        for s in (j, c):
            s.pop("statement")  # generated_at differs between the two calls
        self.assertEqual(j, c)
        self.assertEqual(len(jsig), 128)
        self.assertEqual(len(csig), 128)

    def test_by_and_job_pages(self):
        _, text = self.statement("--by", "job", "--job-limit", "3")
        s, _ = self.json_sections(text)
        self.assertNotIn("site", s)
        self.assertNotIn("day", s)
        self.assertEqual([x["job_id"] for x in s["job"]], ["L1", "U1", "M1"])
        cursor = s["jobs"][0]["next_job_cursor"]
        self.assertNotEqual(cursor, "")
        _, text = self.statement("--by", "job", "--job-limit", "3", "--job-cursor", cursor)
        s, _ = self.json_sections(text)
        self.assertEqual([x["job_id"] for x in s["job"]], ["J1"])
        self.assertEqual(s["jobs"], [{"page_jobs": "1", "next_job_cursor": ""}])

    # -- the signature

    def test_signature_verifies_and_fails_on_a_changed_byte(self):
        for fmt in ("csv", "json"):
            path, text = self.statement(fmt=fmt)
            self.assert_verifies_with_the_audit_key_only(path)
            self.assert_changed_fails(path, text, text.replace(str(CHARGE), str(CHARGE + 1), 1),
                                      "statementHash does not match" if fmt == "json"
                                      else "not the audit key's")
        # Every single byte of a CSV statement's figures matters.
        path, text = self.statement(fmt="csv", *("--by", "site"))
        body = text[:text.rindex("signature,")]
        for i in range(0, len(body), max(1, len(body) // 40)):
            if body[i] == "\n":
                continue
            flipped = body[:i] + ("x" if body[i] != "x" else "y") + body[i + 1:] + \
                text[len(body):]
            bad = path + ".flip"
            with open(bad, "w") as f:
                f.write(flipped)
            r = self.verify(bad)
            self.assertEqual(r.returncode, 1, f"byte {i} changed and it verified")

    def test_html_shows_the_csv_figures_charts_and_verifies(self):
        path, text = self.statement(fmt="html")
        h = HtmlStatement(text)
        self.assertNotIn("script", h.tags)
        self.assertNotIn("http://", text.replace('xmlns="http://www.w3.org/2000/svg"', ""))
        self.assertNotIn("https://", text)
        _, ctext = self.statement(fmt="csv")
        c, _ = self.csv_sections(ctext)
        tables = {name: t["rows"] for name, t in h.tables.items()}
        for s in (tables, c):
            s.pop("statement")  # generated_at differs between the two calls
        self.assertEqual(tables, c)
        # The charts: the burn curve, use by site and by user, the efficiency histogram.
        self.assertEqual(h.svgs, ["burn curve", "use by site", "use by user",
                                  "efficiency histogram"])
        for chart, section in (("use by site", "site"), ("use by user", "user")):
            bars = [(int(a["data-units"]), int(a["width"])) for svg, a in h.rects
                    if svg == chart]
            self.assertEqual([u for u, _ in bars], [int(r["units"]) for r in c[section]])
            top = max(u for u, _ in bars)
            self.assertEqual([w for _, w in bars], [round(u * 400 / top) for u, _ in bars])
        # L1 (41.67 %) in the 40-50 % bin; the three jobs without samples counted apart.
        hist = [int(a["data-jobs"]) for svg, a in h.rects if svg == "efficiency histogram"]
        self.assertEqual(hist, [0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
        self.assertEqual(h.ids["jobs-without-metrics"],
                         str(sum(j["mean_utilization_pct"] == "-" for j in c["job"])))
        # The embedded text is the canonical text; the file verifies, a changed byte not.
        self.assertTrue(h.ids["allot-canonical"].startswith("allot statement\t1\n"))
        self.assertEqual(len(h.ids["allot-signature"]), 128)
        self.assert_verifies_with_the_audit_key_only(path)
        cell = f"<td>{CHARGE}</td>"
        self.assertIn(cell, text)
        for changed in (text.replace(cell, f"<td>{CHARGE + 1}</td>", 1),
                        text.replace('width="400"', 'width="399"', 1),
                        text.replace(f"\t{CHARGE}\t", f"\t{CHARGE + 1}\t", 1)):
            self.assert_changed_fails(path, text, changed,
                                      "not what its embedded statement renders to")

    # -- the funder's statement

    def test_program_statement(self):
        path = os.path.join(self.workdir, "program.json")
        r = self.cli("statement", "--program", "eurohpc-aif", "--from", iso(FROM), "--to",
                     iso(TO), "--format", "json", "-o", path, cert="auditor")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            s, _ = self.json_sections(f.read())
        self.assertEqual(s["statement"][0]["program"], "eurohpc-aif")
        rows = {p["project"]: p for p in s["project"]}
        self.assertEqual(sorted(rows), ["acme-llm", "acme-stmt", "acme-vision"])
        self.assertEqual(rows["acme-stmt"], {
            "project": "acme-stmt", "organization": "acme", "opening_units": str(OPENING),
            "granted_units": str(GRANT_A + GRANT_X + DEPOSIT), "charged_units": str(CHARGE),
            "returned_units": str(REFUND + CREDIT), "closing_units": str(CLOSING),
            "used_units": str(CHARGE), "used_gpu_hours": "10.500000",
            # L1 only: 60 GPU-seconds at 0 % of 240 sampled (2 GPUs, 2 intervals of 60 s).
            "zero_utilization_gpu_hours": "0.016667", "zero_utilization_permille": "250",
            "mean_utilization_pct": "41.67"})
        self.assertEqual(rows["acme-vision"], {
            "project": "acme-vision", "organization": "acme", "opening_units": "0",
            "granted_units": str(1000 * U), "charged_units": "0", "returned_units": "0",
            "closing_units": str(1000 * U), "used_units": "0", "used_gpu_hours": "0.000000",
            "zero_utilization_gpu_hours": "0.000000", "zero_utilization_permille": "-",
            "mean_utilization_pct": "-"})
        self.assertEqual(s["provenance"][0]["status"], "open")
        r = self.verify(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        # In HTML: the projects' table, the (empty) charts, and it verifies.
        r = self.cli("statement", "--program", "eurohpc-aif", "--from", iso(FROM), "--to",
                     iso(TO), "--format", "html", "-o", path + ".html", cert="auditor")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path + ".html") as f:
            h = HtmlStatement(f.read())
        self.assertEqual(sorted(p["project"] for p in h.tables["project"]["rows"]),
                         ["acme-llm", "acme-stmt", "acme-vision"])
        self.assertEqual(len(h.svgs), 4)
        r = self.verify(path + ".html")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cli("statement", "--program", "eurohpc-aif", "--from", iso(FROM), "--to",
                     iso(TO), cert="project-acme-vision")
        self.assertEqual(r.returncode, 1)
        self.assertIn("permission_denied", r.stderr)
        self.assertTwirpError(self.twirp("Reports/GetStatement", {
            "program": "eurohpc-aif", "project": "acme-stmt", "from": iso(FROM), "to": iso(TO)}),
            "invalid_argument", "not both")
        self.assertTwirpError(self.twirp("Reports/GetStatement", {
            "program": "nope", "from": iso(FROM), "to": iso(TO)}),
            "not_found", 'program "nope" does not exist')

    # -- roles and bad input

    def test_roles(self):
        r = self.cli("statement", "--project", "acme-stmt", "--from", iso(FROM), "--to",
                     iso(TO), cert="project-acme-vision")
        self.assertEqual(r.returncode, 1)
        self.assertIn("permission_denied", r.stderr)
        self.statement(cert="auditor")
        r = self.cli("statement", "--project", "acme-vision", "--from", iso(FROM), "--to",
                     iso(TO), cert="project-acme-vision")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("allot statement,1\n"), r.stdout[:80])
        r = self.cli("statement", "--project", "acme-stmt", "--from", iso(FROM), "--to",
                     iso(TO), cert="collector-leonardo")
        self.assertEqual(r.returncode, 1)
        self.assertIn("permission_denied", r.stderr)

    def test_bad_input(self):
        cases = [
            ({"project": "nope", "from": iso(FROM), "to": iso(TO)}, "not_found",
             'project "nope" does not exist'),
            ({"project": "acme-stmt", "from": iso(TO), "to": iso(FROM)}, "invalid_argument",
             "must be before to"),
            ({"project": "acme-stmt", "from": day(1, 8), "to": iso(TO)}, "invalid_argument",
             "whole UTC days"),
            ({"project": "acme-stmt", "from": iso(FROM), "to": iso(TO), "by": ["week"]},
             "invalid_argument", "by must be site, user, day or job"),
            ({"project": "acme-stmt", "from": "yesterday-ish", "to": iso(TO)},
             "invalid_argument", "is not a date"),
            ({"project": "acme-stmt", "from": iso(FROM), "to": iso(TO), "jobCursor": "zz"},
             "invalid_argument", "job_cursor"),
        ]
        before = self.counts()
        for body, code, msg in cases:
            self.assertTwirpError(self.twirp("Reports/GetStatement", body), code, msg)
        self.assertEqual(self.counts(), before)
        r = self.cli("statement", "--project", "acme-stmt", "--from", iso(TO), "--to", iso(FROM))
        self.assertEqual(r.returncode, 1)
        self.assertIn("must be before to", r.stderr)
        r = self.cli("statement", "--project", "acme-stmt", "--from", iso(FROM))
        self.assertEqual(r.returncode, 2)
        self.assertIn("--from and --to are required", r.stderr)


class StatementWithoutKey(AllotTestCase):
    """An allotd without the audit key signs nothing: failed_precondition."""

    def test_refused(self):
        self.assertTwirpError(self.twirp("Reports/GetStatement", {
            "project": "acme-vision", "from": iso(FROM), "to": iso(TO)}),
            "failed_precondition", "holds no audit key")


if __name__ == "__main__":
    unittest.main()
