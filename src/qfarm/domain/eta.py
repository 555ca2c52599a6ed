"""How long work still takes: rates learned from finished segments, and a finish time for
each job and batch from the farm's instances and the queue ahead of it.

A farm's ETA is wrong in two familiar ways: it divides the frames left by the average speed
so far (and forgets that the last segment runs alone on one node while the others idle),
or it ignores the queue (a batch behind a long one is "done in 5 min" for an hour). Here
the estimate replays the dispatcher: every unfinished segment, in dispatch order, goes to
the instance that frees first among the nodes that may run it, and takes its frames at the
rate its job showed on that node. Running segments hold their instance for what is left of
them. The rules are pure: the store gathers the samples and the queue, and the same inputs
always give the same answer.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

# A sample's weight halves with every this many newer samples of the same node: a node
# whose speed changes (another job started beside it) is followed within a few segments.
HALF_LIFE_SAMPLES = 8.0


@dataclass(frozen=True)
class Sample:
    """One finished segment attempt: ``frames`` units of work in ``seconds`` on ``node``."""

    node: str
    frames: float
    seconds: float
    ended_at: float


@dataclass(frozen=True)
class Rates:
    """Frames per second of one job (or of earlier jobs like it) on each node it ran on."""

    by_node: Mapping[str, float] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return bool(self.by_node)

    def on(self, node: str) -> float | None:
        """The rate on ``node``; for a node it never ran on, the mean of the others (the
        farm's nodes are alike more often than not); None when nothing is known."""
        if node in self.by_node:
            return self.by_node[node]
        if not self.by_node:
            return None
        return sum(self.by_node.values()) / len(self.by_node)


def learn_rates(samples: Iterable[Sample]) -> Rates:
    """Each node's rate, newer samples weighing more (see HALF_LIFE_SAMPLES): the weighted
    frames over the weighted seconds, so long segments count for their length."""
    by_node: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.seconds > 0 and sample.frames > 0:
            by_node[sample.node].append(sample)
    rates: dict[str, float] = {}
    for node, found in by_node.items():
        newest_first = sorted(found, key=lambda s: s.ended_at, reverse=True)
        frames = seconds = 0.0
        for rank, sample in enumerate(newest_first):
            weight = 0.5 ** (rank / HALF_LIFE_SAMPLES)
            frames += weight * sample.frames
            seconds += weight * sample.seconds
        rates[node] = frames / seconds
    return Rates(rates)


def similar_job_key(job_type: str, spec: Mapping[str, object]) -> str:
    """What makes two jobs alike enough to share rates before either has finished a segment:
    the same job type on the same scene (renders), preset (transcodes) or command."""
    for name in ("scene", "preset", "command", "template"):
        value = spec.get(name)
        if isinstance(value, Mapping):
            value = value.get("name", "")
        if value:
            return f"{job_type}:{value}"
    return job_type


class Pending(NamedTuple):
    """An unfinished segment, in dispatch order. A running one names its node and how much
    of it is done. (A named tuple: an estimate makes one for every queued segment.)"""

    batch_id: int
    job_id: int
    service: str
    frames: float
    nodes: frozenset[str]  # the nodes that may run it
    running_on: str | None = None
    done: float = 0.0  # 0..1 of a running one
    after: frozenset[int] = frozenset()  # jobs it waits for (its job's dependencies)
    last_of_job: bool = False  # it starts once every other segment of its job ended (assembly)
    not_before: float = 0.0  # epoch seconds: its batch's start_at


@dataclass(frozen=True)
class Estimate:
    """Epoch seconds at which each job and batch is expected to end; those left out cannot
    be estimated yet (no rate known, or no node can run them)."""

    jobs: Mapping[int, float]
    batches: Mapping[int, float]


def estimate(
    pending: Sequence[Pending],
    instances: Mapping[str, Mapping[str, int]],
    rates: Mapping[int, Rates],
    now: float,
) -> Estimate:
    """Replay the queue on the farm's instances (node -> service -> count, busy ones too):
    running segments first, on their own nodes, then queued ones in order, each on the
    instance that frees first among its nodes. A job with a segment that cannot be placed
    or has no rate gets no estimate, nor does its batch."""
    # Per (node, service): a heap of the times its instances free.
    free_at: dict[tuple[str, str], list[float]] = {
        (node, service): [now] * count
        for node, services in instances.items()
        for service, count in services.items()
        if count > 0
    }
    job_end: dict[int, float] = {}
    unknown_jobs: set[int] = set()

    def finish(seg: Pending, node: str, start: float, frames: float) -> float | None:
        rate = rates.get(seg.job_id, Rates()).on(node)
        if not rate:
            return None
        return start + frames / rate

    for seg in pending:
        if seg.running_on is None:
            continue
        heap = free_at.get((seg.running_on, seg.service))
        end = finish(seg, seg.running_on, now, seg.frames * (1.0 - seg.done))
        if heap is None or end is None:
            unknown_jobs.add(seg.job_id)
            continue
        # The earliest-free instance of its node is the one it holds.
        heapq.heapreplace(heap, max(heap[0], end))
        job_end[seg.job_id] = max(job_end.get(seg.job_id, now), end)

    for seg in pending:
        if seg.running_on is not None:
            continue
        if seg.after & unknown_jobs:
            unknown_jobs.add(seg.job_id)
            continue
        ready = max([now, seg.not_before, *(job_end.get(job, now) for job in seg.after)])
        if seg.last_of_job:
            ready = max(ready, job_end.get(seg.job_id, now))
        # As the dispatcher does: the first instance free, not the fastest one (it never
        # holds a segment back for a faster node); of those free together, the fastest.
        best: tuple[float, float, str] | None = None
        for node in sorted(seg.nodes):
            heap = free_at.get((node, seg.service))
            if not heap:
                continue
            start = max(heap[0], ready)
            end = finish(seg, node, start, seg.frames)
            if end is not None and (best is None or (start, end) < best[:2]):
                best = (start, end, node)
        if best is None:
            unknown_jobs.add(seg.job_id)
            continue
        _, end, node = best
        heapq.heapreplace(free_at[(node, seg.service)], end)
        job_end[seg.job_id] = max(job_end.get(seg.job_id, now), end)

    jobs = {job: at for job, at in job_end.items() if job not in unknown_jobs}
    batch_of = {seg.job_id: seg.batch_id for seg in pending}
    unknown_batches = {batch_of[job] for job in unknown_jobs}
    batches: dict[int, float] = {}
    for job, at in jobs.items():
        batch = batch_of[job]
        if batch not in unknown_batches:
            batches[batch] = max(batches.get(batch, now), at)
    return Estimate(jobs, batches)
