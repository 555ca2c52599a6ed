"""The farm over time: segments done and instances busy per service, each node's load, and
a job's segment durations, worked out from attempt intervals (the Batch Monitor's Stats
view and durations chart, ``qfarm stats``).

The store keeps every attempt with its dispatch, start and end, and nothing else is needed:
no counters are sampled, so a chart of the last hour is right after a controller restart,
and a window can be read again at another step. Pure: the store reads the attempts that
overlap a window, this module only cuts them into buckets. (It imports nothing else of
qfarm, so its records are plain strings and numbers.)

An instance is busy from the dispatch that books it to the attempt's end: that is how long
no other segment could have it. An attempt still running is busy up to the window's
``as_of`` (the time it was read).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

DONE: Final = "done"  # the attempt outcome that counts as a segment done
# Bounds on what one read may ask: a week at most, a second at the finest, and no more
# buckets than a chart can draw (a week at one minute is 10,080: too many; at ten, 1,008).
MIN_STEP: Final = 1.0
MAX_WINDOW: Final = 7 * 24 * 3600.0
MAX_BUCKETS: Final = 1440
# A segment is heavy (the chart marks it) when it took this many times the job's median,
# and at least HEAVY_SECONDS more: a 0.3 s frame among 0.1 s ones is noise, not a heavy frame.
HEAVY_FACTOR: Final = 2.0
HEAVY_SECONDS: Final = 1.0


@dataclass(frozen=True)
class Window:
    """``count`` buckets of ``step`` seconds from ``start``, read at ``as_of``. The last
    bucket may reach past ``as_of`` (it is the one filling now): busy averages in it are
    over the part that has passed."""

    start: float
    step: float
    count: int
    as_of: float

    @property
    def end(self) -> float:
        return self.start + self.step * self.count

    def bucket_starts(self) -> list[float]:
        return [self.start + i * self.step for i in range(self.count)]

    def passed(self, index: int) -> float:
        """How much of bucket ``index`` lies before ``as_of``, in seconds."""
        begin = self.start + index * self.step
        return max(0.0, min(begin + self.step, self.as_of) - begin)


def bucket_count(seconds: float, step: float) -> int:
    """The buckets of ``step`` that cover ``seconds`` (the last one may be partial)."""
    return max(1, math.ceil(seconds / step - 1e-9))


def window_problem(seconds: float, step: float) -> str | None:
    """Why a window of ``seconds`` read at ``step`` cannot be read, or None when it can."""
    if not (math.isfinite(seconds) and math.isfinite(step)):
        return "window and step must be finite numbers of seconds"
    if step < MIN_STEP:
        return f"step {step:g} s is below the finest, {MIN_STEP:g} s"
    if seconds < step:
        return f"window {seconds:g} s is shorter than its step {step:g} s"
    if seconds > MAX_WINDOW:
        return f"window {seconds:g} s is longer than the longest, {MAX_WINDOW:g} s (7 days)"
    if (count := bucket_count(seconds, step)) > MAX_BUCKETS:
        return (
            f"window {seconds:g} s at step {step:g} s makes {count} buckets, more than "
            f"{MAX_BUCKETS}: give a larger step"
        )
    return None


def window_ending(now: float, seconds: float, step: float) -> Window:
    """The window of the last ``seconds`` before ``now``, its buckets on multiples of
    ``step`` (minutes start on the minute), so that two reads a few seconds apart share
    their buckets and a chart redrawn from them does not shift."""
    count = bucket_count(seconds, step)
    end = (math.floor(now / step) + 1) * step
    return Window(start=end - count * step, step=step, count=count, as_of=now)


@dataclass(frozen=True)
class AttemptSpan:
    """One attempt as the charts see it: where it ran, for what service, and when."""

    node: str
    service: str
    dispatched_at: float
    started_at: float | None
    ended_at: float | None
    outcome: str | None  # None while it runs

    def busy_interval(self, as_of: float) -> tuple[float, float]:
        """When it held its instance: from its dispatch to its end (``as_of`` while it
        runs; no time at all for one that ended with no end recorded)."""
        if self.ended_at is not None:
            end = self.ended_at
        elif self.outcome is None:
            end = as_of
        else:
            end = self.dispatched_at
        return self.dispatched_at, max(self.dispatched_at, end)


def done_per_bucket(spans: Iterable[AttemptSpan], window: Window) -> dict[str, list[int]]:
    """Per service, the attempts that ended done in each bucket (a segment done is one
    done attempt: a segment is done once)."""
    found: dict[str, list[int]] = {}
    for span in spans:
        if span.outcome != DONE or span.ended_at is None:
            continue
        index = math.floor((span.ended_at - window.start) / window.step)
        if 0 <= index < window.count:
            found.setdefault(span.service, [0] * window.count)[index] += 1
    return found


def busy_seconds_per_bucket(
    spans: Iterable[AttemptSpan], window: Window, key: Callable[[AttemptSpan], str]
) -> dict[str, list[float]]:
    """Per ``key`` (a service, a node), the instance-seconds busy in each bucket: each
    attempt's busy interval cut at the bucket edges, clipped to the window."""
    found: dict[str, list[float]] = {}
    for span in spans:
        begin, end = span.busy_interval(window.as_of)
        begin, end = max(begin, window.start), min(end, window.end, window.as_of)
        if end <= begin:
            continue
        row = found.setdefault(key(span), [0.0] * window.count)
        first = math.floor((begin - window.start) / window.step)
        last = min(window.count - 1, math.floor((end - window.start) / window.step))
        for index in range(max(first, 0), last + 1):
            low = window.start + index * window.step
            row[index] += max(0.0, min(end, low + window.step) - max(begin, low))
    return found


def average_busy(seconds: Sequence[float], window: Window) -> list[float]:
    """Busy seconds per bucket as the average number of instances busy over the part of
    each bucket that has passed."""
    return [s / p if (p := window.passed(i)) > 0 else 0.0 for i, s in enumerate(seconds)]


def peak_busy(spans: Iterable[AttemptSpan], window: Window) -> int:
    """The most attempts that held an instance at one moment of the window."""
    edges: list[tuple[float, int]] = []
    for span in spans:
        begin, end = span.busy_interval(window.as_of)
        begin, end = max(begin, window.start), min(end, window.end, window.as_of)
        if end > begin:
            edges += [(begin, 1), (end, -1)]
    most = running = 0
    for _, change in sorted(edges):  # an end sorts before a start at the same moment
        running += change
        most = max(most, running)
    return most


@dataclass(frozen=True)
class ServiceSeries:
    """One service over the window: segments done and instances busy per bucket."""

    service: str
    instances: int  # the farm's instances of it now (online nodes)
    done: tuple[int, ...]
    busy: tuple[float, ...]  # average instances busy in each bucket
    peak: int  # the most busy at one moment

    @property
    def total_done(self) -> int:
        return sum(self.done)

    def mean_busy(self, window: Window) -> float:
        """The average instances busy over the window's past."""
        passed = sum(window.passed(i) for i in range(window.count))
        held = sum(b * window.passed(i) for i, b in enumerate(self.busy))
        return held / passed if passed > 0 else 0.0


@dataclass(frozen=True)
class NodeSeries:
    """One node over the window: instances busy per bucket, and its load (busy over its
    instances) where the farm knows how many it has."""

    node: str
    instances: int | None
    busy: tuple[float, ...]

    @property
    def load(self) -> tuple[float, ...] | None:
        if not self.instances:
            return None
        return tuple(b / self.instances for b in self.busy)


@dataclass(frozen=True)
class FarmStats:
    window: Window
    services: tuple[ServiceSeries, ...]
    nodes: tuple[NodeSeries, ...]
    instances: Mapping[str, int]  # per service, the farm's instances now


def farm_stats(
    spans: Sequence[AttemptSpan],
    window: Window,
    node_instances: Mapping[str, Mapping[str, int]],
    online: Iterable[str] = (),
) -> FarmStats:
    """The Stats view's series: every service that ran or is offered, every node that ran
    or is known. ``node_instances``: each known node's instances per service; ``online``:
    the nodes whose instances count in the farm's totals now."""
    totals: dict[str, int] = {}
    for name in online:
        for service, count in node_instances.get(name, {}).items():
            totals[service] = totals.get(service, 0) + count
    done = done_per_bucket(spans, window)
    by_service = busy_seconds_per_bucket(spans, window, lambda s: s.service)
    by_node = busy_seconds_per_bucket(spans, window, lambda s: s.node)
    empty = [0.0] * window.count
    service_names = sorted({*totals, *done, *by_service, *(s.service for s in spans)})
    services = tuple(
        ServiceSeries(
            service=name,
            instances=totals.get(name, 0),
            done=tuple(done.get(name, [0] * window.count)),
            busy=tuple(average_busy(by_service.get(name, empty), window)),
            peak=peak_busy((s for s in spans if s.service == name), window),
        )
        for name in service_names
    )
    node_names = sorted({*node_instances, *by_node, *(s.node for s in spans)})
    nodes = tuple(
        NodeSeries(
            node=name,
            instances=sum(node_instances[name].values()) if name in node_instances else None,
            busy=tuple(average_busy(by_node.get(name, empty), window)),
        )
        for name in node_names
    )
    return FarmStats(window=window, services=services, nodes=nodes, instances=totals)


# ------------------------------------------------------------------ a job's durations


@dataclass(frozen=True)
class AttemptTime:
    """One attempt of a segment, as the store reads it for the durations chart."""

    job_id: int
    job_name: str
    segment_id: int
    segment_index: int
    segment_label: str
    number: int
    node: str
    dispatched_at: float
    started_at: float | None
    ended_at: float | None
    outcome: str | None


@dataclass(frozen=True)
class SegmentDuration:
    """How long a segment took: its last attempt (the one that counts), from its start
    (its dispatch, if no start was recorded) to its end, or to now while it runs."""

    job_id: int
    job_name: str
    segment_id: int
    index: int
    label: str
    node: str
    seconds: float
    attempt: int  # the attempt's number: more than 1 means it was tried again
    outcome: str | None  # None while it runs
    heavy: bool = False  # far slower than its job's median


@dataclass(frozen=True)
class NodeDurations:
    """A node's share of the segments shown: how many, and how long they took on it."""

    node: str
    segments: int
    mean_seconds: float
    total_seconds: float


def segment_durations(attempts: Iterable[AttemptTime], now: float) -> list[SegmentDuration]:
    """One duration per segment that has been tried, by job then index, heavy ones marked
    against their own job's median."""
    last: dict[int, AttemptTime] = {}
    for attempt in attempts:
        kept = last.get(attempt.segment_id)
        if kept is None or attempt.number > kept.number:
            last[attempt.segment_id] = attempt
    plain = [
        SegmentDuration(
            job_id=a.job_id,
            job_name=a.job_name,
            segment_id=a.segment_id,
            index=a.segment_index,
            label=a.segment_label,
            node=a.node,
            seconds=_took(a, now),
            attempt=a.number,
            outcome=a.outcome,
        )
        for a in last.values()
    ]
    plain.sort(key=lambda d: (d.job_id, d.index, d.segment_id))
    medians = {
        job: statistics.median(d.seconds for d in plain if d.job_id == job)
        for job in {d.job_id for d in plain}
    }
    return [
        SegmentDuration(**{**vars(d), "heavy": is_heavy(d.seconds, medians[d.job_id])})
        for d in plain
    ]


def _took(attempt: AttemptTime, now: float) -> float:
    begin = attempt.started_at if attempt.started_at is not None else attempt.dispatched_at
    if attempt.ended_at is not None:
        end = attempt.ended_at
    elif attempt.outcome is None:
        end = now
    else:
        end = begin
    return max(0.0, end - begin)


def is_heavy(seconds: float, median: float) -> bool:
    return seconds > HEAVY_FACTOR * median and seconds - median >= HEAVY_SECONDS


def node_durations(durations: Iterable[SegmentDuration]) -> list[NodeDurations]:
    """Per node, the segments shown and their mean: the slow node stands out here."""
    per: dict[str, list[float]] = {}
    for d in durations:
        per.setdefault(d.node, []).append(d.seconds)
    return [
        NodeDurations(node=n, segments=len(s), mean_seconds=sum(s) / len(s), total_seconds=sum(s))
        for n, s in sorted(per.items())
    ]
