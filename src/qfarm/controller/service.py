"""The cluster controller: a store, an engine and a dispatcher in one event loop.

:class:`Controller` accepts planned batches (see :mod:`qfarm.controller.planning`), drives
the dispatcher, and answers the API; ``qfarm run`` uses it with an embedded local cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qfarm import jobtypes
from qfarm.config import logs_dir
from qfarm.controller.activity import NodeActivity, node_activity
from qfarm.controller.dispatcher import Dispatcher
from qfarm.controller.estimates import Estimates
from qfarm.controller.local import local_runner
from qfarm.controller.notify import Notifier, check_notifications
from qfarm.controller.planning import plan_batch
from qfarm.controller.retention import Retention, keep, remove_ended_before
from qfarm.controller.storage import ClusterStorage
from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    FINAL_BATCH_STATES,
    Batch,
    BatchRequest,
    BatchState,
    JobState,
    NodeState,
)
from qfarm.domain.requirements import check_amount, check_resource_name, limit_wait
from qfarm.engine.base import NODE_TIMEOUT_SECONDS, Engine, NodeSpec
from qfarm.engine.dask import DaskEngine
from qfarm.security.pki import ClusterAuthority, ephemeral
from qfarm.store import Change, PlannedJob, Store

# Under the data dir's logs folder: what the engine and the libraries under it print, kept
# off the user's terminal.
ENGINE_LOG = "engine.log"


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
    # ETAs of the batches that give out work (made in _with: they read the dispatcher's farm).
    estimates: Estimates | None = None
    _loop_task: asyncio.Task[None] | None = None
    _listeners: set[asyncio.Queue[list[Change]]] = field(default_factory=set)
    # Removes ended batches kept long enough (served controllers only; see start).
    retention: Retention | None = None
    _retention_task: asyncio.Task[None] | None = None
    # Email and webhooks when batches end (qfarm controller sets it; None: none are sent).
    notifier: Notifier | None = None

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
        engine = await DaskEngine.start_local(
            list(nodes),
            local_directory=data_dir / "workers",
            tls=ephemeral(),
            log_path=logs_dir(data_dir) / ENGINE_LOG,
            runner=local_runner(),
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
        fair_share: bool = False,
        node_timeout: float = NODE_TIMEOUT_SECONDS,
    ) -> Controller:
        """A cluster controller whose nodes join from outside: a Dask scheduler in this
        process on ``host:scheduler_port``, which takes only nodes holding a certificate of
        the cluster CA (made here at the first start), or an existing one at ``scheduler``.
        ``dashboard``: the scheduler serves Dask's dashboard on a free port of ``host``
        (``controller.engine.dashboard_url``); off by default, it takes no port at all.
        ``node_timeout``: seconds without a heartbeat after which a node is given up.
        """
        # Whatever a previous controller process left out on nodes is lost to us: queue it
        # again before anything is dispatched.
        store.requeue_active("the controller restarted")
        authority = None
        if scheduler:
            engine = await DaskEngine.connect(scheduler)
        else:
            authority = ClusterAuthority.open(data_dir)
            engine = await DaskEngine.start_local(
                [],
                host=host,
                port=scheduler_port,
                local_directory=data_dir / "workers",
                tls=authority.controller_files(),
                dashboard=dashboard,
                node_timeout=node_timeout,
            )
        if authority is not None and (crl := authority.crl()) is not None:
            engine.refuse(crl)  # nodes revoked before this start stay shut out
        controller = cls._with(store, engine, data_dir, None, fair_share, node_timeout)
        controller.authority = authority
        # Ended batches go once kept long enough (qfarm controller --keep): a served
        # controller's job, never an embedded run's, whose batches are the user's own.
        controller.retention = Retention(store, controller.remove)
        controller._retention_task = asyncio.create_task(controller.retention.run())
        return controller

    @classmethod
    def _with(
        cls,
        store: Store,
        engine: Engine,
        data_dir: Path,
        batch_ids: set[int] | None,
        fair_share: bool = False,
        node_timeout: float = NODE_TIMEOUT_SECONDS,
    ) -> Controller:
        dispatcher = Dispatcher(
            store, engine, logs_dir=logs_dir(data_dir), batch_ids=batch_ids,
            fair_share=fair_share, node_timeout=node_timeout,
        )  # fmt: skip
        controller = cls(store, engine, dispatcher, data_dir)
        controller.estimates = Estimates(store.estimate_facts, dispatcher.farm)
        dispatcher.metrics.watch(store, dispatcher)
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
        check_notifications(self.notifier, request.notify)
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

    async def cancel_segments(self, batch_id: int, chosen: Collection[int]) -> None:
        """Cancel the chosen segments (ids) of a running batch; the rest runs on."""
        await self.dispatcher.cancel_segments(batch_id, chosen)

    def pause(self, batch_id: int) -> None:
        self._after(self.store.pause_batch(batch_id))

    async def suspend(self, batch_id: int) -> None:
        """Pause a batch and stop its running processes where they are (SIGSTOP)."""
        self._after(await self.dispatcher.suspend_batch(batch_id))

    async def resume(self, batch_id: int) -> None:
        """Resume a paused or held batch, continuing its suspended processes (SIGCONT)."""
        self._after(await self.dispatcher.resume_batch(batch_id))

    def resubmit(self, batch_id: int, chosen: Collection[int] | None = None) -> None:
        """Run an ended batch's failed and canceled segments again; ``chosen``: only those
        segments (ids)."""
        self._after(self.store.resubmit_batch(batch_id, chosen))

    def set_priority(self, batch_id: int, priority: int) -> None:
        self.store.set_priority(batch_id, priority)
        # No state moves, but the batch changed: watchers read it again.
        self._broadcast([Change("batch", batch_id, self.store.batch(batch_id).state, batch_id)])
        self.dispatcher.poke()

    def activity(self) -> dict[str, NodeActivity]:
        """What each node does now, as the dispatcher knows it (a copy)."""
        return node_activity(self.dispatcher)

    @property
    def dispatcher_task(self) -> asyncio.Task[None] | None:
        """The task running the dispatcher loop, while it runs: a server that serves this
        controller stops when it ends."""
        return self._loop_task

    def set_node_enabled(self, name: str, enabled: bool) -> None:
        """Drain a node (running segments finish, no new ones) or take it back."""
        self.store.set_node_state(name, NodeState.ONLINE if enabled else NodeState.DISABLED)
        self.dispatcher.set_disabled(name, not enabled)

    async def revoke_node(self, name: str) -> None:
        """Shut node ``name`` out for good: its certificates revoked (the scheduler refuses
        them in the handshake from now on), its connections closed so its running work is
        requeued, and its name and key barred from joining again. NotFound for a node that
        never joined; InvalidRequest on an external scheduler, which issues nothing."""
        if self.authority is None:
            raise InvalidRequest(
                "this controller issues no certificates (it uses an external scheduler, "
                "whose deployment decides who joins): disable the node instead"
            )
        self.engine.refuse(self.authority.revoke(name))
        with contextlib.suppress(NotFound):  # it may have joined and never registered
            self.set_node_enabled(name, False)
        # Lost before its worker is told to close: the ends of the processes it kills then
        # come too late to count as failures.
        await self.dispatcher.give_up_node(name, "node revoked")
        await self.engine.drop_node(name)

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

    async def remove_ended_before(self, cutoff: float, dry_run: bool = False) -> list[int]:
        """Remove every batch that ended before ``cutoff`` (epoch seconds), as
        :meth:`remove` does each; the ids removed (with ``dry_run``, those it would)."""
        if dry_run:
            return self.store.ended_before(cutoff)
        return await remove_ended_before(self.store, cutoff, self.remove)

    def set_retention(self, seconds: float | None) -> None:
        """Keep ended batches this long (None: for ever); the sweep follows at once."""
        keep(self.store, seconds)
        if self.retention is not None:
            self.retention.changed()

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
        left = self.dispatcher.limit_left()
        reasons: dict[int, str] = {}
        for job in jobs:
            if job.id not in queued:
                continue
            pending = [by_id[d].name for d in job.depends_on if by_id[d].state is not JobState.DONE]
            if pending:
                reasons[job.id] = f"waits for {', '.join(pending)} to finish"
                continue
            tools = jobtypes.get(job.job_type).required_tools(job.spec)
            found = self.dispatcher.eligible(
                job.id, job.service, tools, job.failed_nodes, job.requirements
            )
            if not found.nodes:
                reasons[job.id] = found.why_not
                continue
            limited = limit_wait(job.requirements.limits, self.dispatcher.limits, left)
            if limited:
                reasons[job.id] = limited
        return reasons

    # ------------------------------------------------------------------ limits

    def limits(self) -> dict[str, int]:
        return self.store.limits()

    def set_limit(self, name: str, count: int) -> None:
        """Set a farm-wide limit (qfarm limit set). Raises InvalidRequest."""
        check_resource_name(name, "limit")
        check_amount(count, "limit count")
        self.store.set_limit(name, count)
        self.dispatcher.set_limit(name, count)

    def remove_limit(self, name: str) -> None:
        """Raises NotFound for a limit that is not set."""
        self.store.remove_limit(name)
        self.dispatcher.set_limit(name, None)

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

    async def wait(self, batch_id: int, poll: float = 1.0) -> Batch:
        """Until the batch ends. Raises whatever stopped the dispatcher loop.

        Woken by the batch's own state changes (the stream every monitor reads) rather
        than by reading the store over and over: an embedded run that read it 50 times a
        second spent a tenth of the core its segments shared. ``poll`` bounds the wait
        for a change that is not broadcast, and for a dispatcher loop that stopped."""
        changes = self.subscribe()
        try:
            while True:
                batch = self.store.batch(batch_id)
                if batch.state in FINAL_BATCH_STATES:
                    return batch
                if self._loop_task is not None and self._loop_task.done():
                    self._loop_task.result()
                    raise RuntimeError("the dispatcher stopped before the batch ended")
                await _next_batch_change(changes, batch_id, poll)
        finally:
            self.unsubscribe(changes)

    async def close(self) -> None:
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        if self.notifier is not None:
            await self.notifier.close()
        self.dispatcher.stop()
        if self._loop_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._loop_task, 10)
        await self.engine.close()


async def _next_batch_change(
    changes: asyncio.Queue[list[Change]], batch_id: int, seconds: float
) -> None:
    """Return when ``changes`` brings a change of the batch itself (its state), or after
    ``seconds``: changes of its segments and jobs alone do not end a batch. On
    ``asyncio.timeout``, as qfarm.waits is, so a cancel of the wait is never lost."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                got = await changes.get()
                if any(c.kind == "batch" and c.batch_id == batch_id for c in got):
                    return
