# shellcheck shell=bash
# Set-up shared by the benchmarks in tests/bench/; source it after `set -euo pipefail`.
#
#   bench_init          cd to the repository root, build allotd (release) in
#                       $ALLOT_BENCH_BUILD (default build-bench) if needed, make a
#                       temporary folder $tmp, and clean everything up on exit
#   bench_pg            start a private PostgreSQL in $tmp/pg (scripts/lib/pg.sh;
#                       ALLOT_PG_DURABLE=1 keeps fsync and synchronous_commit on)
#   bench_certs CN...   development certificates in $tmp/certs (scripts/certs)
#   bench_conf DB [LINE...]  write $tmp/allotd.conf for database DB on a free port
#                       ($port), with more "key = value" LINEs
#   bench_migrate       allotd --migrate and an admin principal for CN=admin
#   bench_allotd_start  start allotd and wait for /healthz; bench_allotd_stop stops it
#   bench_load ARGS     the C load client (tests/bench/lib/twirp_load.c, built by meson
#                       in $build; twirp_mix.c, the many-connection one, beside it)
#   bench_ingest_setup DB  the four sites, their resources, twelve projects with
#                       allocations and the collectors' principals
#                       (tests/bench/lib/ingest_setup.sql), in migrated DB
#   bench_copy_ref FILE ROWS  psql \copy of FILE (ingest_load.py's records.copy,
#                       ROWS rows) into a new table of the records' columns without
#                       an index, three times; sets $copy to the median rows/s
#
# Everything runs as the invoking user; the cluster belongs to postgres as root.

bench_init() {
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
    cd "$root" || exit 1
    . scripts/lib/pg.sh
    build=${ALLOT_BENCH_BUILD:-$root/build-bench}
    case "$build" in /*) ;; *) build=$root/$build ;; esac
    if [ ! -x "$build/daemon/allotd" ]; then
        [ -d "$build" ] || meson setup "$build" --buildtype=release >/dev/null
        ninja -C "$build" daemon/allotd >/dev/null
    fi
    # The C load clients (tests/bench/lib) are built by meson with the daemon.
    ninja -C "$build" tests/bench/twirp_load tests/bench/twirp_mix >/dev/null
    allotd=$build/daemon/allotd
    tmp=$(mktemp -d "${ALLOT_BENCH_TMPDIR:-/tmp}/allot-bench.XXXXXX")
    chmod 755 "$tmp"
    allotd_pid=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    bench_allotd_stop
    pg_stop "$tmp/pg" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}

bench_pg() {
    pg_start "$tmp/pg" >/dev/null
    echo "PostgreSQL $(psql -X -At -c 'SHOW server_version' | cut -d' ' -f1):" \
        "fsync=$(psql -X -At -c 'SHOW fsync')" \
        "synchronous_commit=$(psql -X -At -c 'SHOW synchronous_commit')"
}

bench_certs() {
    scripts/certs "$tmp/certs" "$@" >/dev/null
    certs=$tmp/certs
}

bench_conf() {
    local db=$1 line
    shift
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    {
        cat <<CONF
listen = 127.0.0.1:$port
tls_cert = $certs/server.crt
tls_key = $certs/server.key
tls_ca = $certs/ca.crt
database = "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$db"
log_level = warn
CONF
        for line in "$@"; do echo "$line"; done
    } >"$tmp/allotd.conf"
}

bench_migrate() {
    "$allotd" -c "$tmp/allotd.conf" --migrate >/dev/null
    "$allotd" -c "$tmp/allotd.conf" --add-principal "CN=admin,O=Allot Dev" admin >/dev/null
}

bench_allotd_start() {
    "$allotd" -c "$tmp/allotd.conf" 2>>"$tmp/allotd.log" &
    allotd_pid=$!
    local _
    for _ in $(seq 1 100); do
        curl -sf --cacert "$certs/ca.crt" "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 &&
            return 0
        kill -0 "$allotd_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "allotd did not start:" >&2
    cat "$tmp/allotd.log" >&2
    return 1
}

bench_allotd_stop() {
    if [ -n "${allotd_pid:-}" ]; then
        kill -TERM "$allotd_pid" 2>/dev/null || true
        # It drains what is in flight; a benchmark that gave up on an answer
        # does not wait for it.
        local _
        for _ in $(seq 1 50); do
            kill -0 "$allotd_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$allotd_pid" 2>/dev/null || true
        wait "$allotd_pid" 2>/dev/null || true
        allotd_pid=""
    fi
}

bench_load() {
    "$build/tests/bench/twirp_load" -p "$port" -a "$certs/ca.crt" "$@"
}

bench_ingest_setup() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" -f tests/bench/lib/ingest_setup.sql >/dev/null
}

bench_copy_ref() {
    local file=$1 rows=$2 rates="" i t0 t1 got r
    createdb bench_copy
    for i in 1 2 3; do
        psql -X -q -d bench_copy -c 'DROP TABLE IF EXISTS copy_ref' -c 'CREATE TABLE copy_ref (
            site text, job_id text, step text, start_time timestamptz, account text,
            user_name text, partition text, gpus integer, cpus integer, mem_mb bigint,
            nodes integer, elapsed_s bigint, state text)' 2>/dev/null
        t0=$(date +%s.%N)
        psql -X -q -v ON_ERROR_STOP=1 -d bench_copy -c "\\copy copy_ref FROM '$file'"
        t1=$(date +%s.%N)
        got=$(psql -X -At -d bench_copy -c 'SELECT count(*) FROM copy_ref')
        [ "$got" = "$rows" ] || { echo "COPY loaded $got rows, not $rows" >&2; exit 1; }
        r=$(awk -v a="$t0" -v b="$t1" -v n="$rows" 'BEGIN { printf "%.0f", n / (b - a) }')
        echo "COPY $i: $rows rows in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s: $r rows/s"
        rates="$rates $r"
    done
    copy=$(echo "$rates" | tr ' ' '\n' | sort -n | sed -n 2p)
    echo "COPY median: $copy rows/s"
    dropdb bench_copy
}
