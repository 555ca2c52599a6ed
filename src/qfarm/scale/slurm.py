"""qfarm nodes as Slurm jobs, through dask-jobqueue.

dask-jobqueue's ``SLURMJob`` writes the job script (its ``#SBATCH`` header from the
partition, wall time, cores, memory and extra directives), submits it with ``sbatch`` and
cancels it with ``scancel``; the script's command is a qfarm node instead of a Dask worker:
``python -m qfarm node --controller URL --services ... --idle-exit ...``, named after its
Slurm job. The node's join token and client token reach it in the environment ``sbatch``
passes on (Slurm's default ``--export=ALL``), never in the script, which Slurm keeps on disk.

``SLURMJob`` keeps the command in ``_command_template``, which this module sets: that is why
dask-jobqueue is pinned to one minor version.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfarm.domain.errors import QfarmError

JOB_NAME = "qfarm-node"
# squeue states of a job that has not started running yet: cancelled first when shrinking.
WAITING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "RESV_DEL_HOLD"})


@dataclass(frozen=True)
class SlurmNodeSpec:
    """What each node job asks of Slurm, and how its node is started."""

    controller_url: str
    services: Mapping[str, int]
    partition: str | None = None
    walltime: str = "01:00:00"
    cores: int = 1
    memory: str = "1GB"
    account: str | None = None
    idle_exit: float = 300.0  # seconds a node stays with nothing to do before it leaves
    data_dir: str = "/tmp/qfarm-node-$SLURM_JOB_ID"  # each node's own, on its machine
    log_dir: str | None = None  # where Slurm writes each job's output
    python: str = sys.executable  # the same path on the cluster's machines
    host: str = "127.0.0.1"  # where each node listens for the cluster (its own address)
    extra_directives: Sequence[str] = ()  # more #SBATCH lines: "--gres=gpu:1"
    environment: Mapping[str, str] = field(default_factory=dict)  # tokens, passed by sbatch

    def node_command(self) -> str:
        services = ",".join(f"{name}={count}" for name, count in self.services.items())
        return " ".join(
            [
                shlex.quote(self.python), "-m", "qfarm", "node",
                "--controller", shlex.quote(self.controller_url),
                "--services", shlex.quote(services),
                "--name", "qfarm-slurm-$SLURM_JOB_ID",
                "--host", shlex.quote(self.host),
                "--data-dir", self.data_dir,
                "--idle-exit", f"{self.idle_exit:g}s",
            ]
        )  # fmt: skip


def _job(spec: SlurmNodeSpec) -> Any:
    from dask_jobqueue.slurm import SLURMJob

    class NodeJob(SLURMJob):
        """A SLURMJob whose submission carries the node's environment to sbatch."""

        async def _submit_job(self, script_filename: str) -> str:
            env = {**os.environ, **spec.environment}
            return str(
                await self._call([*shlex.split(self.submit_command), script_filename], env=env)
            )

    job = NodeJob(
        scheduler=spec.controller_url,
        name=JOB_NAME,
        job_name=JOB_NAME,
        queue=spec.partition,
        account=spec.account,
        walltime=spec.walltime,
        cores=spec.cores,
        memory=spec.memory,
        processes=1,
        log_directory=spec.log_dir,
        job_extra_directives=list(spec.extra_directives),
        python=spec.python,
    )
    job._command_template = spec.node_command()
    return job


def job_script(spec: SlurmNodeSpec) -> str:
    """The script each node job runs (``qfarm scale slurm --dry-run`` prints it)."""
    return str(_job(spec).job_script())


class SlurmNodes:
    """The node jobs this scaler submitted: submit more, see which still run, cancel."""

    def __init__(self, spec: SlurmNodeSpec) -> None:
        self.spec = spec
        self.jobs: dict[str, Any] = {}  # Slurm job id -> its SLURMJob

    async def submit(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            job = _job(self.spec)
            try:
                await job.start()
            except RuntimeError as exc:  # sbatch refused it: say why in one line
                raise QfarmError(f"sbatch refused the node job: {_last_line(exc)}") from None
            self.jobs[str(job.job_id)] = job
            ids.append(str(job.job_id))
        return ids

    async def states(self) -> dict[str, str]:
        """Job id -> squeue state of each job still known to Slurm; ended ones are
        forgotten."""
        proc = await asyncio.create_subprocess_exec(
            "squeue", "-h", "-u", getpass.getuser(), "-o", "%i %T",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise QfarmError(f"squeue failed: {err.decode().strip().splitlines()[-1:]}")
        seen = dict(line.split(maxsplit=1) for line in out.decode().splitlines() if line.strip())
        for gone in set(self.jobs) - set(seen):
            del self.jobs[gone]
        return {job_id: seen[job_id] for job_id in self.jobs}

    async def cancel(self, ids: Sequence[str]) -> None:
        for job_id in ids:
            job = self.jobs.pop(job_id, None)
            if job is not None:
                await job.close()

    async def cancel_all(self) -> None:
        await self.cancel(list(self.jobs))


def _last_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
