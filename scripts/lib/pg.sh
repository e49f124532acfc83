# A private PostgreSQL cluster for the demo and the tests; source this file.
#
#   pg_start DIR    initdb DIR/data if needed and start it, socket in DIR/sock,
#                   no TCP; exports PGHOST PGPORT PGUSER PGDATABASE ALLOT_PG_DIR
#   pg_stop DIR     stop it (fast shutdown); quiet when it is not running
#   pg_restart DIR  stop, then start again with the same settings
#   pg_crash DIR    stop it the way a power cut would (`pg_ctl stop -m immediate`:
#                   no checkpoint, crash recovery at the next start)
#   pg_standby_make PRIMARY DIR NAME
#                   a streaming hot standby of the running cluster PRIMARY in DIR:
#                   a physical replication slot NAME on the primary, pg_basebackup -R
#                   (primary_conninfo with application_name=NAME), then pg_start DIR
#                   on port ALLOT_PG_PORT (which must differ from the primary's)
#   pg_sync_standby PRIMARY NAME
#                   make the standby NAME synchronous: synchronous_standby_names on
#                   the primary, reloaded; waits until pg_stat_replication says sync
#   pg_promote DIR  promote the standby in DIR (`pg_ctl promote -w`)
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

# pg_ctl stop in MODE (fast, immediate); quiet when the cluster is not running.
pg_stop_mode() {
    local dir=$1 mode=$2 bin
    [ -f "$dir/data/PG_VERSION" ] || return 0
    bin=$(pg_bindir) || return 1
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null 2>&1 || true
}

pg_stop() {
    pg_stop_mode "$1" fast
}

pg_restart() {
    pg_stop "$1" && pg_start "$1"
}

pg_crash() {
    pg_stop_mode "$1" immediate
}

# psql on the cluster in DIR as postgres, unaligned, stopping at the first error.
pg_psql() {
    local dir=$1
    shift
    psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$(cat "$dir/port")" -U postgres \
        -d postgres "$@"
}

pg_standby_make() {
    local primary=$1 dir=$2 name=$3 bin
    [ -n "$name" ] || { echo "usage: pg_standby_make PRIMARY DIR NAME" >&2; return 2; }
    bin=$(pg_bindir) || return 1
    primary=$(cd "$primary" && pwd)
    [ "$(cat "$primary/port")" != "${ALLOT_PG_PORT:-5432}" ] ||
        { echo "pg.sh: the standby needs its own ALLOT_PG_PORT" >&2; return 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    pg_psql "$primary" -c "SELECT pg_create_physical_replication_slot('$name')" \
        >/dev/null || return 1
    # -R writes standby.signal and primary_conninfo (with the -d string's
    # application_name, which synchronous_standby_names names).
    pg_as_owner "$bin/pg_basebackup" -D "$dir/data" -R -X stream -S "$name" -c fast \
        -d "host=$primary/sock port=$(cat "$primary/port") user=postgres application_name=$name" \
        >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; return 1; }
    pg_start "$dir"
}

pg_sync_standby() {
    local primary=$1 name=$2 i
    pg_psql "$primary" -c "ALTER SYSTEM SET synchronous_standby_names = '$name'" \
        -c "SELECT pg_reload_conf()" >/dev/null || return 1
    for i in $(seq 1 300); do
        [ "$(pg_psql "$primary" -c "SELECT sync_state FROM pg_stat_replication
            WHERE application_name = '$name'")" = sync ] && return 0
        sleep 0.1
    done
    echo "pg.sh: standby $name is not synchronous after 30 s" >&2
    return 1
}

pg_promote() {
    local dir=$1 bin
    bin=$(pg_bindir) || return 1
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null ||
        { tail -20 "$dir/postgres.log" >&2; return 1; }
}
