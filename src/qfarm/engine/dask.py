"""The controller side of the engine adapter (with `worker`, the only code that imports Dask).

Dask gives qfarm membership, heartbeats, failure detection, comms and process management.
qfarm does not let it choose placement: the dispatcher names the node of every segment and
submits it only when that node has a free instance (see docs/architecture.md, decision 2), so
each task is pinned to one worker, restricted to its service's resource, and never retried by
Dask. A node is a Dask worker under a nanny whose ``resources`` are its service instances.

Segment processes report their start and progress as Dask events on one topic, which arrive
in an asyncio queue; results come back as task results, fetched together for every task that
finished since the last tick. The dispatcher takes both once per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
from distributed import Client, Scheduler

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.messages import AttemptResult, SegmentTask
from qfarm.engine.base import (
    NODE_TIMEOUT_SECONDS,
    EngineNode,
    NodeRunner,
    NodeSpec,
    TaskEnd,
    TaskEvent,
)
from qfarm.engine.worker import (
    AVAILABILITY,
    EVENT_TOPIC,
    HOST_CPU,
    HOST_MEMORY,
    facts_of_node,
    forked_start,
    kill_on_node,
    make_nanny,
    resume_on_node,
    run_on_node,
    security,
    suspend_on_node,
)
from qfarm.security.pki import TlsFiles

# How often the tasks still out are checked in the engine, for ends that sent no event.
SWEEP_SECONDS = 1.0
# How long a finished task's "ended" event may lag its completion before its result is
# fetched from the scheduler instead.
RESULT_GRACE_SECONDS = 1.0

# Events of our topic a scheduler of ours keeps once sent on. A segment's "ended" event
# carries its thumbnail (up to about 350 KB); Dask keeps the last 1000 events of every
# topic for get_events, which qfarm never calls, and pictures would pile up there.
EVENT_HISTORY = 16

log = logging.getLogger(__name__)


def _short_history(scheduler: Any) -> None:
    """Keep only :data:`EVENT_HISTORY` of our topic's events in ``scheduler`` (a Dask
    whose scheduler keeps them elsewhere keeps its own default)."""
    topics = getattr(getattr(scheduler, "_broker", None), "_topics", None)
    topic = topics[EVENT_TOPIC] if topics is not None else None
    if topic is not None and isinstance(getattr(topic, "events", None), deque):
        topic.events = deque(topic.events, maxlen=EVENT_HISTORY)


async def _why(future: Any) -> str:
    try:
        exc = await future.exception()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return f"{type(exc).__name__}: {exc}"


def _dashboard_off(settings: dict[str, Any]) -> dict[str, Any]:
    """A Dask scheduler always runs an HTTP server, by default on port 8787 of every
    interface, with routes that answer anyone (metrics, cluster facts) and none of our TLS.
    Off, it has no routes and listens on a free loopback port: nothing to reach, no port
    taken from other programs, and no "port 8787 is already in use" warning."""
    settings["distributed.scheduler.http.routes"] = []
    return {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


def _dashboard_on(host: str) -> dict[str, Any]:
    """Dask's dashboard on purpose: on a free port of ``host``, with bokeh, which Dask
    needs for it (without, it would answer every page with a hint to install it)."""
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:
        raise InvalidRequest(
            "the Dask dashboard needs bokeh: pip install 'bokeh>=3.1' (or leave out --dashboard)"
        )
    return {"dashboard": True, "dashboard_address": f"{host}:0"}


class DaskEngine:
    """A connection to a Dask scheduler, and the local cluster parts it started, if any."""

    def __init__(self, client: Any, owned: Sequence[Any] = ()) -> None:
        self.client: Any = client
        self._owned = list(owned)  # scheduler and nannies we started, closed with us
        self.events: asyncio.Queue[TaskEvent] = asyncio.Queue()
        self.wakeup = asyncio.Event()
        self._futures: dict[str, Any] = {}  # key -> future of every task still out
        self._ended: dict[str, AttemptResult] = {}  # key -> result, from "ended" events
        self._withdrawn: dict[str, str] = {}  # key -> why, for tasks we took back
        self._finished_at: dict[str, float] = {}  # finished in the engine, event not seen
        self._last_sweep = 0.0
        self._facts: dict[str, dict[str, Any]] = {}
        # Where Dask's dashboard is served, when this engine's scheduler serves it.
        self.dashboard_url: str | None = None
        self._tls: TlsFiles | None = None  # the keys of a scheduler we started
        client.subscribe_topic(EVENT_TOPIC, self._on_event)

    @classmethod
    async def start_local(
        cls,
        nodes: Sequence[NodeSpec],
        *,
        local_directory: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsFiles | None = None,
        log_path: Path | None = None,
        dashboard: bool = False,
        runner: NodeRunner | None = None,
        node_timeout: float = NODE_TIMEOUT_SECONDS,
    ) -> DaskEngine:
        """A scheduler in this process, listening on ``host:port``, and one nanny-managed
        worker process per local node (none for a controller whose nodes join from outside).
        With ``tls``, every connection to it is mutual TLS with those keys' CA. The local
        workers write what they print to ``log_path``. ``dashboard``: serve Dask's dashboard
        on a free port of ``host`` (:attr:`dashboard_url`); it needs bokeh. The local nodes
        run their segments with ``runner`` (without one, they run none: a bare cluster).
        A worker with no heartbeat for ``node_timeout`` seconds is removed.
        """
        settings: dict[str, Any] = {
            "distributed.scheduler.work-stealing": False,
            # A node that stops answering (frozen, or cut off from the network with its
            # connection still open) is given up after this long; Dask's default is 5 min.
            "distributed.scheduler.worker-ttl": f"{node_timeout}s",
        }
        http: dict[str, Any] = _dashboard_on(host) if dashboard else _dashboard_off(settings)
        with dask.config.set(settings):
            scheduler = Scheduler(
                host=host,
                port=port,
                protocol="tls" if tls else "tcp",
                security=security(tls),
                **http,
            )
            await scheduler
        _short_history(scheduler)
        owned: list[Any] = [scheduler]
        try:
            nannies = [
                make_nanny(
                    scheduler.address,
                    spec,
                    "127.0.0.1",
                    local_directory,
                    tls,
                    log_path,
                    local=True,
                    runner=runner,
                )
                for spec in nodes
            ]
            with forked_start():
                await asyncio.gather(*(nanny.start() for nanny in nannies))
            owned.extend(nannies)
            client = await Client(scheduler.address, asynchronous=True, security=security(tls))
        except BaseException:
            for part in reversed(owned):
                with contextlib.suppress(Exception):
                    await part.close()
            raise
        engine = cls(client, owned)
        engine._tls = tls
        if dashboard:
            server = scheduler.services["dashboard"]
            engine.dashboard_url = f"http://{host}:{server.port}/status"
        return engine

    @classmethod
    async def connect(cls, address: str) -> DaskEngine:
        """An engine on an existing Dask scheduler, started elsewhere (its TLS settings, if
        any, come from Dask's configuration, as its deployment set them)."""
        client = await Client(address, asynchronous=True, security=security(None))
        return cls(client)

    @property
    def scheduler_address(self) -> str:
        return str(self.client.scheduler.address)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
        for part in reversed(self._owned):
            with contextlib.suppress(Exception):
                await part.close()

    def refuse(self, crl_file: str) -> None:
        """Refuse the certificates that the CRL in ``crl_file`` (PEM) revokes in every
        handshake with our
        scheduler from now on: its listeners get a new TLS context that checks the CRL.

        Dask builds a listener's context once, when it starts, and tornado's server reads
        it anew at every connection it accepts (``TCPServer.ssl_options``), so a context
        put there holds for the next handshake. Connections open already are the
        caller's to close (:meth:`drop_node`)."""
        if self._tls is None:
            raise InvalidRequest("this engine's scheduler was not started with cluster keys")
        for part in self._owned:
            for listener in getattr(part, "listeners", ()) if isinstance(part, Scheduler) else ():
                server = getattr(listener, "tcp_server", None)
                if server is None:
                    continue
                context = security(self._tls).get_listen_args("scheduler")["ssl_context"]
                # A file: OpenSSL reads CRLs from one, not from cadata (certificates only).
                context.load_verify_locations(cafile=crl_file)
                context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
                server.ssl_options = context

    async def drop_node(self, name: str) -> int:
        """Close the connections of node ``name``'s workers at once (their tasks are lost,
        as a node's that died); how many there were."""
        schedulers = [part for part in self._owned if isinstance(part, Scheduler)]
        dropped = 0
        for scheduler in schedulers:
            for address, worker in list(scheduler.workers.items()):
                if worker.name == name:
                    await scheduler.remove_worker(
                        address, stimulus_id=f"qfarm-revoked-{time.time()}", close=True
                    )
                    dropped += 1
        return dropped

    async def nodes(self) -> list[EngineNode]:
        """The live workers and the service instances each offers."""
        identity = await self.client.scheduler.identity()
        now = time.time()
        found: list[EngineNode] = []
        for address, info in identity.get("workers", {}).items():
            metrics = info.get("metrics") or {}
            offered = {k: int(v) for k, v in (info.get("resources") or {}).items()}
            if address not in self._facts:
                with contextlib.suppress(Exception):
                    facts = await self.client.run(facts_of_node, offered, workers=[address])
                    self._facts[address] = facts.get(address, {})
            node_facts = self._facts.get(address, {})
            # A worker's resources are its services and its counted resources; its facts
            # say which of them are counted resources.
            counted = set(node_facts.get("resources") or ())
            found.append(
                EngineNode(
                    name=str(info.get("name", address)),
                    address=address,
                    services={k: v for k, v in offered.items() if k not in counted},
                    resources={k: v for k, v in offered.items() if k in counted},
                    host=str(info.get("host", "")),
                    facts=node_facts,
                    load={
                        "cpu_percent": float(metrics.get(HOST_CPU) or 0.0),
                        "memory_used": int(metrics.get(HOST_MEMORY) or 0),
                        "availability": float(metrics.get(AVAILABILITY) or 0.0)
                        if AVAILABILITY in metrics
                        else 1.0,
                    },
                    silent_for=max(0.0, now - float(info.get("last_seen") or now)),
                )
            )
        return found

    def submit(self, tasks: Sequence[tuple[SegmentTask, str, str]]) -> None:
        """Run segment attempts: each ``(task, address, service)`` on the worker at
        ``address``, using one ``service`` instance and the counted resources it holds
        (``task.resources``). Their ends are returned by
        :meth:`collect` once they finish.

        Tasks for one node and service go to the scheduler as one graph, so a tick that
        dispatches many segments costs one message per node.
        """
        groups: dict[tuple[str, str, tuple[tuple[str, int], ...]], list[dict[str, Any]]] = {}
        for task, address, service in tasks:
            held = tuple(sorted(task.resources.items()))
            groups.setdefault((address, service, held), []).append(task.to_dict())
        for (address, service, held), payloads in groups.items():
            futures = self.client.map(
                run_on_node,
                payloads,
                key=[p["key"] for p in payloads],
                workers=[address],
                allow_other_workers=False,
                # The dispatcher chose a node with these free; Dask checks the same.
                resources={service: 1, **dict(held)},
                pure=False,
                retries=0,
            )
            for payload, future in zip(payloads, futures, strict=True):
                self._futures[payload["key"]] = future

    async def collect(self) -> list[TaskEnd]:
        """The ends of every task that ended since the last call.

        A task's end normally arrives as its "ended" event, with no request of ours. Every
        :data:`SWEEP_SECONDS` the tasks still out are also checked in the engine: one that
        finished without its event reaching us for :data:`RESULT_GRACE_SECONDS` has its
        result fetched from the scheduler; one that failed or was canceled there (its worker
        died, say) is reported lost.
        """
        ends: list[TaskEnd] = []
        released: list[Any] = []
        for key, result in self._ended.items():
            future = self._futures.pop(key, None)
            if future is not None:
                ends.append(TaskEnd(key, result))
                released.append(future)
        self._ended.clear()
        for key, error in self._withdrawn.items():
            future = self._futures.pop(key, None)
            if future is not None:
                ends.append(TaskEnd(key, None, lost=True, error=error))
                released.append(future)
        self._withdrawn.clear()

        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = now
            ends += await self._sweep(now, released)
        for future in released:
            future.release()
        return ends

    async def _sweep(self, now: float, released: list[Any]) -> list[TaskEnd]:
        ends: list[TaskEnd] = []
        for key, future in list(self._futures.items()):
            status = future.status
            if status == "pending":
                continue
            if status == "finished":
                first_seen = self._finished_at.setdefault(key, now)
                if now - first_seen < RESULT_GRACE_SECONDS:
                    continue  # its "ended" event is probably on its way
                try:
                    ends.append(TaskEnd(key, AttemptResult.from_dict(await future)))
                except Exception as exc:
                    ends.append(TaskEnd(key, None, lost=True, error=repr(exc)))
            elif status == "cancelled":
                ends.append(TaskEnd(key, None, lost=True, error="canceled in the engine"))
            elif status == "lost":  # its worker died holding the result: nothing to await
                ends.append(TaskEnd(key, None, lost=True, error="its worker died"))
            else:  # KilledWorker, a comm failure: the node went away under it
                ends.append(TaskEnd(key, None, lost=True, error=await _why(future)))
            del self._futures[key]
            self._finished_at.pop(key, None)
            released.append(future)
        # Finished tasks whose event came after all: nothing to keep about them.
        for key in [k for k in self._finished_at if k not in self._futures]:
            del self._finished_at[key]
        return ends

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _, msg = event
        if msg["kind"] == "ended":
            self._ended[msg["key"]] = AttemptResult.from_dict(msg["result"])
            self.wakeup.set()
            return
        self.events.put_nowait(
            TaskEvent(
                key=msg["key"],
                kind=msg["kind"],
                at=float(msg.get("at", time.time())),
                pid=msg.get("pid"),
                fraction=float(msg.get("fraction", 0.0)),
            )
        )
        self.wakeup.set()

    async def kill(self, key: str, address: str) -> bool:
        """End a running segment's process group on its node. Its task then returns
        normally with ``killed`` set, which is how the dispatcher learns it ended.
        """
        return key in await self.kill_many({key: address})

    async def kill_many(self, targets: Mapping[str, str]) -> set[str]:
        """:meth:`kill` of many segments, one call per node: a call per segment opens a
        connection to its worker each, and a hundred at once to one worker time out."""
        by_node: dict[str, list[str]] = defaultdict(list)
        for key, address in targets.items():
            by_node[address].append(key)

        async def on(address: str, keys: list[str]) -> set[str]:
            try:
                answers = await self.client.run(kill_on_node, keys, workers=[address])
            except Exception as exc:
                log.warning("could not reach %s to kill %s: %s", address, ", ".join(keys), exc)
                return set()
            return {key for key, ok in zip(keys, answers.get(address) or (), strict=False) if ok}

        reached = await asyncio.gather(*(on(a, keys) for a, keys in by_node.items()))
        return set().union(*reached)

    async def suspend(self, key: str, address: str) -> bool:
        """Stop a running segment's process group where it is, on its node. Its Dask task
        goes on waiting for the process, so the worker's instance stays held."""
        return await self._run_on(suspend_on_node, key, address, "suspend")

    async def resume(self, key: str, address: str) -> bool:
        """Continue a suspended segment's process group on its node."""
        return await self._run_on(resume_on_node, key, address, "resume")

    async def _run_on(self, fn: Callable[..., bool], key: str, address: str, what: str) -> bool:
        try:
            answers = await self.client.run(fn, key, workers=[address])
        except Exception as exc:
            log.warning("could not reach %s to %s %s: %s", address, what, key, exc)
            return False
        return bool(answers.get(address))

    async def withdraw(self, key: str) -> None:
        """Cancel a task that has not reported back (its node is gone, or it never started)."""
        future = self._futures.get(key)
        if future is not None:
            self._withdrawn[key] = "withdrawn"
            self.wakeup.set()
            with contextlib.suppress(Exception):
                await future.cancel()
