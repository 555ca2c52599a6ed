"""``qfarm node``: a service node that joins a controller's cluster with a join token, checks
that its version matches, and serves until the controller lets it go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from qfarm import __version__
from qfarm.client import Client, ControllerError
from qfarm.domain.errors import InvalidRequest, JoinRefused, QfarmError
from qfarm.domain.requirements import GPU, check_amount, parse_amounts, parse_tags
from qfarm.engine.base import NodeSpec
from qfarm.engine.worker import run_node
from qfarm.jobtypes.supervisor import RECORD_DIR_ENV, reap_leftovers
from qfarm.login import pinned_ca
from qfarm.node.availability import NodeHours
from qfarm.node.config import NodeConfig
from qfarm.node.facts import detect_gpus
from qfarm.node.runner import SegmentRunner
from qfarm.security import pki


def parse_services(text: str) -> dict[str, int] | None:
    """``command=4,transcode=2`` -> {"command": 4, "transcode": 2}; ``auto`` -> the node's
    defaults (see :func:`qfarm.node.offerable_services`)."""
    if text.strip() in ("", "auto"):
        return None
    services: dict[str, int] = {}
    for part in text.split(","):
        name, sep, count = part.strip().partition("=")
        if not sep or not name or not count.isdigit() or int(count) < 1:
            raise QfarmError(
                f"--services part {part.strip()!r} is not SERVICE=INSTANCES, e.g. command=4"
            )
        services[name] = int(count)
    return services


@dataclass(frozen=True)
class Capacity:
    """What a node carries beside its services: tags, counted resources (``gpu`` among
    them), and the GPU devices it hands to segments."""

    tags: tuple[str, ...] = ()
    resources: dict[str, int] = field(default_factory=dict)
    gpu_devices: tuple[str, ...] = ()
    gpu_memory_mib: int = 0


def node_capacity(
    tags: Iterable[str],
    gpus: int | None,
    resources: Iterable[str],
    services: Mapping[str, int],
    detect: Callable[[], list[tuple[str, int]]] = detect_gpus,
) -> Capacity:
    """A node's tags and counted resources from its options, checked. ``gpus`` None: the
    GPUs nvidia-smi lists (none without it); a count: that many, the devices detected
    first (numbered on from there when more are asked for than detected)."""
    counted = parse_amounts(resources, "--resource")
    for name in counted:
        if name == GPU:
            raise QfarmError("give the GPU count with --gpus N, not --resource gpu=N")
        if name in services:
            raise QfarmError(f"--resource {name} has the name of a service this node offers")
    detected = detect() if gpus is None or gpus > 0 else []
    count = len(detected) if gpus is None else check_amount(gpus, "--gpus")
    devices = [index for index, _ in detected][:count]
    numbered = 0
    while len(devices) < count:
        if str(numbered) not in devices:
            devices.append(str(numbered))
        numbered += 1
    if count:
        counted[GPU] = count
    memories = [memory for _, memory in detected[:count] if memory > 0]
    return Capacity(
        tags=tuple(sorted(parse_tags(tags, "--tags"))),
        resources=counted,
        gpu_devices=tuple(devices),
        gpu_memory_mib=min(memories) if memories else 0,
    )


async def serve_node(
    controller_url: str,
    *,
    name: str | None,
    services: dict[str, int],
    host: str,
    data_dir: Path,
    token: str | None = None,
    join_token: pki.JoinToken | None = None,
    on_joined: Callable[[str, str], None] = lambda name, scheduler: None,
    on_waiting: Callable[[str], None] = lambda why: None,
    on_leaving: Callable[[str], None] = lambda why: None,
    path_map: dict[str, str] | None = None,
    capacity: Capacity | None = None,
    hours: NodeHours | None = None,
    idle_exit: float | None = None,
) -> None:
    """Be a service node of the controller at ``controller_url``, for good (or, with
    ``idle_exit``, until no segment has run here for that many seconds: a node that a batch
    system started gives its allocation back).

    The node outlives its Dask worker: when the worker ends (the controller went away, or
    the worker process died), the node ends every process group the worker left behind, so
    nothing goes on writing, then waits for the controller to answer again and rejoins
    (with a fresh certificate). A controller of another qfarm version, a wrong join token
    and a controller that is not the one the token names are refused at once.
    """
    node_name = name or socket.gethostname()
    home = data_dir / "node" / node_name
    records = home / "running"
    records.mkdir(parents=True, exist_ok=True)
    # Workers are spawned processes: they inherit where to record their process groups
    # (the job types' supervisor reads it there).
    os.environ[RECORD_DIR_ENV] = str(records)
    # The rest of the node's configuration reaches its workers as data, in their runner.
    capacity = capacity or Capacity()
    # A controller on HTTPS: its CA, checked against the join token's fingerprint before
    # anything is sent (the node's own requests for inputs and outputs use it too).
    ca = await _pinned_ca(controller_url, join_token, on_waiting)
    runner = SegmentRunner(
        NodeConfig(
            controller_url=controller_url,
            token=token,
            ca=ca,
            scratch_root=home / "scratch",
            path_map=dict(path_map or {}),
            tags=capacity.tags,
            resources=dict(capacity.resources),
            gpu_devices=capacity.gpu_devices,
            gpu_memory_mib=capacity.gpu_memory_mib,
            schedule=hours.schedule if hours else None,
            schedule_end=hours.end if hours else "finish",
            when_idle=hours.when_idle if hours else None,
        )
    )
    client = Client(controller_url, token=token, ca=ca)
    try:
        delay = 0.5
        while True:
            reap_leftovers(records)
            try:
                scheduler, tls = await _in_passing_thread(
                    _join, client, node_name, join_token, home / "tls"
                )
            except ControllerError as exc:
                on_waiting(str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            on_joined(node_name, scheduler)
            idle = asyncio.ensure_future(idle_for(records, idle_exit)) if idle_exit else None
            with contextlib.suppress(OSError):  # the scheduler went away while we joined
                await run_node(
                    scheduler, NodeSpec(node_name, services, dict(capacity.resources)), host=host,
                    local_directory=home, runner=runner, tls=tls, leave=idle,
                )  # fmt: skip
            ended = reap_leftovers(records)
            if idle is not None and idle.done() and not idle.cancelled():
                on_leaving(f"no segment ran here for {idle_exit:g} s: leaving the cluster")
                return
            if idle is not None:
                idle.cancel()
            on_waiting(
                f"the worker ended; {len(ended)} left-over process group(s) ended"
                if ended
                else "the worker ended"
            )
    finally:
        # However the node ends (stopped, or leaving), no process of its segments goes on.
        reap_leftovers(records)


T = TypeVar("T")


async def _in_passing_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` off the event loop, in a thread that ends with the call.

    Not asyncio.to_thread: its executor keeps its thread for good, and a process with a
    thread of its own starts its Dask worker by spawning a fresh interpreter (about a
    second of CPU at every start and rejoin) rather than by forking itself (see
    qfarm.engine.worker.forked_start).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def call() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, which raises it
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    thread = threading.Thread(target=call, name="qfarm-node-join", daemon=True)
    thread.start()
    try:
        return await done
    finally:
        if done.done() and not done.cancelled():
            # It has handed over its answer and is ending: let it be gone before the
            # worker starts (a wait of microseconds).
            thread.join(1.0)


async def _pinned_ca(
    url: str, join_token: pki.JoinToken | None, on_waiting: Callable[[str], None]
) -> str | None:
    """The CA of a controller on HTTPS, as the join token names it, once the controller
    answers; None over HTTP or without a join token (the machine's trusted CAs then). A
    controller that shows another CA is refused at once (JoinRefused)."""
    if not url.startswith("https://") or join_token is None:
        return None
    delay = 0.5
    while True:
        try:
            return await _in_passing_thread(pinned_ca, url, join_token.fingerprint)
        except JoinRefused:
            raise
        except InvalidRequest as exc:  # not up yet
            on_waiting(str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def idle_for(records: Path, seconds: float) -> None:
    """Return once no segment process has started or ended on this node for ``seconds``
    and none runs.

    The supervisor (in the worker process) keeps a file in ``records`` per process group it
    runs, made when the process starts and removed when it ends, so the folder's change time
    moves with every start and end, even of a process shorter than a poll.
    """
    quiet_since = time.time()
    while True:
        await asyncio.sleep(min(1.0, seconds / 4))
        try:
            changed = records.stat().st_mtime
            busy = any(records.iterdir())
        except OSError:
            changed, busy = time.time(), True
        now = time.time()
        quiet_since = now if busy else max(quiet_since, changed)
        if now - quiet_since >= seconds:
            return


def _join(
    client: Client, name: str, join_token: pki.JoinToken | None, folder: Path
) -> tuple[str, pki.TlsFiles | None]:
    """Ask the controller to admit this node: the scheduler's address, and the TLS files to
    join it with (None where the controller issues none: an external scheduler)."""
    if join_token is None:
        info = client.info()
        _same_version(client, info["version"])
        if info.get("join"):
            raise JoinRefused(
                f"the controller at {client.url} admits only nodes with its join token: run "
                "`qfarm join-token` on its machine and give it with --join-token or "
                "QFARM_JOIN_TOKEN"
            )
        return info["scheduler"], None
    key = pki.node_key(folder)
    csr = pki.make_csr(key, name)
    answer = client.join(name, csr, pki.join_proof(join_token.secret, csr))
    _same_version(client, answer["version"])
    if not answer.get("certificate"):
        return answer["scheduler"], None
    pki.check_issued(answer["ca"], join_token.fingerprint, answer["certificate"], key)
    return answer["scheduler"], pki.save_node_files(folder, answer["ca"], answer["certificate"])


def _same_version(client: Client, version: str) -> None:
    if version != __version__:
        raise QfarmError(
            f"this node runs qfarm {__version__} but the controller at {client.url} "
            f"runs {version}: every machine of a cluster needs the same version"
        )
