"""The embedded cluster of `qfarm run`: which local nodes it starts, and the claim on a data
folder that keeps two runs from driving one store at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from qfarm.controller.planning import request_digest
from qfarm.domain.model import (
    BatchRequest,
)
from qfarm.engine.base import NodeRunner, NodeSpec
from qfarm.jobtypes.supervisor import reap_leftovers
from qfarm.store import PlannedJob, Store

# The descriptors of the RunLocks this process holds (see _forget_locks_in_child).
_held: set[int] = set()


def _forget_locks_in_child() -> None:
    # A flock belongs to the open file, which a fork shares: a forked worker of the
    # embedded cluster would keep the batch's lock after a kill -9 of `qfarm run`, until it
    # noticed and ended, and the next run would take the batch for a live one and start
    # another. The child closes its copies; the parent's lock stays as it was.
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


class RunLock:
    """An advisory lock file that a process holds while it runs a batch: held, the batch
    has a live runner; released (the process ended, however it ended), it is free to be
    resumed. The kernel drops a dead process's locks, so nothing is ever left stale; the
    processes this one forks do not hold it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, wait: bool = False) -> bool:
        """Take the lock; False (without waiting, unless ``wait``) when another holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        _held.add(fd)
        return True

    def release(self) -> None:
        if self._fd is not None:
            _held.discard(self._fd)
            os.close(self._fd)
            self._fd = None


@dataclass
class RunClaim:
    """The batch a `qfarm run` goes on with: resumed (``done`` of ``total`` segments were
    done already) or new, the lock that says it is being run, and the folder where its
    nodes record the process groups of its segments (see supervisor.reap_leftovers)."""

    batch_id: int
    lock: RunLock
    records: Path
    resumed: bool = False
    done: int = 0
    total: int = 0


def claim_run(
    store: Store,
    runs_dir: Path,
    request: BatchRequest,
    planned: list[PlannedJob],
    *,
    fresh: bool = False,
) -> RunClaim:
    """The batch to run for ``request``: the newest unfinished batch of the same request
    that no live process runs, reopened (its done segments kept), unless ``fresh``; else a
    new one. One lookup at a time (a lock of its own), so two identical runs started
    together never take the same batch."""
    digest = request_digest(request, planned)
    lookup = RunLock(runs_dir / "lookup.lock")
    lookup.acquire(wait=True)
    try:
        for batch in [] if fresh else store.unfinished_batches(digest):
            lock = RunLock(runs_dir / f"batch-{batch.id}.lock")
            if not lock.acquire():
                continue  # another `qfarm run` is running it now
            # A run killed outright left its segment processes running (they are in
            # sessions of their own): end them before their segments run again.
            records = runs_dir / f"batch-{batch.id}.processes"
            records.mkdir(exist_ok=True)
            reap_leftovers(records)
            counts = store.counts(batch.id)
            store.reopen_batch(batch.id, "its run was interrupted")
            return RunClaim(
                batch.id, lock, records, resumed=True, done=counts.done, total=counts.total
            )
        batch_id = store.add_batch(request, planned, digest)
        lock = RunLock(runs_dir / f"batch-{batch_id}.lock")
        lock.acquire()
        records = runs_dir / f"batch-{batch_id}.processes"
        records.mkdir(exist_ok=True)
        return RunClaim(batch_id, lock, records)
    finally:
        lookup.release()


def default_local_nodes(
    count: int | None = None,
    instances: int | None = None,
    services: Iterable[str] | None = None,
) -> list[NodeSpec]:
    """Local service nodes for an embedded cluster: together, one command instance per core,
    and one transcode and one render instance per node (ffmpeg and renderers spread their own
    work over the cores) when their tools run here. ``services``: only those (what the
    batch's jobs use), so a command job's run spends nothing on finding ffmpeg and asking
    each renderer its version (about 0.7 s).
    """
    from qfarm.node.facts import usable_cores

    cores = usable_cores()
    count = count or (2 if cores >= 2 else 1)
    per_node = instances or max(1, cores // count)
    wanted = {"command": per_node, "transcode": instances or 1, "render": instances or 1}
    if services is not None:
        wanted = {name: n for name, n in wanted.items() if name in set(services)}
    offered = dict(wanted) if _needs_no_tools(wanted) else _offerable(wanted)
    return [NodeSpec(name=f"local-{i + 1}", services=dict(offered)) for i in range(count)]


def local_runner() -> NodeRunner:
    """What the local nodes of an embedded cluster run segments with: no controller to
    fetch cluster storage from (its jobs use the folders they name), no path map, and facts
    without tool versions where no service needs a tool."""
    from qfarm.node.config import NodeConfig
    from qfarm.node.runner import SegmentRunner

    return SegmentRunner(NodeConfig(local=True))


def _needs_no_tools(services: Mapping[str, int]) -> bool:
    from qfarm.node.facts import SERVICE_TOOLS

    return not any(SERVICE_TOOLS.get(name) for name in services)


def _offerable(services: dict[str, int]) -> dict[str, int]:
    from qfarm.node.facts import offerable_services

    offered, _ = offerable_services(services)
    return offered
