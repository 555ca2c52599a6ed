"""The cluster controller: accepts batches, plans them, and drives the dispatcher.

:func:`plan_batch` is pure planning (every job validated and cut into segments before
anything is stored), so a bad batch is refused whole. :class:`Controller` ties a store, an
engine and a dispatcher together in one event loop; ``qfarm run`` uses it with an embedded
local cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qfarm import jobtypes
from qfarm.config import logs_dir
from qfarm.dispatcher import Dispatcher
from qfarm.engine import Engine, NodeSpec
from qfarm.errors import InvalidRequest
from qfarm.model import FINAL_BATCH_STATES, Batch, BatchRequest, BatchState, JobState, NodeState
from qfarm.pki import ClusterAuthority, ephemeral
from qfarm.storage import ClusterStorage
from qfarm.store import Change, PlannedJob, Store
from qfarm.supervisor import reap_leftovers

# Under the data dir's logs folder: what the engine and the libraries under it print, kept
# off the user's terminal.
ENGINE_LOG = "engine.log"


def plan_batch(
    request: BatchRequest, instances: Mapping[str, int] | None = None
) -> list[PlannedJob]:
    """Validate and plan every job of a batch; raise :class:`InvalidRequest` on the first
    problem, naming the job when the batch has several. ``instances`` (service -> instances
    on the farm) sizes the segments of job types that fit them to the farm.
    """
    if not request.jobs:
        raise InvalidRequest("a batch needs at least one job")
    names: dict[str, int] = {}
    for index, job in enumerate(request.jobs):
        name = job.name or f"job {index + 1}"
        if name in names:
            raise InvalidRequest(f"two jobs are named {name!r}: job names must be unique")
        names[name] = index
    claimed: dict[str, str] = {}
    planned: list[PlannedJob] = []
    for index, job in enumerate(request.jobs):
        name = job.name or f"job {index + 1}"
        prefix = f"{name}: " if len(request.jobs) > 1 else ""
        if job.retries < 0:
            raise InvalidRequest(f"{prefix}retries cannot be negative")
        if job.timeout is not None and job.timeout <= 0:
            raise InvalidRequest(f"{prefix}timeout must be a positive number of seconds")
        depends: list[int] = []
        for dep in job.depends_on:
            if dep not in names:
                raise InvalidRequest(f"{prefix}depends on {dep!r}, which is not in the batch")
            if names[dep] >= index:
                raise InvalidRequest(f"{prefix}can only depend on jobs written before it")
            depends.append(names[dep])
        if request.serialize and index > 0 and index - 1 not in depends:
            depends.append(index - 1)
        try:
            spec, plans = jobtypes.plan_job(job.job_type, job.spec, claimed, instances)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{prefix}{exc}") from None
        planned.append(
            PlannedJob(
                name=name,
                job_type=job.job_type,
                service=jobtypes.get(job.job_type).service,
                spec=spec,
                retries=job.retries,
                timeout=job.timeout,
                depends_on=tuple(depends),
                plans=plans,
            )
        )
    return planned


def request_digest(request: BatchRequest, planned: Sequence[PlannedJob]) -> str:
    """What a batch asks for, as a SHA-256 of its planned form: the same command run again
    in the same place (same options, same files planned into the same segments) has the
    same digest, and anything that would change a segment's work changes it."""
    shape = {
        "name": request.name,
        "owner": request.owner,
        "priority": request.priority,
        "serialize": request.serialize,
        "jobs": [
            {
                "name": job.name,
                "job_type": job.job_type,
                "service": job.service,
                "spec": job.spec,
                "retries": job.retries,
                "timeout": job.timeout,
                "depends_on": list(job.depends_on),
                "plans": [
                    [plan.index, plan.kind.value, plan.label, plan.spec, plan.frames]
                    for plan in job.plans
                ],
            }
            for job in planned
        ],
    }
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class RunLock:
    """An advisory lock file that a process holds while it runs a batch: held, the batch
    has a live runner; released (the process ended, however it ended), it is free to be
    resumed. The kernel drops a dead process's locks, so nothing is ever left stale."""

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
        return True

    def release(self) -> None:
        if self._fd is not None:
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
    cores = os.cpu_count() or 1
    count = count or (2 if cores >= 2 else 1)
    per_node = instances or max(1, cores // count)
    wanted = {"command": per_node, "transcode": instances or 1, "render": instances or 1}
    if services is not None:
        wanted = {name: n for name, n in wanted.items() if name in set(services)}
    offered = dict(wanted) if _needs_no_tools(wanted) else _offerable(wanted)
    return [NodeSpec(name=f"local-{i + 1}", services=dict(offered)) for i in range(count)]


def _needs_no_tools(services: Mapping[str, int]) -> bool:
    from qfarm.node import SERVICE_TOOLS

    return not any(SERVICE_TOOLS.get(name) for name in services)


def _offerable(services: dict[str, int]) -> dict[str, int]:
    from qfarm.node import offerable_services

    offered, _ = offerable_services(services)
    return offered


def services_of(request: BatchRequest) -> set[str] | None:
    """The services a batch's jobs run on; None when a job type is unknown (planning then
    says so)."""
    try:
        return {jobtypes.get(job.job_type).service for job in request.jobs}
    except InvalidRequest:
        return None


@dataclass
class Controller:
    """The service layer: every action a client can take, in one place for the CLI's
    embedded runs and for the HTTP API alike.
    """

    store: Store
    engine: Engine
    dispatcher: Dispatcher
    data_dir: Path
    # The cluster CA that admits nodes; None for an embedded cluster or an external scheduler.
    authority: ClusterAuthority | None = None
    _loop_task: asyncio.Task[None] | None = None
    _listeners: set[asyncio.Queue[list[Change]]] = field(default_factory=set)

    @classmethod
    async def embedded(
        cls,
        store: Store,
        data_dir: Path,
        nodes: Iterable[NodeSpec],
        *,
        only_own_batches: bool = True,
    ) -> Controller:
        """A controller with its own local cluster, as ``qfarm run`` starts it: its
        processes share keys that only they hold, so nothing else joins or connects."""
        logs_dir(data_dir).mkdir(parents=True, exist_ok=True)
        engine = await Engine.start_local(
            list(nodes),
            local_directory=data_dir / "workers",
            tls=ephemeral(),
            log_path=logs_dir(data_dir) / ENGINE_LOG,
        )
        return cls._with(store, engine, data_dir, set() if only_own_batches else None)

    @classmethod
    async def start(
        cls,
        store: Store,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        scheduler: str | None = None,
        scheduler_port: int = 0,
        dashboard: bool = False,
    ) -> Controller:
        """A cluster controller whose nodes join from outside: a Dask scheduler in this
        process on ``host:scheduler_port``, which takes only nodes holding a certificate of
        the cluster CA (made here at the first start), or an existing one at ``scheduler``.
        ``dashboard``: the scheduler serves Dask's dashboard on a free port of ``host``
        (``controller.engine.dashboard_url``); off by default, it takes no port at all.
        """
        # Whatever a previous controller process left out on nodes is lost to us: queue it
        # again before anything is dispatched.
        store.requeue_active("the controller restarted")
        authority = None
        if scheduler:
            engine = await Engine.connect(scheduler)
        else:
            authority = ClusterAuthority.open(data_dir)
            engine = await Engine.start_local(
                [],
                host=host,
                port=scheduler_port,
                local_directory=data_dir / "workers",
                tls=authority.controller_files(),
                dashboard=dashboard,
            )
        controller = cls._with(store, engine, data_dir, None)
        controller.authority = authority
        return controller

    @classmethod
    def _with(
        cls, store: Store, engine: Engine, data_dir: Path, batch_ids: set[int] | None
    ) -> Controller:
        dispatcher = Dispatcher(store, engine, logs_dir=logs_dir(data_dir), batch_ids=batch_ids)
        controller = cls(store, engine, dispatcher, data_dir)
        dispatcher.on_changes = controller._broadcast
        controller._loop_task = asyncio.create_task(dispatcher.run())
        return controller

    # ------------------------------------------------------------------ actions

    def farm_instances(self) -> dict[str, int]:
        """Service -> instances on the nodes that take work now."""
        total: Counter[str] = Counter()
        for name, node in self.dispatcher.nodes.items():
            if name not in self.dispatcher.disabled:
                total.update(node.services)
        return dict(total)

    def plan(self, request: BatchRequest) -> list[PlannedJob]:
        """Plan a batch for this farm (may read media files: call it off the event loop)."""
        return plan_batch(request, self.farm_instances())

    def submit(self, request: BatchRequest, planned: list[PlannedJob] | None = None) -> int:
        """Store a batch (planned here unless the caller already did) and queue it."""
        if planned is None:
            planned = self.plan(request)
        batch_id = self.store.add_batch(request, planned)
        self.dispatcher.watch(batch_id)
        self._broadcast([Change("batch", batch_id, self.store.batch(batch_id).state, batch_id)])
        return batch_id

    def adopt(self, batch_id: int) -> None:
        """Run a batch already in the store (a `qfarm run` stored or reopened it)."""
        self.dispatcher.watch(batch_id)
        self._broadcast([Change("batch", batch_id, self.store.batch(batch_id).state, batch_id)])

    async def cancel(self, batch_id: int, reason: str = "canceled") -> None:
        await self.dispatcher.cancel_batch(batch_id, reason)

    def pause(self, batch_id: int) -> None:
        self._after(self.store.pause_batch(batch_id))

    def resume(self, batch_id: int) -> None:
        self._after(self.store.resume_batch(batch_id))

    def resubmit(self, batch_id: int) -> None:
        self._after(self.store.resubmit_batch(batch_id))

    def set_priority(self, batch_id: int, priority: int) -> None:
        self.store.set_priority(batch_id, priority)
        self.dispatcher.poke()

    def set_node_enabled(self, name: str, enabled: bool) -> None:
        """Drain a node (running segments finish, no new ones) or take it back."""
        self.store.set_node_state(name, NodeState.ONLINE if enabled else NodeState.DISABLED)
        self.dispatcher.set_disabled(name, not enabled)

    @property
    def storage(self) -> ClusterStorage:
        """Cluster storage: uploads and outputs for nodes without a shared disk."""
        return ClusterStorage(self.data_dir / "storage")

    async def remove(self, batch_id: int) -> None:
        """Forget an ended batch: its records, its logs, its cluster-storage outputs and the
        uploads that only it used. A batch still going must be canceled first."""
        uploads = self.store.remove_batch(batch_id)
        if self.dispatcher.batch_ids is not None:
            self.dispatcher.batch_ids.discard(batch_id)
        logs = logs_dir(self.data_dir) / f"batch-{batch_id}"
        # Outputs can be large: delete them off the event loop.
        await asyncio.to_thread(shutil.rmtree, logs, True)
        await asyncio.to_thread(self.storage.remove_batch_files, batch_id, uploads)
        self._broadcast([Change("batch", batch_id, "removed", batch_id)])

    def waiting(self, batch_id: int) -> dict[int, str]:
        """Why jobs of a batch with queued segments do not run them, for those that wait on
        more than a free instance: a job they depend on, or no node that may run them (no
        node with the service, the tools or the pinned versions; every one blocklisted).
        A held, paused or not-yet-started batch says so itself, and gets nothing here."""
        batch = self.store.batch(batch_id)
        if batch.state not in (BatchState.QUEUED, BatchState.RUNNING):
            return {}
        if batch.start_at is not None and batch.start_at > time.time():
            return {}
        jobs = self.store.jobs(batch_id)
        by_id = {job.id: job for job in jobs}
        queued = self.store.jobs_with_queued(batch_id)
        reasons: dict[int, str] = {}
        for job in jobs:
            if job.id not in queued:
                continue
            pending = [by_id[d].name for d in job.depends_on if by_id[d].state is not JobState.DONE]
            if pending:
                reasons[job.id] = f"waits for {', '.join(pending)} to finish"
                continue
            tools = jobtypes.get(job.job_type).required_tools(job.spec)
            found = self.dispatcher.eligible(job.id, job.service, tools, job.failed_nodes)
            if not found.nodes:
                reasons[job.id] = found.why_not
        return reasons

    def _after(self, changes: list[Change]) -> None:
        self._broadcast(changes)
        self.dispatcher.poke()

    # ------------------------------------------------------------------- events

    def subscribe(self) -> asyncio.Queue[list[Change]]:
        """A queue that receives every list of state changes from now on."""
        queue: asyncio.Queue[list[Change]] = asyncio.Queue(maxsize=1000)
        self._listeners.add(queue)
        return queue

    def listening(self, queue: asyncio.Queue[list[Change]]) -> bool:
        """False once a listener fell too far behind and was dropped."""
        return queue in self._listeners

    def unsubscribe(self, queue: asyncio.Queue[list[Change]]) -> None:
        self._listeners.discard(queue)

    def _broadcast(self, changes: list[Change]) -> None:
        if not changes:
            return
        for queue in list(self._listeners):
            if queue.full():  # a listener that stopped reading loses its stream
                self._listeners.discard(queue)
                continue
            queue.put_nowait(changes)

    # -------------------------------------------------------------------- state

    async def wait(self, batch_id: int, poll: float = 0.1) -> Batch:
        """Until the batch ends. Raises whatever stopped the dispatcher loop."""
        while True:
            batch = self.store.batch(batch_id)
            if batch.state in FINAL_BATCH_STATES:
                return batch
            if self._loop_task is not None and self._loop_task.done():
                self._loop_task.result()
                raise RuntimeError("the dispatcher stopped before the batch ended")
            await asyncio.sleep(poll)

    async def close(self) -> None:
        self.dispatcher.stop()
        if self._loop_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._loop_task, 10)
        await self.engine.close()
