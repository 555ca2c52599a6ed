"""The embedded cluster of ``qfarm run`` and the job types' ``run`` commands: a controller
and local service nodes in this process, one batch run on them, its progress and output
shown as it goes, and its report at the end.

Dask, the store and the controller are imported when a run starts, not with this module:
``--help`` and usage errors need not load them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfarm import config
from qfarm.cli.common import ExitCode, err, interrupted_early, print_error, print_json
from qfarm.cli.loading import collector_paused
from qfarm.cli.progress import show_progress
from qfarm.cli.report import batch_report, print_report
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, BatchState

if TYPE_CHECKING:
    from qfarm.engine.base import NodeSpec
    from qfarm.store import PlannedJob, Store


def run_request(
    request: BatchRequest,
    *,
    nodes: int | None,
    instances: int | None,
    data_dir: Path | None,
    db: str | None,
    as_json: bool,
    quiet: bool,
    where: str = "",
    fresh: bool = False,
    follow: bool = False,
    on_end: Callable[[Store, int], None] | None = None,
) -> int:
    """Plan ``request``, run it on an embedded cluster, report, and return the exit code.
    ``where`` prefixes planning errors (the batch file's name). An unfinished batch of the
    same request that no live process runs is resumed, unless ``fresh``. ``follow`` prints
    the segments' output as it comes (not with ``as_json``). ``on_end`` is called with the
    store and the batch id once the batch has ended, before the report."""
    try:
        if nodes is not None and nodes < 1:
            raise InvalidRequest("--nodes must be at least 1")
        if instances is not None and instances < 1:
            raise InvalidRequest("--instances must be at least 1")
        # Imported here, not at the top: --help and usage errors need not load Dask.
        with collector_paused():
            from qfarm.controller.planning import plan_batch, services_of
            from qfarm.store import Store

        local_nodes = local_nodes_for(nodes, instances, services_of(request))
        check_local_requirements(request, where)
        farm: Counter[str] = Counter()
        for spec in local_nodes:
            farm.update(spec.services)
        # Plan, and open the store, before anything starts: a bad job or database URL
        # costs no cluster start-up and leaves nothing behind.
        try:
            planned = plan_batch(request, farm)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{where}{exc}") from None
        directory = config.data_dir(data_dir)
        store = Store(config.database_url(db, directory, config.RUNS_DB))
    except InvalidRequest as exc:
        print_error(exc)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return interrupted_early()

    try:
        shown = RunDisplay(
            as_json=as_json, bar=not (quiet or as_json), follow=follow and not as_json
        )
        return _claim_and_run(
            request, planned, store, directory, local_nodes, shown, fresh=fresh, on_end=on_end
        )
    except KeyboardInterrupt:
        return interrupted_early()
    finally:
        store.close()


# The job types whose service the embedded cluster's nodes offer only where a library runs,
# which default_local_nodes does not know yet: the service, and the fingerprint entry its
# jobs require (placement sends their segments only to nodes that report it).
LIBRARY_SERVICES = {"openjd": "openjd-sessions"}


def local_nodes_for(
    count: int | None, instances: int | None, services: set[str] | None
) -> list[NodeSpec]:
    """The embedded cluster's nodes for a batch of ``services``: those of
    ``default_local_nodes``, and ``openjd`` (one instance per core, as commands) where
    openjd-sessions runs and the node facts report it. A batch that needs it where it is not
    is refused, rather than left waiting for a node that never comes."""
    from qfarm.controller.local import default_local_nodes

    extra = sorted(set(services or ()) & set(LIBRARY_SERVICES))
    if not extra:
        return default_local_nodes(count, instances, services)
    from qfarm.node.facts import tool_versions

    versions = tool_versions({LIBRARY_SERVICES[name] for name in extra})
    missing = [name for name in extra if LIBRARY_SERVICES[name] not in versions]
    if missing:
        tool = LIBRARY_SERVICES[missing[0]]
        raise InvalidRequest(
            f"no local node can run {missing[0]} jobs: the node facts do not report "
            f"{tool} (is it installed, and does qfarm.node.facts list it?)"
        )
    rest = set(services or ()) - set(extra)
    specs = default_local_nodes(count, instances, rest)
    from qfarm.node.facts import usable_cores

    cores = usable_cores()
    per_node = instances or max(1, cores // len(specs))
    added = {name: per_node for name in extra}
    return [dataclasses.replace(spec, services={**spec.services, **added}) for spec in specs]


def check_local_requirements(request: BatchRequest, where: str = "") -> None:
    """Refuse a batch whose jobs require what the embedded cluster's nodes do not have, rather
    than leave it waiting for a node that never comes. Local nodes are this machine: its host
    facts (OS family, CPU arch, cores, memory) meet host constraints, but they carry no tags
    and no counted resources (GPUs are given to `qfarm node`, not to `qfarm run`)."""
    if all(job.requirements.empty for job in request.jobs):
        return
    import psutil

    from qfarm.domain.requirements import NodeOffer, unmet
    from qfarm.node.facts import cpu_arch, os_family, usable_cores

    here = NodeOffer(
        os_family=os_family(),
        cpu_arch=cpu_arch(),
        cores=usable_cores(),
        memory_mib=int(psutil.virtual_memory().total) // 2**20,
    )
    for index, job in enumerate(request.jobs):
        why = unmet(here, job.requirements)
        if why is not None:
            name = job.name or f"job {index + 1}"
            raise InvalidRequest(
                f"{where}{name} {why}, which the local nodes of qfarm run do not have "
                "(they carry no tags or GPUs): submit it to a cluster with qfarm submit"
            )


def print_segment_logs(store: Store, batch_id: int, console: Any) -> None:
    """Each segment's last attempt's log, job by job in batch order: the task output that
    ``qfarm openjd run`` prints at the end. The whole file where it is here, else the tail
    the store keeps."""
    segments = store.segments(batch_id)
    for job in store.jobs(batch_id):
        for seg in sorted((s for s in segments if s.job_id == job.id), key=lambda s: s.index):
            attempts = store.attempts(seg.id)
            if not attempts:
                continue
            last = attempts[-1]
            console.print(
                f"== {job.name or job.job_type} segment {seg.index} ({seg.label}) "
                f"on {last.node}: {last.outcome or seg.state.value}",
                style="bold",
                highlight=False,
                soft_wrap=True,
            )
            path = Path(last.log_path) if last.log_path else None
            if path is not None and path.is_file():
                text = path.read_text(errors="replace")
            else:
                text = last.log_tail or ""
            if text:
                end = "" if text.endswith("\n") else "\n"
                console.print(text, end=end, markup=False, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class RunDisplay:
    """What ``qfarm run`` shows while its batch runs and after."""

    as_json: bool  # the report as JSON on stdout, nothing else there
    bar: bool  # a progress bar on stderr
    follow: bool  # the segments' output on stdout, as it comes


def _claim_and_run(
    request: BatchRequest,
    planned: list[PlannedJob],
    store: Store,
    directory: Path,
    local_nodes: list[NodeSpec],
    shown: RunDisplay,
    *,
    fresh: bool,
    on_end: Callable[[Store, int], None] | None = None,
) -> int:
    """Resume the request's unfinished batch or store a new one, and run it."""
    from qfarm.controller.local import claim_run
    from qfarm.jobtypes.supervisor import RECORD_DIR_ENV

    claim = claim_run(store, directory / "runs", request, planned, fresh=fresh)
    # The local nodes record their segments' process groups there (read in the workers,
    # which this process starts): the next run ends any that outlive a killed run.
    os.environ[RECORD_DIR_ENV] = str(claim.records)
    try:
        if claim.resumed:
            err.print(
                f"resuming batch {claim.batch_id}: {claim.done} of {claim.total} segments "
                "already done (--fresh starts over)",
                highlight=False,
            )
        return asyncio.run(
            _run_embedded(claim.batch_id, store, directory, local_nodes, shown, on_end)
        )
    finally:
        claim.lock.release()


def route_warnings_to_log(path: Path) -> None:
    """Library warnings and log records (Dask's port and heartbeat warnings, say) go to
    ``path``, never to the user's terminal, which shows qfarm's own output only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # Dask gives its logger a handler on stderr of its own: it goes, the file takes over.
    dask_log = logging.getLogger("distributed")
    for old in list(dask_log.handlers):
        dask_log.removeHandler(old)
    dask_log.propagate = True
    dask_log.setLevel(logging.WARNING)


async def _run_embedded(
    batch_id: int,
    store: Store,
    directory: Path,
    local_nodes: list[NodeSpec],
    shown: RunDisplay,
    on_end: Callable[[Store, int], None] | None = None,
) -> int:
    # Frozen before the cluster's worker processes fork from this one (see cli.loading).
    with collector_paused():
        from qfarm.controller.service import ENGINE_LOG, Controller

    route_warnings_to_log(config.logs_dir(directory) / ENGINE_LOG)

    interrupted = asyncio.Event()  # the first Ctrl-C: cancel the batch, then report
    forced = asyncio.Event()  # a second one: stop waiting for the kills, leave at once
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (forced if interrupted.is_set() else interrupted).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    started = time.monotonic()
    controller = await Controller.embedded(store, directory, local_nodes)
    try:
        controller.adopt(batch_id)
        waiter = asyncio.create_task(controller.wait(batch_id))
        display = None
        if shown.bar:
            display = asyncio.create_task(show_progress(store, batch_id, waiter))
        following = None
        if shown.follow:
            following = asyncio.create_task(_follow_output(store, batch_id, waiter))
        stop = asyncio.create_task(interrupted.wait())
        await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        if interrupted.is_set() and not waiter.done():
            err.print(
                f"interrupted: batch {batch_id} stopped; run the same command again to resume "
                "it (Ctrl-C again to leave now)",
                highlight=False,
                soft_wrap=True,
            )
            await controller.cancel(batch_id, "interrupted")
            leave = asyncio.create_task(forced.wait())
            await asyncio.wait({waiter, leave}, return_when=asyncio.FIRST_COMPLETED)
            leave.cancel()
        stop.cancel()
        if forced.is_set():
            waiter.cancel()
            for task in (display, following):
                if task is not None:
                    task.cancel()
            # Closing the cluster ends every segment process (the workers' close hook).
            return ExitCode.INTERRUPTED
        for task in (following, display):  # the last output, above the bar's last state
            if task is not None:
                await task
        batch = waiter.result()
    finally:
        await controller.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    elapsed = time.monotonic() - started
    if on_end is not None and not interrupted.is_set():
        on_end(store, batch_id)
    report = batch_report(store, batch_id, elapsed)
    if shown.as_json:
        print_json(report)
    elif not interrupted.is_set():  # an interruption said all in its one line
        print_report(report)
    if interrupted.is_set():
        return ExitCode.INTERRUPTED
    return ExitCode.DONE if batch.state is BatchState.DONE else ExitCode.FAILED


@dataclass
class OutputFollower:
    """A batch's segment output as it is written, each line prefixed with its segment
    (``[3] line``, or ``[job 3] line`` in a batch of several jobs): every attempt's log is
    read on from where it was left. An embedded run's logs are files on this machine.
    Attempts that had ended before it started (a resumed batch's) are not shown again."""

    store: Store
    batch_id: int
    write: Callable[[str], None]
    prefixes: dict[int, str] = field(default_factory=dict)  # by segment id
    offsets: dict[tuple[int, int], int] = field(default_factory=dict)  # by attempt
    partial: dict[tuple[int, int], bytes] = field(default_factory=dict)  # its unended line
    ended: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        jobs = {job.id: job for job in self.store.jobs(self.batch_id)}
        for seg in self.store.segments(self.batch_id):
            job = jobs[seg.job_id]
            named = f"{job.name or job.job_type} " if len(jobs) > 1 else ""
            self.prefixes[seg.id] = f"[{named}{seg.index}]"
        self.ended = {
            (a.segment_id, a.number)
            for a in self.store.batch_attempts(self.batch_id)
            if a.ended_at is not None
        }

    def poll(self, final: bool = False) -> None:
        """Print what was written since the last poll; ``final``: the batch has ended, so
        a last line without its newline is printed too."""
        for attempt in self.store.batch_attempts(self.batch_id):
            key = (attempt.segment_id, attempt.number)
            if key in self.ended or not attempt.log_path:
                continue
            # ended_at is read before the log: an ended attempt's log is whole.
            done = final or attempt.ended_at is not None
            self._read(key, Path(attempt.log_path), done)
            if done:
                self.ended.add(key)

    def _read(self, key: tuple[int, int], path: Path, done: bool) -> None:
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offsets.get(key, 0))
                data = fh.read()
        except FileNotFoundError:  # not started yet
            return
        self.offsets[key] = self.offsets.get(key, 0) + len(data)
        lines = (self.partial.pop(key, b"") + data).split(b"\n")
        last = lines.pop()
        if done and last:
            lines.append(last)
        elif last:
            self.partial[key] = last
        prefix = self.prefixes.get(key[0], "[?]")
        for line in lines:
            self.write(f"{prefix} {line.decode(errors='replace').rstrip(chr(13))}")


def write_line(text: str) -> None:
    """One line on stdout as it is now: above the progress bar while one is shown."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _follow_output(store: Store, batch_id: int, waiter: asyncio.Task[Any]) -> None:
    follower = OutputFollower(store, batch_id, write_line)
    while not waiter.done():
        follower.poll()
        await asyncio.wait({waiter}, timeout=0.1)
    follower.poll(final=True)
