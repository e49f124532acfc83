# A private PostgreSQL cluster for the demo and the tests; source this file.
#
#   pg_start DIR    initdb DIR/data if needed and start it, socket in DIR/sock,
#                   no TCP; exports PGHOST PGPORT PGUSER PGDATABASE ALLOT_PG_DIR
#   pg_stop DIR     stop it (fast shutdown); quiet when it is not running
#   pg_restart DIR  stop, then start again with the same settings
#
# The cluster trades durability for speed (fsync, synchronous_commit and
# full_page_writes off) unless ALLOT_PG_DURABLE=1 is set when pg_start runs:
# then PostgreSQL's durable defaults stay on, for benchmarks whose point is
# what a commit costs (tests/bench/reserve).
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` user (Debian's package creates it) and DIR is handed to it.

pg_bindir() {
    local d
    for d in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/15/bin \
        /usr/lib/postgresql/*/bin; do
        [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    echo "pg.sh: no PostgreSQL server binaries (initdb) found" >&2
    return 1
}

# Runs a command as the cluster's owner: postgres when we are root, else us.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_start() {
    local dir=$1 bin port=${ALLOT_PG_PORT:-5432}
    [ -n "$dir" ] || { echo "usage: pg_start DIR" >&2; return 2; }
    bin=$(pg_bindir) || return 1
    mkdir -p "$dir/sock"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || { echo "pg.sh: user postgres does not exist" >&2; return 1; }
        chown postgres "$dir" "$dir/sock"
        chmod 700 "$dir/sock"
        # postgres must be able to reach DIR through its parents.
        local p=$dir
        while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; return 1; }
    fi
    # fsync and friends off: a test cluster trades durability for speed.
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${ALLOT_PG_DURABLE:-0}" = 1 ] &&
        durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir/sock' -p $port $durability -c max_connections=200" \
        start >/dev/null ||
        { tail -20 "$dir/postgres.log" >&2; return 1; }
    echo "$port" >"$dir/port"
    export PGHOST=$dir/sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres ALLOT_PG_DIR=$dir
}

pg_stop() {
    local dir=$1 bin
    [ -f "$dir/data/PG_VERSION" ] || return 0
    bin=$(pg_bindir) || return 1
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

pg_restart() {
    pg_stop "$1" && pg_start "$1"
}
