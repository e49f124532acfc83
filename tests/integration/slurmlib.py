"""A private Slurm cluster for the tests: munged, slurmctld and slurmd of Debian's
Slurm 22.05 on one machine, in a network namespace of their own.

slurmctld and slurmd listen on every address, so the cluster runs in a network
namespace that this module makes (a holder process made by `unshare --net`); the
calling thread joins it with setns(2), so that what it starts afterwards (allotd,
the cluster, sbatch) shares that namespace's loopback and nothing is reachable from
outside. PostgreSQL is reached through its Unix socket, which namespaces do not
separate. leave() joins the original namespace again.

Facts this relies on: fake GPUs are gres.conf File= entries on symlinks to
/dev/null; job_submit.lua is read from slurm.conf's folder; sinfo, squeue and
scontrol hang while slurmctld is down, so every call has a timeout.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import time

CLONE_NEWNET = 0x40000000
SLURM_BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "scontrol", "squeue")
ACCOUNTING_BINARIES = ("slurmdbd", "sacct", "sacctmgr", "mariadbd", "mariadb-install-db",
                       "mariadb")
DBD_PORT, MARIADB_PORT = 16819, 16306


def missing(accounting=False):
    """The Slurm programs that are not installed, or [] when all are."""
    names = SLURM_BINARIES + (ACCOUNTING_BINARIES if accounting else ())
    return [b for b in names if shutil.which(b) is None]


class Namespace:
    """A new network namespace joined by the calling thread."""

    def __init__(self):
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        self._holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
        path = f"/proc/{self._holder.pid}/ns/net"
        # unshare has run once the holder's namespace differs from ours.
        deadline = time.monotonic() + 10
        while os.readlink(path) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline or self._holder.poll() is not None:
                raise RuntimeError("unshare --net did not make a namespace")
            time.sleep(0.01)
        fd = os.open(path, os.O_RDONLY)
        try:
            self._setns(fd)
        finally:
            os.close(fd)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        # slurmdbd (and so a site's whole chain) wants an address besides 127.0.0.1.
        subprocess.run(["ip", "addr", "add", "10.200.0.1/32", "dev", "lo"], check=True)

    def _setns(self, fd):
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns: {os.strerror(e)}")

    def leave(self):
        self._setns(self._home)
        os.close(self._home)
        self._holder.kill()
        self._holder.wait()


class SlurmCluster:
    """One controller and one node, node1, with 4 fake GPUs and 2 CPUs, in folder.

    partition: the partition's name (the site's resource in Allot); prolog and
    epilog: commands run as PrologSlurmctld and EpilogSlurmctld; job_submit: the
    text of job_submit.lua, or None for no plugin.
    """

    def __init__(self, folder, partition, job_submit=None, prolog=None, epilog=None,
                 accounting=False):
        self.dir = folder
        self.accounting = accounting
        self.partition = partition
        self.conf = os.path.join(folder, "slurm.conf")
        self.procs = []
        os.makedirs(os.path.join(folder, "munge"), exist_ok=True)
        os.chmod(os.path.join(folder, "munge"), 0o755)
        for sub in ("state", "spool", "log"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        key = os.path.join(folder, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        for i in range(4):
            os.symlink("/dev/null", os.path.join(folder, f"gpu{i}"))
        self.munge_socket = os.path.join(folder, "munge", "munge.socket")
        scripts = {}
        for name, cmd in (("prolog", prolog), ("epilog", epilog)):
            if cmd is None:
                continue
            path = os.path.join(folder, f"{name}.sh")
            with open(path, "w") as f:
                f.write("#!/bin/sh\n"
                        f"export SLURM_CONF={self.conf}\n"
                        f"exec {cmd} >>{folder}/log/{name}.out 2>&1\n")
            os.chmod(path, 0o755)
            scripts[name] = path
        lines = [
            "ClusterName=allottest", "SlurmctldHost=localhost(127.0.0.1)",
            "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}", "CredType=cred/munge",
            f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
            f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
            f"SlurmctldLogFile={folder}/log/slurmctld.log",
            f"SlurmdLogFile={folder}/log/slurmd.log",
            "SlurmctldPort=16817", "SlurmdPort=16818", "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none", "ReturnToService=2", "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "GresTypes=gpu",
            # Multifactor, so that a job's SiteFactor (allot-slurm-sync's) counts.
            "PriorityType=priority/multifactor",
            "NodeName=node1 NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 Gres=gpu:4 State=UNKNOWN",
            f"PartitionName={partition} Nodes=node1 Default=YES MaxTime=INFINITE State=UP",
        ]
        if job_submit is not None:
            lines.append("JobSubmitPlugins=lua")
            with open(os.path.join(folder, "job_submit.lua"), "w") as f:
                f.write(job_submit)
        if "prolog" in scripts:
            lines.append(f"PrologSlurmctld={scripts['prolog']}")
        if "epilog" in scripts:
            lines.append(f"EpilogSlurmctld={scripts['epilog']}")
        if accounting:
            # slurmdbd on a private MariaDB; AccountingStoragePass names munge's socket
            # for slurmctld's connections to slurmdbd, which ignore AuthInfo.
            lines += ["AccountingStorageType=accounting_storage/slurmdbd",
                      "AccountingStorageHost=localhost", f"AccountingStoragePort={DBD_PORT}",
                      f"AccountingStoragePass=socket={self.munge_socket}",
                      "AccountingStorageTRES=gres/gpu", "JobAcctGatherType=jobacct_gather/none"]
            dbd = os.path.join(folder, "slurmdbd.conf")
            with open(dbd, "w") as f:
                f.write("\n".join([
                    "AuthType=auth/munge", f"AuthInfo=socket={self.munge_socket}",
                    "DbdHost=localhost", f"DbdPort={DBD_PORT}", "SlurmUser=root",
                    f"LogFile={folder}/log/slurmdbd.log", f"PidFile={folder}/slurmdbd.pid",
                    "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1",
                    f"StoragePort={MARIADB_PORT}", "StorageUser=slurm",
                    "StoragePass=slurm-test", "StorageLoc=slurm_acct_db"]) + "\n")
            os.chmod(dbd, 0o600)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(folder, "gres.conf"), "w") as f:
            f.write(f"NodeName=node1 Name=gpu File={folder}/gpu[0-3]\n")
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    def _spawn(self, argv, log):
        out = open(os.path.join(self.dir, "log", log), "w")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                             stdin=subprocess.DEVNULL)
        out.close()
        self.procs.append(p)
        return p

    def start(self, timeout=30):
        d = self.dir
        self._spawn(["munged", "--foreground", f"--key-file={d}/munge.key",
                     f"--socket={self.munge_socket}", f"--pid-file={d}/munge.pid",
                     f"--log-file={d}/log/munged.log", f"--seed-file={d}/munge.seed",
                     "--force"], "munged.out")
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.munge_socket):
            self._check_alive("munged", deadline)
        if self.accounting:
            self._start_accounting(deadline)
        self._spawn(["slurmctld", "-D", "-i"], "slurmctld.out")
        self._spawn(["slurmd", "-D", "-N", "node1"], "slurmd.out")
        while True:
            r = self.run("sinfo", "-h", "-N", "-o", "%t", check=False, timeout=5)
            if r.returncode == 0 and r.stdout.strip() == "idle":
                return
            self._check_alive("slurm", deadline)

    def _start_accounting(self, deadline):
        d = self.dir
        data, sock = os.path.join(d, "mariadb"), os.path.join(d, "mariadb.sock")
        # Every MariaDB tool needs --no-defaults, or Debian's /etc/mysql applies.
        self.run("mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                 "--auth-root-authentication-method=socket", timeout=120)
        self._spawn(["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={sock}",
                     f"--port={MARIADB_PORT}", "--bind-address=127.0.0.1", "--user=root",
                     "--skip-log-bin"], "mariadbd.out")
        while self.run("mariadb", "--no-defaults", f"--socket={sock}", "-e", "SELECT 1",
                       check=False, timeout=10).returncode != 0:
            self._check_alive("mariadbd", deadline)
        self.run("mariadb", "--no-defaults", f"--socket={sock}", "-e",
                 "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-test'; "
                 "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
        self._spawn(["slurmdbd", "-D"], "slurmdbd.out")
        while self.run("sacctmgr", "-n", "show", "cluster", check=False,
                       timeout=10).returncode != 0:
            self._check_alive("slurmdbd", deadline)
        # Exits 1 when slurmctld registered the cluster first: harmless.
        self.run("sacctmgr", "-i", "add", "cluster", "allottest", check=False)

    def sacct_wrapper(self):
        """A sacct that reads this cluster's slurm.conf, for allot-collect's sacct_command."""
        path = os.path.join(self.dir, "sacct")
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nSLURM_CONF={self.conf} exec sacct \"$@\"\n")
        os.chmod(path, 0o755)
        return path

    def _check_alive(self, what, deadline):
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited with {p.returncode}: {self.logs()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up: {self.logs()}")
        time.sleep(0.1)

    def logs(self):
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmdbd.log", "mariadbd.out",
                     "prolog.out", "epilog.out"):
            path = os.path.join(self.dir, "log", name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- {name}\n" + "".join(f.readlines()[-30:]))
        return "\n".join(out)

    def run(self, *argv, check=True, timeout=20):
        # The cluster's folder is the working directory, so that the jobs' output
        # files land there and not in the directory the tests were started from.
        r = subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                           cwd=self.dir, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.returncode}: {r.stderr}")
        return r

    def job(self, job_id):
        """scontrol's fields of a job, as a dict."""
        line = self.run("scontrol", "show", "job", "-o", str(job_id)).stdout
        fields = {}
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                fields.setdefault(k, v)
        return fields

    def stop(self):
        if any(p.poll() is None for p in self.procs[1:]):
            self.run("scancel", "--full", "-u", "root", check=False, timeout=10)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
