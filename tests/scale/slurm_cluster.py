"""A private, real Slurm on this host for the tests: slurmctld and slurmd started from a
temporary folder (their own slurm.conf, ports, state, spool, logs; ``SLURM_CONF`` names it),
with the host's munged (started first if none answers). Stopped and removed afterwards, jobs
first, as ../shared/SLURM.md describes."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import wait_until_sync

DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel")


def missing() -> str | None:
    """Why a private Slurm cannot run here, or None."""
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if absent:
        return f"Slurm is not installed here (no {', '.join(absent)}): scripts/test installs it"
    if os.geteuid() != 0:
        return "a private Slurm runs slurmd, which must be root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _munge_works() -> bool:
    made = subprocess.run(["munge", "-n"], capture_output=True)
    if made.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=made.stdout, capture_output=True).returncode == 0


def _ensure_munge() -> subprocess.Popen[bytes] | None:
    """The host's munged, or one started here (returned, to be stopped afterwards)."""
    if _munge_works():
        return None
    key = Path("/etc/munge/munge.key")
    if not key.exists() or key.stat().st_size == 0:
        subprocess.run(["mungekey", "--create"], check=True)
    shutil.chown(key, "munge", "munge")
    key.chmod(0o600)
    for folder in (Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge")):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "munge", "munge")
    # setpriv execs munged in place: the process is munged's own, stopped by its pid.
    munged = subprocess.Popen(
        ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups",
         "/usr/sbin/munged", "--foreground"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_until_sync(_munge_works, timeout=20, what="munged to answer")
    return munged


def _conf(root: Path) -> str:
    host = socket.gethostname().split(".")[0]
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = int(int(line.split()[1]) / 1024 * 0.9)
    return f"""ClusterName=qfarmtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={host} CPUs=8 RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def private_slurm(root: Path) -> Iterator[dict[str, str]]:
    """Run a private Slurm under ``root``; yields the environment its clients need."""
    munged = _ensure_munge()
    for folder in ("state", "spool"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(_conf(root))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [
        subprocess.Popen(
            [f"/usr/sbin/{name}", "-D", *extra],
            env=env, stdout=open(root / f"{name}.out", "w"),  # noqa: SIM115 - the daemon's
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, extra in (("slurmctld", ["-i"]), ("slurmd", []))
    ]  # fmt: skip

    def idle() -> bool:
        got = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
        return "idle" in got.stdout

    try:
        wait_until_sync(idle, timeout=60, what="the private Slurm's node to be idle")
        yield {"SLURM_CONF": str(conf)}
    finally:
        listed = subprocess.run(
            ["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True
        )
        jobs = listed.stdout.split()
        if jobs:
            subprocess.run(["scancel", *jobs], env=env, capture_output=True)

        def no_job_processes() -> bool:
            pids = subprocess.run(["scontrol", "listpids"], env=env, capture_output=True, text=True)
            rows = [line.split() for line in pids.stdout.splitlines()[1:]]
            return not any(row and row[0].isdigit() for row in rows)

        with contextlib.suppress(AssertionError):  # stopped below regardless
            wait_until_sync(no_job_processes, timeout=20, what="the jobs' processes to end")
        started = [*daemons, *([munged] if munged else [])]
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
