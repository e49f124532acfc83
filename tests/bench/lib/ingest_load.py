"""The records and the client of tests/bench/ingest.

  ingest_load.py gen N DIR
      Generates about N cumulative job records from four sites (the resources of
      scripts/demo), as their collectors would report them over two days: every
      job reported at each half-hourly poll while it runs, with growing elapsed_s,
      then once more when it ends (COMPLETED, FAILED, TIMEOUT, CANCELLED), with
      step records ("batch" while running, "batch" and "0" at the end); jobs still
      running at the end of the two days stay RUNNING. Writes DIR/records.pickle
      (each record pre-encoded as protobuf, by tests/integration/protowire.py from
      the .proto files), DIR/records.copy (the same rows as COPY text) and
      DIR/sacct-SITE.psv for each site: the same records, in the same order, as
      `sacct --parsable2` output with a header, in the site's local time (its
      zone in SITE_ZONE), each poll's lines as sacct prints a job and its steps.

  ingest_load.py send DIR BATCH PORT CERTS BUDGET_S NAME [LIKE]
      Cuts each site's records, in report order, into IngestRequests of BATCH
      records (batch ids bench-BATCH-SITE-NNNNN: the same on every run), encodes
      them all before the clock starts, then sends each site's batches in order on
      its own keep-alive HTTPS connection (the site's collector certificate), the
      four sites at once, and times from the first send to the last answer.
      A site sends no new batch after BUDGET_S seconds, and gives up a batch not
      answered 20 s later (so that a slow server cannot make the run endless; the
      rate is then that of the records answered). Writes DIR/NAME.sent, which
      batches of each site were answered with 200; with LIKE, sends only the
      batches that DIR/LIKE.sent names (a replay of what LIKE committed).
      Prints key=value lines:
      records answered, batches, seconds, records_per_s, the answers' statuses
      and counts, where the budget cut the pass, the client's CPU seconds.
"""

import datetime
import http.client
import math
import os
import pickle
import random
import ssl
import sys
import threading
import time
import zoneinfo

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "integration"))
import protowire  # noqa: E402

PROTO = os.path.join(os.path.dirname(__file__), "..", "..", "..", "proto", "allot", "v1")
SITES = ["leonardo", "lumi", "marenostrum5", "jupiter"]
SITE_WEIGHT = [0.35, 0.25, 0.25, 0.15]
POLL_S = 1800
HORIZON_S = 2 * 86400
T0 = 1795132800  # 2026-11-20T00:00:00Z
PROJECTS = 12
SITE_ZONE = {"leonardo": "Europe/Rome", "lumi": "Europe/Helsinki",
             "marenostrum5": "Europe/Madrid", "jupiter": "Europe/Berlin"}
SACCT_HEADER = "JobID|JobIDRaw|Start|End|Account|User|Partition|AllocTRES|NCPUS|NNodes|ElapsedRaw|State"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def sacct_line(r, zone):
    """One record as a `sacct --parsable2` line of SACCT_HEADER's fields, times local in zone."""
    start = datetime.datetime.fromisoformat(r["startTime"].replace("Z", "+00:00"))
    local = start.astimezone(zone)
    end = "Unknown" if r["state"] == "RUNNING" else \
        (local + datetime.timedelta(seconds=r["elapsedS"])).strftime("%Y-%m-%dT%H:%M:%S")
    job = r["jobId"] + ("." + r["step"] if r.get("step") else "")
    tres = f"billing={r['cpus']},cpu={r['cpus']},gres/gpu={r['gpus']},mem={r['memMb']}M,node={r['nodes']}"
    return "|".join(str(x) for x in (
        job, job, local.strftime("%Y-%m-%dT%H:%M:%S"), end, r["account"], r["user"],
        r["partition"], tres, r["cpus"], r["nodes"], r["elapsedS"], r["state"]))


def shape(rnd, site):
    """(partition, gpus, cpus, mem_mb, nodes) of one job at site, in Slurm's terms."""
    if site == "leonardo":
        nodes = rnd.choice([1, 1, 1, 1, 2, 4])
        gpus = rnd.choice([1, 2, 4]) if nodes == 1 else 4 * nodes
        return "boost_usr_prod", gpus, 8 * gpus, 120000 * gpus, nodes
    if site == "lumi":
        if rnd.random() < 0.5:
            nodes = rnd.choice([1, 2, 4])
            return "standard-g", 8 * nodes, 56 * nodes, 0, nodes
        gpus = rnd.choice([1, 2, 4, 8])
        return "small-g", gpus, 7 * gpus, 60000 * gpus, 1
    if site == "marenostrum5":
        nodes = rnd.choice([1, 1, 1, 2, 8])
        gpus = rnd.choice([1, 2, 4]) if nodes == 1 else 4 * nodes
        return "acc", gpus, 40 * gpus, 125000 * gpus, nodes
    nodes = rnd.choice([1, 1, 2, 4, 16])
    return "booster", rnd.choice([1, 4]) if nodes == 1 else 4 * nodes, 288 * nodes, 878535, nodes


NODE_PREFIX = {"leonardo": ("lrdn", 4), "lumi": ("nid", 6), "marenostrum5": ("as", 4),
               "jupiter": ("jpbo", 4)}


def node_list(site, job, nodes):
    """The job's NodeList as Slurm prints it (lrdn[0123-0126]), from its own random
    stream: the records are the same with and without node lists."""
    prefix, width = NODE_PREFIX[site]
    first = random.Random(f"{site}:{job}").randrange(10 ** width - nodes)
    if nodes == 1:
        return f"{prefix}{first:0{width}d}"
    return f"{prefix}[{first:0{width}d}-{first + nodes - 1:0{width}d}]"


def gen(n, out):
    # ALLOT_BENCH_NO_NODES=1: the allocation records carry no node list (the records
    # as they were before node lists, for measuring what the lists cost).
    with_nodes = os.environ.get("ALLOT_BENCH_NO_NODES") != "1"
    rnd = random.Random(20261121)
    next_id = {"leonardo": 48600000, "lumi": 9200000, "marenostrum5": 46800000, "jupiter": 1620000}
    events = {s: [] for s in SITES}
    total = jobs = finished = steps = 0
    while total < n:
        site = rnd.choices(SITES, SITE_WEIGHT)[0]
        job = str(next_id[site])
        next_id[site] += rnd.randint(1, 3)
        part, gpus, cpus, mem, nodes = shape(rnd, site)
        start = T0 + rnd.randrange(HORIZON_S)
        dur = max(30, min(int(rnd.lognormvariate(math.log(5400), 1.0)), 48 * 3600))
        end = start + dur
        base = {"jobId": job, "startTime": rfc3339(start),
                "account": f"proj{rnd.randrange(PROJECTS):02d}", "user": f"u{rnd.randrange(40):02d}",
                "gpus": gpus, "cpus": cpus, "memMb": mem, "nodes": nodes}
        alloc = {"nodeList": node_list(site, job, nodes)} if with_nodes else {}
        polls = range((start // POLL_S + 1) * POLL_S, min(end, T0 + HORIZON_S), POLL_S)
        with_batch_step = rnd.random() < 0.6
        for tp in polls:
            rec = dict(base, partition=part, elapsedS=tp - start, state="RUNNING", **alloc)
            events[site].append((tp, rec))
            total += 1
            if with_batch_step:
                events[site].append((tp, dict(base, step="batch", partition="",
                                              elapsedS=tp - start, state="RUNNING")))
                total += 1
                steps += 1
        if end < T0 + HORIZON_S:
            state = rnd.choices(["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"],
                                [0.75, 0.1, 0.07, 0.08])[0]
            events[site].append((end, dict(base, partition=part, elapsedS=dur, state=state,
                                           **alloc)))
            for st in ("batch", "0"):
                events[site].append((end, dict(base, step=st, partition="", elapsedS=dur,
                                               state="COMPLETED" if state == "COMPLETED" else
                                               ("CANCELLED" if state in ("TIMEOUT", "CANCELLED")
                                                else "FAILED"))))
            total += 3
            steps += 2
            finished += 1
        jobs += 1
    schema = protowire.Schema(PROTO)
    encoded = {}
    with open(os.path.join(out, "records.copy"), "w", encoding="utf-8") as copy:
        for site in SITES:
            evs = sorted(events[site], key=lambda e: e[0])
            # Each record alone as an IngestRequest's field 3: batches are these
            # concatenated after the site and batch id (protobuf's repeated field).
            encoded[site] = [schema.encode("IngestRequest", {"records": [r]}) for _, r in evs]
            with open(os.path.join(out, f"sacct-{site}.psv"), "w", encoding="utf-8") as psv:
                zone = zoneinfo.ZoneInfo(SITE_ZONE[site])
                psv.write(SACCT_HEADER + "\n")
                for _, r in evs:
                    psv.write(sacct_line(r, zone) + "\n")
            for _, r in evs:
                copy.write("\t".join(str(x) for x in (
                    site, r["jobId"], r.get("step", ""), r["startTime"], r["account"], r["user"],
                    r["partition"], r["gpus"], r["cpus"], r["memMb"], r["nodes"], r["elapsedS"],
                    r["state"])) + "\n")
    with open(os.path.join(out, "records.pickle"), "wb") as f:
        pickle.dump(encoded, f)
    running = jobs - finished
    print(f"records={total}")
    print(f"jobs={jobs}")
    print(f"finished={finished}")
    print(f"running={running}")
    print(f"step_records={steps}")
    print("per_site=" + ",".join(f"{s}:{len(encoded[s])}" for s in SITES))
    print(f"protobuf_bytes={sum(len(b) for s in SITES for b in encoded[s])}")


def counts(data):
    """charged, duplicates, rejected, recorded and the number of results of an
    IngestResponse, read from its wire bytes without decoding every result."""
    out = {3: 0, 4: 0, 5: 0, 6: 0}
    results = 0
    pos = 0
    rv = protowire._read_varint
    while pos < len(data):
        key, pos = rv(data, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = rv(data, pos)
            out[num] = v
        elif wt == 2:
            ln, pos = rv(data, pos)
            pos += ln
            if num == 2:
                results += 1
        else:
            raise ValueError(f"unexpected wire type {wt} in IngestResponse")
    return out[3], out[4], out[5], out[6], results


def send(d, batch, port, certs, budget_s, name, like=None):
    with open(os.path.join(d, "records.pickle"), "rb") as f:
        encoded = pickle.load(f)
    schema = protowire.Schema(PROTO)
    bodies = {}
    keep = {}
    if like:
        with open(os.path.join(d, f"{like}.sent"), encoding="utf-8") as f:
            for line in f:
                site, _, idx = line.strip().partition(":")
                keep[site] = {int(x) for x in idx.split(",") if x}
    for site in SITES:
        recs = encoded[site]
        bodies[site] = []
        for i in range(0, len(recs), batch):
            head = schema.encode("IngestRequest",
                                 {"site": site, "batchId": f"bench-{batch}-{site}-{i // batch:05d}"})
            if not like or i // batch in keep.get(site, ()):
                bodies[site].append((i // batch, len(recs[i:i + batch]),
                                     head + b"".join(recs[i:i + batch])))
    answers = {s: [] for s in SITES}
    errors = []
    cut = []
    ready = threading.Barrier(len(SITES) + 1)
    last = [0.0]

    def run(site):
        try:
            ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
            ctx.load_cert_chain(f"{certs}/collector-{site}.crt", f"{certs}/collector-{site}.key")
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
            c.connect()
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(f"{site}: {e}")
            ready.abort()
            return
        ready.wait()
        t0 = time.perf_counter()
        for k, (idx, nrec, body) in enumerate(bodies[site]):
            if time.perf_counter() - t0 > budget_s:
                cut.append(f"{site}:{k}/{len(bodies[site])}")
                break
            try:
                # However late a batch is sent, the pass gives up 20 s after its budget.
                c.sock.settimeout(max(1.0, budget_s + 20 - (time.perf_counter() - t0)))
                c.request("POST", "/twirp/allot.v1.Usage/Ingest", body,
                          {"Content-Type": "application/protobuf"})
                r = c.getresponse()
                answers[site].append((idx, nrec, r.status, r.read()))
            except TimeoutError:
                answers[site].append((idx, nrec, "timeout", b"no answer within the budget + 20 s"))
                cut.append(f"{site}:{k}/{len(bodies[site])}")
                break
            except Exception as e:  # noqa: BLE001
                errors.append(f"{site}: {e}")
                break
            last[0] = max(last[0], time.perf_counter())

    threads = [threading.Thread(target=run, args=(s,)) for s in SITES]
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu0
    if errors:
        sys.exit("ingest_load: " + "; ".join(errors))
    secs = max(last[0] - t0, 1e-9)
    statuses = {}
    failed = {}
    tot = [0, 0, 0, 0, 0]
    nrec = 0
    for s in SITES:
        for _, n, st, data in answers[s]:
            statuses[st] = statuses.get(st, 0) + 1
            if st != 200:
                failed.setdefault((st, data[:300]), []).append(s)
                continue
            nrec += n
            c = counts(data)
            if c[4] != n:
                print(f"{s}: answer with {c[4]} results for {n} records", file=sys.stderr)
            tot = [a + b for a, b in zip(tot, c)]
    for (st, data), where in sorted(failed.items(), key=str):
        print(f"{len(where)} answer(s) {st} ({', '.join(sorted(set(where)))}): "
              f"{data.decode(errors='replace')}", file=sys.stderr)
    with open(os.path.join(d, f"{name}.sent"), "w", encoding="utf-8") as f:
        for s in SITES:
            f.write(f"{s}:" + ",".join(str(a[0]) for a in answers[s] if a[2] == 200) + "\n")
    print(f"records={nrec}")
    print(f"batches={sum(len(answers[s]) for s in SITES)}")
    print(f"seconds={secs:.3f}")
    print(f"records_per_s={nrec / secs:.0f}")
    print("http=" + ",".join(f"{k}:{v}" for k, v in sorted(statuses.items(), key=str)))
    print(f"all_200={'yes' if list(statuses) == [200] else 'no'}")
    print(f"cut={','.join(cut)}")
    print(f"charged={tot[0]}")
    print(f"duplicate={tot[1]}")
    print(f"rejected={tot[2]}")
    print(f"recorded={tot[3]}")
    print(f"results={tot[4]}")
    print(f"client_cpu_s={cpu:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "gen":
        gen(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) in (8, 9) and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6]),
             sys.argv[7], sys.argv[8] if len(sys.argv) == 9 else None)
    else:
        sys.exit("usage: ingest_load.py gen N DIR | send DIR BATCH PORT CERTS BUDGET_S NAME [LIKE]")
