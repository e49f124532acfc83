# Debian packages that building, testing and running Allot need; sourced by
# scripts/demo and scripts/test. deps_install installs the missing ones (as
# root, with apt-get update first), and does nothing when all are there.

ALLOT_DEBIAN_PACKAGES="build-essential meson ninja-build pkg-config libevent-dev libssl-dev
libpq-dev libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libjansson-dev
libcurl4-openssl-dev libopenblas-dev postgresql-15 postgresql-15-pgtap openssl curl python3 clang-format
mandoc slurmctld slurmd slurm-client slurmdbd munge mariadb-server iproute2"

deps_install() {
    local missing="" p
    for p in $ALLOT_DEBIAN_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages:$missing (run as root to install them)" >&2
        return 1
    fi
    echo "installing:$missing"
    apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
}
