"""The node side of the engine: what runs inside a Dask worker of a service node.

The Dask task that runs one segment attempt (reporting its start, progress and end as Dask
events), the worker plugin that carries the node's runner into the worker process (ending
its segments when the worker closes, adding its host's load to each heartbeat), and the
nanny that keeps a node's worker alive. The runner (see engine.base.NodeRunner) is given by
whoever starts the node; nothing here imports the node package. Tasks and results cross
Dask as plain dicts, converted here and in engine.dask only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import dask
from distributed import Nanny, Worker, WorkerPlugin, get_worker
from distributed.core import Status
from distributed.security import Security

from qfarm.domain.messages import AttemptResult, SegmentTask
from qfarm.engine.base import NodeRunner, NodeSpec
from qfarm.engine.settings import apply_farm_defaults
from qfarm.security.pki import TlsFiles

apply_farm_defaults()

EVENT_TOPIC = "qfarm-segment"
PROGRESS_INTERVAL = 0.5  # seconds between progress events from one segment
PLUGIN_NAME = "qfarm-node"


_CLOSING = frozenset({Status.closing, Status.closing_gracefully, Status.closed})


class WorkerClosing(RuntimeError):
    """A segment's processes were ended because its worker closes, not by their own end."""


# Signals a service manager stops a whole node with: systemd (KillMode=control-group) and
# Slurm signal every process of the unit or job step, segments included, not qfarm alone.
# A segment's exit status says so as -N (the signal ended it) or 128+N (its shell's report).
_STOP_SIGNALS = frozenset(
    code for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) for code in (-sig, 128 + sig)
)
STOP_GRACE_SECONDS = 3.0  # how long such an end waits for its worker to begin closing


def _stopped_with_its_node(attempt: AttemptResult, worker: Any) -> bool:
    """Whether an attempt that a stop signal ended, which qfarm did not send, went down with
    its node: the node was signalled too, and its worker begins to close within moments.
    Such an end is no failure of the segment's. Runs in the task's thread: the wait holds
    nothing of the worker's event loop."""
    if attempt.ok or attempt.killed or attempt.exit_code not in _STOP_SIGNALS:
        return False
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while worker.status not in _CLOSING:
        if time.monotonic() > deadline:
            return False  # the node goes on: someone else ended it, a failure as any
        time.sleep(0.05)
    return True


def run_on_node(payload: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: runs on a worker thread of the chosen node."""
    worker = get_worker()
    task = SegmentTask.from_dict(payload)
    key = task.key
    last_progress = [0.0]

    def on_start(pid: int) -> None:
        worker.log_event(
            EVENT_TOPIC, {"key": key, "kind": "started", "pid": pid, "at": time.time()}
        )

    def on_progress(fraction: float) -> None:
        # The end of a segment reaches the controller as its result; no report needed.
        now = time.monotonic()
        if fraction >= 1.0 or now - last_progress[0] < PROGRESS_INTERVAL:
            return
        last_progress[0] = now
        worker.log_event(
            EVENT_TOPIC,
            {"key": key, "kind": "progress", "fraction": fraction, "at": time.time()},
        )

    attempt = _runner(worker).run(task, on_start, on_progress)
    if (attempt.killed and worker.status in _CLOSING) or _stopped_with_its_node(attempt, worker):
        # Killed because this worker closes (its node stops, or is shut out): no end of the
        # segment's own. Reported as one, it would count as a failure against its retries;
        # raised, the task is lost with its node, and the segment is queued again.
        raise WorkerClosing(f"{worker.name} closed while {key} ran: its processes were ended")
    result = attempt.to_dict()
    # The result travels as an event too: it reaches the controller with the start and
    # progress reports, with no request per task. The task's own result is the fallback.
    worker.log_event(EVENT_TOPIC, {"key": key, "kind": "ended", "result": result})
    return result


def _runner(worker: Any) -> NodeRunner:
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.runner is None:
        raise RuntimeError(f"worker {worker.name} was started without a qfarm node runner")
    runner: NodeRunner = plugin.runner
    return runner


# Heartbeat metrics of a node's host, added by the worker plugin below.
HOST_CPU = "qfarm_host_cpu_percent"
HOST_MEMORY = "qfarm_host_memory_used"
AVAILABILITY = "qfarm_availability"  # NodeRunner.availability: 1 takes work, 0 or -1 not


async def kill_on_node(keys: list[str], dask_worker: Any = None) -> list[bool]:
    """Run by the controller on one worker (Dask passes ``dask_worker``): end these
    attempts' processes; whether each was running. In a thread: the kill waits for the
    processes to end, and the worker's event loop must go on answering the scheduler
    meanwhile (a worker that does not is taken for lost)."""
    return await asyncio.to_thread(_runner(dask_worker).kill_many, keys)


def suspend_on_node(key: str, dask_worker: Any = None) -> bool:
    """Run by the controller on one worker: stop one attempt's processes (SIGSTOP)."""
    return _runner(dask_worker).suspend(key)


def resume_on_node(key: str, dask_worker: Any = None) -> bool:
    """Run by the controller on one worker: continue one attempt's processes (SIGCONT)."""
    return _runner(dask_worker).resume(key)


def facts_of_node(services: dict[str, int], dask_worker: Any = None) -> dict[str, Any]:
    """Run by the controller on one worker (Dask passes ``dask_worker``). A worker started
    without qfarm's plugin (a plain `dask worker` joined by hand) still says which qfarm it
    imports, so the dispatcher refuses it for its version rather than for its silence, and
    that it has no runner (``"runner": False``), so that one of the controller's version is
    refused too: it could run no segment."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.runner is None:
        import qfarm

        return {
            "version": qfarm.__version__,
            "fingerprint": {"qfarm": qfarm.__version__},
            "runner": False,
        }
    facts: dict[str, Any] = plugin.runner.facts(services)
    return facts


class NodePlugin(WorkerPlugin):
    """Carries the node's runner (and with it the node's configuration) into the worker
    process. It ends the worker's segment processes when the worker closes (its scheduler
    went away, say): without that a worker would wait on the threads that wait on those
    processes, and the processes would go on writing for a controller that is gone.

    It also adds the node's host load to the metrics each heartbeat carries: the worker's
    own CPU and memory say nothing of the segment processes it runs.
    """

    name = PLUGIN_NAME

    def __init__(self, runner: NodeRunner | None) -> None:
        self.runner = runner

    def setup(self, worker: Any) -> None:
        runner = self.runner
        if runner is None:  # a bare Dask cluster (a benchmark's): nothing of ours runs
            return
        worker.metrics[HOST_CPU] = lambda _worker: runner.host_load()["cpu_percent"]
        worker.metrics[HOST_MEMORY] = lambda _worker: runner.host_load()["memory_used"]
        worker.metrics[AVAILABILITY] = lambda _worker: runner.availability()

    def teardown(self, worker: Any) -> None:
        if self.runner is not None:
            self.runner.kill_all()


class _LocalWorker(Worker):
    """The worker of an embedded cluster's node, a child of the `qfarm run` process.

    It shares the terminal's process group, so a Ctrl-C reaches it too: it ignores SIGINT
    (the parent cancels the batch and closes the cluster, which ends the worker) instead of
    dying with a KeyboardInterrupt traceback. With ``log_path`` its stdout and stderr go to
    that file: Dask's warnings and anything else a library prints stay off the terminal
    (and out of ``--json`` output).
    """

    def __init__(self, *args: Any, log_path: str | None = None, **kwargs: Any) -> None:
        _detach_from_terminal(log_path)
        super().__init__(*args, **kwargs)


def _detach_from_terminal(log_path: str | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A fork keeps the handler its parent's loop set for SIGTERM (one that does nothing
    # here): the worker must end on SIGTERM, as its nanny's stop expects.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A forked child inherits its parent's asyncio wake-up descriptor: a signal here must
    # not wake the parent's loop as if it were the parent's own.
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    if log_path is None:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


# Set while the first workers of an embedded cluster are being forked (see forked_start).
_forking_workers = False


def _after_fork_in_child() -> None:
    # At once, before anything of Dask runs in the child: a Ctrl-C in the fork's first
    # moments must neither kill it with a traceback nor wake its parent's loop.
    if _forking_workers:
        _detach_from_terminal()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def forked_start() -> Iterator[None]:
    """Start worker processes by fork, while this process has no thread of its own yet
    (`qfarm run` before its progress bar, `qfarm node` once it has joined: Dask's
    process-watching threads aside). A fork
    imports nothing: a spawned worker imports qfarm, Dask and the main script afresh,
    about 0.8 s of CPU each, which is most of `qfarm run`'s start-up on two cores. Dask's
    threads are made for this (they fork, and nothing else holds a lock meanwhile); a
    process that runs threads of its own (a test runner, an API server) spawns as before.
    A nanny that restarts a worker later spawns it: by then this process has threads."""
    global _forking_workers
    if threading.active_count() > 1:
        yield
        return
    _forking_workers = True
    try:
        with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
            yield
    finally:
        _forking_workers = False


def security(tls: TlsFiles | None) -> Security:
    """Dask's TLS settings for our cluster keys: every role (scheduler, worker, client)
    presents the certificate it was given and requires one from the same CA of its peer.
    Without keys (an external scheduler), whatever Dask's own configuration says."""
    if tls is None:
        return Security()
    return Security(
        require_encryption=True,
        tls_ca_file=tls.ca,
        tls_scheduler_cert=tls.cert,
        tls_scheduler_key=tls.key,
        tls_worker_cert=tls.cert,
        tls_worker_key=tls.key,
        tls_client_cert=tls.cert,
        tls_client_key=tls.key,
    )


def make_nanny(
    scheduler_address: str,
    spec: NodeSpec,
    host: str,
    local_directory: Path | None,
    tls: TlsFiles | None,
    log_path: Path | None = None,
    local: bool = False,
    runner: NodeRunner | None = None,
) -> Any:
    """A nanny for one node, whose worker runs segments with ``runner``; ``local``: a node
    of an embedded cluster (see _LocalWorker)."""
    extra: dict[str, Any] = {}
    if local:
        extra = {
            "worker_class": _LocalWorker,
            "log_path": str(log_path) if log_path else None,
        }
    return Nanny(
        scheduler_address,
        security=security(tls),
        host=host,
        name=spec.name,
        nthreads=max(1, sum(spec.services.values())),
        # Its services' instances and its counted resources (GPUs and the like), so Dask's
        # own resource check agrees with the dispatcher's accounting of both.
        resources={**spec.services, **{k: v for k, v in spec.resources.items() if v > 0}},
        local_directory=str(local_directory) if local_directory else None,
        dashboard=False,
        plugins=(NodePlugin(runner),),
        **extra,
    )


async def run_node(
    scheduler_address: str,
    spec: NodeSpec,
    *,
    host: str,
    local_directory: Path | None,
    runner: NodeRunner,
    tls: TlsFiles | None = None,
    leave: Awaitable[None] | None = None,
) -> None:
    """Be one service node of the scheduler at ``scheduler_address`` until it goes away.

    The worker runs under a nanny, which restarts it if it dies; this returns when the nanny
    closes: the scheduler went away, or the controller told the node to leave; or once
    ``leave`` is done (the node decided to go: idle too long), closing the nanny.
    """
    nanny = make_nanny(scheduler_address, spec, host, local_directory, tls, runner=runner)
    # Forked when this process has no thread of its own (a `qfarm node` that has just
    # joined): a node's start costs one interpreter's imports, not two.
    try:
        # Inside the try: a node stopped while its worker starts closes that worker too.
        with forked_start():
            await nanny.start()
        finished = asyncio.ensure_future(nanny.finished())
        waits = [finished]
        if leave is not None:
            waits.append(asyncio.ensure_future(leave))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    finally:
        with contextlib.suppress(Exception):
            await nanny.close()
