"""Twirp conformance, authentication and roles, against a real allotd over TLS."""

import http.client
import json
import socket
import unittest

from harness import (AllotTestCase, SCHEMA, TWIRP_STATUS, client_context, https_request, job,
                     make_cert, subject, twirp_path)

START = "2026-11-21T08:00:00Z"


class TwirpConformance(AllotTestCase):

    def test_get_is_bad_route(self):
        st, hdrs, body = https_request(self.port, "GET", twirp_path("Admin/ListSites"))
        self.assertTwirpError((st, hdrs, json.loads(body)), "bad_route", "POST")
        self.assertEqual(json.loads(body)["meta"]["twirp_invalid_route"],
                         "GET /twirp/allot.v1.Admin/ListSites")
        st, hdrs, body = https_request(self.port, "PUT", twirp_path("Admin/ListSites"), b"{}",
                                       {"Content-Type": "application/json"})
        self.assertTwirpError((st, hdrs, json.loads(body)), "bad_route", "POST")
        self.assertEqual(json.loads(body)["meta"]["twirp_invalid_route"],
                         "PUT /twirp/allot.v1.Admin/ListSites")

    def test_unknown_path_is_bad_route(self):
        for path in ("/twirp/allot.v1.Admin/NoSuchMethod", "/twirp/allot.v1.Nope/ListSites",
                     "/twirp/allot.v1.Admin/", "/elsewhere"):
            with self.subTest(path=path):
                st, hdrs, body = https_request(self.port, "POST", path, b"{}",
                                               {"Content-Type": "application/json"})
                self.assertTwirpError((st, hdrs, json.loads(body)), "bad_route", path)

    def test_text_plain_is_bad_route(self):
        for ctype in ("text/plain", "application/xml", "application/jsonx"):
            with self.subTest(content_type=ctype):
                self.assertTwirpError(self.twirp("Admin/ListSites", b"{}", content_type=ctype),
                                      "bad_route", "Content-Type")

    def test_garbage_is_malformed(self):
        self.assertTwirpError(self.twirp("Admin/CreateSite", b"{not json"), "malformed",
                              "invalid JSON")
        self.assertTwirpError(self.twirp("Admin/CreateSite", b"[1, 2]"), "malformed",
                              "expected a JSON object")
        self.assertTwirpError(self.twirp("Admin/CreateSite", b'{"name": 5}'), "malformed",
                              "name")
        # A length-delimited field whose length runs past the end of the body.
        self.assertTwirpError(self.twirp("Admin/CreateSite", b"\x0a\x7fshort",
                                         content_type="application/protobuf"), "malformed")
        # A string that is not UTF-8, which proto3 forbids and JSON cannot carry.
        self.assertTwirpError(self.twirp("Admin/CreateSite", b"\x0a\x02\xff\xfe",
                                         content_type="application/protobuf"),
                              "malformed", "UTF-8")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.sites"), str(len(SCHEMA_SITES)))

    def test_each_error_code_shape(self):
        # One call for every code the server produces; assertTwirpError checks the
        # status Twirp fixes for the code and the {"code","msg","meta"} body.
        self.assertTwirpError(self.twirp("Admin/CreateSite", {"name": "leonardo"}),
                              "already_exists", 'site "leonardo" already exists')
        self.assertTwirpError(self.twirp("Admin/CreateOrganization",
                                         {"name": "x", "program": "nope"}),
                              "not_found", 'program "nope" does not exist')
        self.assertTwirpError(self.twirp("Admin/CreateSite", {"name": "Not Valid"}),
                              "invalid_argument", "site name")
        self.assertTwirpError(self.twirp("Admin/CreateSite", {"name": "x"}, cert="auditor"),
                              "permission_denied", "auditor")
        self.assertTwirpError(self.twirp("Admin/ListSites", {}, cert=None),
                              "unauthenticated", "no client certificate")
        self.assertEqual(TWIRP_STATUS["unavailable"], 503)  # exercised in test_slice_lifecycle

    def test_protobuf_and_json_agree(self):
        method = "Ledger/GetBalance"
        self.ingest("leonardo", [job(1, START, "acme-vision", "boost_usr_prod", 1, 8, 1000,
                                     1, 3600)], "agree-1")
        in_json = self.call(method, {"project": "acme-vision"})
        in_pb = self.call(method, {"project": "acme-vision"},
                          content_type="application/protobuf")
        self.assertEqual(SCHEMA.normalize(SCHEMA.rpcs[method][1], in_json),
                         SCHEMA.normalize(SCHEMA.rpcs[method][1], in_pb))
        self.assertEqual(in_json["total"]["chargedUnits"], str(3600 * 1000))
        lists_json = self.call("Admin/ListResources", {"site": "lumi"})
        lists_pb = self.call("Admin/ListResources", {"site": "lumi"},
                             content_type="application/protobuf")
        self.assertEqual(SCHEMA.normalize(SCHEMA.rpcs["Admin/ListResources"][1], lists_json),
                         SCHEMA.normalize(SCHEMA.rpcs["Admin/ListResources"][1], lists_pb))
        self.assertEqual(len(lists_json["resources"]), 2)

    def test_healthz_and_metrics(self):
        st, body = self.daemon.healthz()
        self.assertEqual((st, body), (200, b"ok\n"))
        self.call("Admin/ListSites", {})
        st, _, text = https_request(self.port, "GET", "/metrics", cert=None)
        self.assertEqual(st, 200)
        text = text.decode()
        self.assertRegex(text, r'allot_requests_total\{route="/twirp/allot.v1.Admin/ListSites",'
                               r'code="ok"\} [1-9]')
        self.assertIn('allot_db_connections{state="connected"}', text)
        self.assertIn("allot_request_duration_seconds_bucket", text)
        self.assertIn('allot_records_ingested_total{status="charged"}', text)


SCHEMA_SITES = ["leonardo", "lumi", "marenostrum5", "jupiter"]

# method -> (request, roles allowed). Scoped roles are tried with their own scope.
METHODS = {
    "Admin/CreateProgram": ({"name": "p-{role}"}, {"admin"}),
    "Admin/ListPrograms": ({}, {"admin", "auditor"}),
    "Admin/CreateOrganization": ({"name": "o-{role}", "program": "eurohpc-aif"}, {"admin"}),
    "Admin/ListOrganizations": ({}, {"admin", "auditor"}),
    "Admin/CreateProject": ({"name": "pr-{role}", "organization": "acme"}, {"admin"}),
    "Admin/AddProjectUser": ({"project": "acme-llm", "user": "u-{role}"}, {"admin"}),
    "Admin/ListProjects": ({}, {"admin", "auditor"}),
    "Admin/CreateSite": ({"name": "s-{role}"}, {"admin"}),
    "Admin/ListSites": ({}, {"admin", "auditor"}),
    "Admin/CreateResource": ({"site": "leonardo", "partition": "p-{role}", "gpusPerNode": 4,
                              "rule": "BILLING_RULE_WHOLE_NODE", "nativeUnit": "h",
                              "weightPerMille": 1000, "weightEffectiveFrom": "2026-01-01"},
                             {"admin"}),
    "Admin/SetResourceWeight": ({"site": "lumi", "partition": "small-g",
                                 "weightPerMille": 500, "effectiveFrom": "2027-01-01"},
                                {"admin"}),
    "Admin/ListResources": ({}, {"admin", "auditor"}),
    "Admin/CreateAllocation": ({"project": "acme-llm", "gpuHours": "10",
                                "startsAt": "2026-01-01", "endsAt": "2027-01-01",
                                "transferId": "t-{role}"}, {"admin"}),
    "Admin/ListAllocations": ({}, {"admin", "auditor"}),
    "Admin/CreatePrincipal": ({"subject": "CN=x-{role}", "role": "ROLE_AUDITOR"}, {"admin"}),
    "Admin/ListPrincipals": ({}, {"admin", "auditor"}),
    # CN=x-admin is the one admin's CreatePrincipal made above.
    "Admin/RemovePrincipal": ({"subject": "CN=x-{role}"}, {"admin"}),
    "Admin/AddSiteAccount": ({"project": "acme-llm", "site": "leonardo",
                              "account": "SA_{role}"}, {"admin"}),
    "Admin/ListSiteAccounts": ({}, {"admin", "auditor"}),
    # SA_admin is the one admin's AddSiteAccount made above.
    "Admin/RemoveSiteAccount": ({"site": "leonardo", "account": "SA_{role}"}, {"admin"}),
    "Usage/Ingest": ({"site": "leonardo", "batchId": "b-{role}", "records": [
        {"jobId": "role-{role}", "startTime": START, "account": "acme-vision",
         "partition": "boost_usr_prod", "gpus": 1, "cpus": 1, "nodes": 1,
         "elapsedS": "10"}]}, {"admin", "collector"}),
    "Usage/IngestMetrics": ({"site": "leonardo", "batchId": "m-{role}", "samples": [
        {"jobId": "role-{role}", "host": "n-{role}", "gpu": "0", "time": START,
         "utilizationPct": 50}]}, {"admin", "collector"}),
    "Usage/ListJobs": ({"project": "acme-llm"}, {"admin", "auditor", "project"}),
    "Usage/GetCompleteness": ({"site": "leonardo"}, {"admin", "auditor", "collector"}),
    "Usage/GetSiteTotals": ({"site": "leonardo"}, {"admin", "auditor", "collector"}),
    "Ledger/GetBalance": ({"project": "acme-llm"},
                          {"admin", "auditor", "scheduler", "project"}),
    "Ledger/Quote": ({"site": "leonardo", "partition": "boost_usr_prod", "account": "acme-llm",
                      "gpus": 1, "timeLimitS": "60"}, {"admin", "auditor", "scheduler", "project"}),
    "Ledger/Reserve": ({"lienId": "r-{role}", "site": "leonardo", "jobId": "j-{role}",
                        "partition": "boost_usr_prod", "account": "acme-llm", "gpus": 1,
                        "timeLimitS": "60"}, {"admin", "scheduler", "project"}),
    "Ledger/ReserveCampaign": ({"lienId": "c-{role}", "project": "acme-llm", "site": "leonardo",
                                "partition": "boost_usr_prod", "gpuHours": "1",
                                "endsAt": "2027-12-01"}, {"admin", "scheduler", "project"}),
    "Ledger/Heartbeat": ({"site": "leonardo", "jobId": "j-{role}", "elapsedS": "10"},
                         {"admin", "scheduler", "project"}),
    "Ledger/Settle": ({"site": "leonardo", "jobId": "j-{role}"}, {"admin", "scheduler", "project"}),
    "Ledger/Release": ({"site": "leonardo", "jobId": "j-{role}"},
                       {"admin", "scheduler", "project"}),
    "Incidents/Declare": ({"incidentId": "i-{role}", "site": "leonardo",
                           "startsAt": "2026-11-01T00:00:00Z", "endsAt": "2026-11-01T01:00:00Z",
                           "reason": "test"}, {"admin"}),
    "Incidents/List": ({}, {"admin", "auditor"}),
    # i-admin is the one admin's Declare made above.
    "Incidents/Show": ({"incidentId": "i-admin"}, {"admin", "auditor"}),
    "Events/List": ({"project": "acme-llm"}, {"admin", "auditor", "project"}),
}

# role -> certificate whose scope fits the requests above.
ROLE_CERTS = {
    "admin": "admin", "auditor": "auditor", "collector": "collector-leonardo",
    "scheduler": "scheduler-leonardo", "project": "project-acme-llm",
}


def fill(obj, role):
    if isinstance(obj, dict):
        return {k: fill(v, role) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fill(v, role) for v in obj]
    if isinstance(obj, str):
        return obj.replace("{role}", role)
    return obj


class Authentication(AllotTestCase):

    def test_every_method_times_every_role(self):
        admin = {m for m in SCHEMA.rpcs if m.startswith("Admin/")}
        self.assertEqual(admin - set(METHODS), set(), "Admin methods missing from METHODS")
        for method, (request, allowed) in METHODS.items():
            for role, cert in ROLE_CERTS.items():
                with self.subTest(method=method, role=role):
                    resp = self.twirp(method, fill(request, role), cert=cert)
                    if role in allowed:
                        self.assertEqual(resp[0], 200, f"{method} as {role}: {resp[2]!r}")
                    else:
                        self.assertTwirpError(resp, "permission_denied", role)

    def test_no_certificate(self):
        before = self.counts()
        self.assertTwirpError(self.twirp("Admin/CreateSite", {"name": "anon"}, cert=None),
                              "unauthenticated", "no client certificate")
        self.assertEqual(self.counts(), before)

    def test_certificate_from_another_ca(self):
        # stranger.crt has the admin's subject but another CA signed it.
        self.assertTwirpError(self.twirp("Admin/CreateSite", {"name": "evil"},
                                         cert="stranger"),
                              "unauthenticated", "not accepted")
        self.assertEqual(self.psql("SELECT count(*) FROM allot.sites WHERE name = 'evil'"), "0")

    def test_unknown_subject(self):
        make_cert("nobody-registered")
        self.assertTwirpError(self.twirp("Admin/ListSites", {}, cert="nobody-registered"),
                              "unauthenticated", subject("nobody-registered"))

    def test_collector_of_another_site_stores_nothing(self):
        before = self.counts()
        resp = self.twirp("Usage/Ingest", {"site": "lumi", "batchId": "x", "records": [
            job(77, START, "acme-llm", "small-g", 1, 1, 0, 1, 60)]},
            cert="collector-leonardo")
        self.assertTwirpError(resp, "permission_denied", "lumi")
        self.assertEqual(self.counts(), before)
        self.assertEqual(self.psql("SELECT count(*) FROM allot.ingest_batches"), "0")

    def test_project_reads_only_its_own_balance(self):
        self.call("Ledger/GetBalance", {"project": "acme-vision"}, cert="project-acme-vision")
        self.assertTwirpError(self.twirp("Ledger/GetBalance", {"project": "acme-llm"},
                                         cert="project-acme-vision"),
                              "permission_denied", "acme-llm")


class CallMemory(AllotTestCase):
    """A call's memory (its arena: the decoded request, the database's decoded answer)
    is freed however the call ends, and a connection's calls share what they may (the
    peer's subject). LeakSanitizer at allotd's exit, in the sanitized build, and the
    log checks of tearDownClass see what a test leaves behind."""

    def test_client_gone_mid_call(self):
        # ListSites waits on PostgreSQL: each client closes while its call is in flight.
        body = b"{}"
        head = (b"POST /twirp/allot.v1.Admin/ListSites HTTP/1.1\r\nHost: allot\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                with client_context("admin").wrap_socket(s, server_hostname="127.0.0.1") as t:
                    t.sendall(head + body)
        sites = self.call("Admin/ListSites", {})
        self.assertEqual(len(sites["sites"]), len(SCHEMA_SITES))

    def test_keep_alive_calls_share_the_subject(self):
        make_cert("nobody-kept")
        for cert, status in (("admin", 200), ("nobody-kept", 401), ("admin", 200)):
            conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                               context=client_context(cert), timeout=30)
            try:
                for body in (b"{}", SCHEMA.encode(SCHEMA.rpcs["Admin/ListSites"][0], {})):
                    for _ in range(3):
                        ctype = "application/json" if body == b"{}" else "application/protobuf"
                        conn.request("POST", twirp_path("Admin/ListSites"), body=body,
                                     headers={"Content-Type": ctype})
                        r = conn.getresponse()
                        data = r.read()
                        self.assertEqual(r.status, status, data)
                        if status == 401:
                            self.assertIn(subject("nobody-kept").encode(), data)
            finally:
                conn.close()


if __name__ == "__main__":
    unittest.main()
