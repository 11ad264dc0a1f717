"""A real single-node Slurm (with accounting) under one temporary directory, without systemd.

Used by the tests and by anyone who wants to try sweeps on one machine. It needs Debian's
packages `munge slurmctld slurmd slurm-client slurmdbd mariadb-server` (Slurm 22.05 on
bookworm) and root. Accounting (slurmdbd + MariaDB) is not optional: without it `sacct` fails
and submitit cannot learn that a job was cancelled, so `job.result()` would wait forever.

    with LocalSlurm() as slurm:      # exports SLURM_CONF for this process and its children
        ...submitit / sbatch / sinfo...

or `python -m onestep.environments.local_slurm up DIR` / `down DIR` from a shell.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from onestep.methods.core.processes import pid_alive

REQUIRED = ("munged", "mungekey", "slurmctld", "slurmd", "slurmdbd", "sacctmgr", "sbatch", "sinfo",
            "mariadb-install-db", "mariadbd", "mariadb")
PACKAGES = "munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
CLUSTER = "onestep"


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be started here; the message says why."""


def missing_reason() -> str | None:
    """None if a local Slurm can be started here, else the reason it cannot."""
    missing = [b for b in REQUIRED if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return f"missing {', '.join(missing)}: install Debian packages {PACKAGES}"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "a local Slurm is started as root (SlurmUser=root); run as root"
    return None


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = "\n--- " + str(log) + " ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise SlurmUnavailable(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def _run(cmd: list[str], env=None, check=True, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)
    if check and out.returncode != 0:
        raise SlurmUnavailable(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    return out


def _node_line() -> str:
    """NodeName line with the exact topology `slurmd -C` reports (slurmd refuses mismatches)."""
    out = _run([_bin("slurmd"), "-C"]).stdout.split("\n")[0]
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    mem = int(int(fields.get("RealMemory", "1024")) * 0.9)
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    topo = " ".join(f"{k}={fields[k]}" for k in keys if k in fields)
    return f"NodeName={fields['NodeName']} NodeAddr=127.0.0.1 {topo} RealMemory={mem} State=UNKNOWN", fields["NodeName"]


class LocalSlurm:
    """Bring up munge, MariaDB, slurmdbd, slurmctld and slurmd under `base`; tear down in order."""

    def __init__(self, base: str | Path | None = None, keep: bool = False):
        self._own_base = base is None
        # The base must not be group/world writable (munged refuses); mkdtemp gives 0700.
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="onestep-slurm-"))
        self.keep = keep
        self.conf = self.base / "etc" / "slurm.conf"
        self.env: dict[str, str] = {}
        self._saved_env: str | None = None

    # paths ------------------------------------------------------------------------------
    def p(self, *parts: str) -> Path:
        return self.base.joinpath(*parts)

    @property
    def munge_socket(self) -> Path:
        return self.p("munge", "munge.sock")

    # bring-up ---------------------------------------------------------------------------
    def start(self) -> "LocalSlurm":
        reason = missing_reason()
        if reason:
            raise SlurmUnavailable(reason)
        for d in ("etc", "munge", "log", "run", "state", "spool", "db"):
            self.p(d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        os.chmod(self.p("munge"), 0o755)  # munged needs execute for all on its socket directory
        try:
            self._start_munge()
            self._start_mariadb()
            self._write_configs()
            self._start_slurmdbd()
            self._start_slurm()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        key = self.p("munge", "munge.key")
        _run([_bin("mungekey"), "-c", "-k", str(key)])
        os.chmod(key, 0o600)
        _run([_bin("munged"), f"--key-file={key}", f"--socket={self.munge_socket}",
              f"--pid-file={self.p('run', 'munged.pid')}", f"--log-file={self.p('log', 'munged.log')}",
              f"--seed-file={self.p('munge', 'munge.seed')}"])
        _wait(lambda: self.munge_socket.exists(), 15, "munged", self.p("log", "munged.log"))

    def _start_mariadb(self) -> None:
        data = self.p("db", "data")
        self.db_socket = self.p("db", "mysqld.sock")
        self.db_port = _free_port()
        _run([_bin("mariadb-install-db"), "--no-defaults", "--user=root", f"--datadir={data}",
              "--auth-root-authentication-method=socket", "--skip-test-db"])
        log = open(self.p("log", "mariadb.log"), "ab")
        proc = subprocess.Popen(
            [_bin("mariadbd"), "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={self.db_socket}",
             f"--port={self.db_port}", "--bind-address=127.0.0.1", "--innodb-buffer-pool-size=64M",
             f"--pid-file={self.p('run', 'mariadbd.pid')}"],
            stdout=log, stderr=log, start_new_session=True)
        self.p("run", "mariadbd.pid.launcher").write_text(str(proc.pid))
        _wait(lambda: self.db_socket.exists(), 60, "mariadbd", self.p("log", "mariadb.log"))
        self.db_password = "onestep-local"
        sql = (f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{self.db_password}';"
               f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
        _run([_bin("mariadb"), "--no-defaults", f"--socket={self.db_socket}", "-u", "root", "-e", sql])

    def _write_configs(self) -> None:
        node_line, node = _node_line()
        self.node = node
        self.ctld_port, self.slurmd_port, self.dbd_port = _free_port(), _free_port(), _free_port()
        sock = self.munge_socket
        lines = [
            f"ClusterName={CLUSTER}",
            f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={sock},cred_expire=10", "CredType=cred/munge",
            f"StateSaveLocation={self.p('state')}", f"SlurmdSpoolDir={self.p('spool')}",
            f"SlurmctldPidFile={self.p('run', 'slurmctld.pid')}", f"SlurmdPidFile={self.p('run', 'slurmd.pid')}",
            f"SlurmctldLogFile={self.p('log', 'slurmctld.log')}", f"SlurmdLogFile={self.p('log', 'slurmd.log')}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=localhost",
            f"AccountingStoragePort={self.dbd_port}", f"AccountingStoragePass={sock}",
            "SchedulerType=sched/backfill", "SchedulerParameters=bf_interval=1,sched_interval=2",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "ReturnToService=2", "MailProg=/bin/true", "MpiDefault=none", "SwitchType=switch/none",
            "JobCompType=jobcomp/none", "KillWait=5", "MinJobAge=300", "InactiveLimit=0",
            node_line,
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        dbd = self.p("etc", "slurmdbd.conf")
        dbd.write_text("\n".join([
            "AuthType=auth/munge", f"AuthInfo=socket={sock}", "DbdHost=localhost", "DbdAddr=127.0.0.1",
            f"DbdPort={self.dbd_port}", "SlurmUser=root", f"LogFile={self.p('log', 'slurmdbd.log')}",
            f"PidFile={self.p('run', 'slurmdbd.pid')}", "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1", f"StoragePort={self.db_port}", "StorageUser=slurm",
            f"StoragePass={self.db_password}", "StorageLoc=slurm_acct_db",
        ]) + "\n")
        os.chmod(dbd, 0o600)
        self.env = {"SLURM_CONF": str(self.conf)}

    def _environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _start_slurmdbd(self) -> None:
        log = self.p("log", "slurmdbd.log")
        _run([_bin("slurmdbd")], env=self._environ())
        _wait(lambda: log.exists() and "started" in log.read_text(errors="replace"), 60, "slurmdbd", log)
        _run([_bin("sacctmgr"), "-i", "add", "cluster", CLUSTER], env=self._environ(), check=False)

    def _start_slurm(self) -> None:
        env = self._environ()
        _run([_bin("slurmctld"), "-i"], env=env)
        _run([_bin("slurmd")], env=env)

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, env=env)
            return out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc")

        _wait(idle, 60, "the Slurm node to become idle", self.p("log", "slurmctld.log"))

    # use as a context manager --------------------------------------------------------------
    def __enter__(self) -> "LocalSlurm":
        self.start()
        self._saved_env = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved_env is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._saved_env
        self.stop()

    # tear-down ----------------------------------------------------------------------------
    def stop(self) -> None:
        """scancel everything, then stop daemons in order: slurmd, slurmctld, slurmdbd, mariadbd, munged."""
        if self.conf.exists():
            subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self._environ())
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop_pidfile(name)
        if self._own_base and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def _stop_pidfile(self, name: str) -> None:
        pids = []
        for candidate in (self.p("run", f"{name}.pid"), self.p("run", f"{name}.pid.launcher")):
            try:
                pids.append(int(candidate.read_text().strip()))
            except (OSError, ValueError):
                pass
        for pid in set(pids):
            _terminate(pid)


def _terminate(pid: int, grace: float = 10.0) -> None:
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Start or stop a single-node Slurm under DIR.")
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("dir")
    args = ap.parse_args(argv)
    slurm = LocalSlurm(args.dir, keep=True)
    slurm.base.mkdir(parents=True, exist_ok=True)
    if args.action == "up":
        slurm.start()
        print(f"export SLURM_CONF={slurm.conf}")
    else:
        slurm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
