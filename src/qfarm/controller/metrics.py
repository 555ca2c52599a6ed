"""The controller's Prometheus metrics, for dashboards and for autoscalers (KEDA, an HPA, a
Slurm allocation that follows the queue).

Two kinds, on one registry per controller (never the process-wide default one: a test or
an embedded run may hold several controllers in one process):

* **counted as it happens**, by the dispatcher: attempts ended (by service and outcome),
  failures by reason (``failed``, ``timeout``, ``stalled``, ``lost``, ``canceled``),
  attempt durations, the time from a dispatch to the node's start report, and how long each
  dispatcher tick took;
* **read when scraped** (:class:`_FarmCollector`): segments per service and state from the
  store (one grouped query), the segments in flight per service, and nodes by state from the
  dispatcher's live view. A scrape never waits on the dispatcher.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from qfarm.engine.base import EngineNode
from qfarm.store import Result, Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Attempts take from a fraction of a second (a command) to hours (a film's frame).
ATTEMPT_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, float("inf"))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


class _Flight(Protocol):
    service: str


class FarmView(Protocol):
    """What a scrape reads of the dispatcher's live state (qfarm.controller.inflight)."""

    nodes: dict[str, EngineNode]
    disabled: set[str]
    refused: dict[str, str]
    off: set[str]

    @property
    def in_flight(self) -> Mapping[str, _Flight]: ...


def failure_reason(result: Result) -> str:
    """Why an attempt did not end done, in one word a dashboard can group by."""
    if result.canceled:
        return "canceled"
    if result.lost:
        return "lost"
    if "no progress for" in result.error:
        return "stalled"
    if "timed out" in result.error:
        return "timeout"
    return "failed"


class FarmMetrics:
    """What the dispatcher counts (see the module's docstring) and the registry to scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.attempts = Counter(
            "qfarm_attempts_ended",
            "Segment attempts that ended, by service and outcome (done or failed)",
            ["service", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "qfarm_attempt_failures",
            "Segment attempts that did not end done, by service and reason",
            ["service", "reason"],
            registry=r,
        )
        self.durations = Histogram(
            "qfarm_attempt_duration_seconds",
            "How long segment attempts ran on their nodes, by service",
            ["service"],
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.start_latency = Histogram(
            "qfarm_dispatch_latency_seconds",
            "From a segment's dispatch to its node's report that its process started",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ticks = Histogram(
            "qfarm_dispatcher_tick_seconds",
            "How long one round of recording reports and dispatching took",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def watch(self, store: Store, farm: FarmView) -> None:
        """Read the farm's state from ``store`` and the dispatcher's ``farm`` at each
        scrape."""
        self.registry.register(_FarmCollector(store.segment_counts, farm))

    # ------------------------------------------------------------------ the dispatcher's

    def started(self, service: str, dispatched_at: float, at: float) -> None:
        self.start_latency.labels(service).observe(max(0.0, at - dispatched_at))

    def ended(self, service: str, result: Result) -> None:
        self.attempts.labels(service, "done" if result.ok else "failed").inc()
        if not result.ok:
            self.failures.labels(service, failure_reason(result)).inc()
        if result.started_at and result.ended_at:
            self.durations.labels(service).observe(max(0.0, result.ended_at - result.started_at))

    def tick(self, seconds: float) -> None:
        self.ticks.observe(seconds)

    def text(self) -> bytes:
        """The Prometheus text exposition of everything above."""
        return generate_latest(self.registry)


class _FarmCollector(Collector):
    """The gauges read at scrape time (see the module's docstring)."""

    def __init__(
        self,
        segment_counts: Callable[[], dict[tuple[str, str], int]],
        farm: FarmView,
    ) -> None:
        self._segment_counts = segment_counts
        self._farm = farm

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        segments = GaugeMetricFamily(
            "qfarm_segments",
            "Segments in the store, by service and state (queued, running, done, ...)",
            labels=["service", "state"],
        )
        for (service, state), count in sorted(self._segment_counts().items()):
            segments.add_metric([service, state], count)
        yield segments
        d = self._farm
        flying = GaugeMetricFamily(
            "qfarm_segments_in_flight",
            "Segment attempts out on nodes now, by service",
            labels=["service"],
        )
        for service, count in sorted(Tally(f.service for f in d.in_flight.values()).items()):
            flying.add_metric([service], count)
        yield flying
        nodes = GaugeMetricFamily(
            "qfarm_nodes", "Nodes by state (online, disabled, refused, off)", labels=["state"]
        )
        online = set(d.nodes)
        for state, names in (
            ("online", online),
            ("disabled", d.disabled & online),
            ("refused", set(d.refused)),
            ("off", d.off & online),
        ):
            nodes.add_metric([state], len(names))
        yield nodes
        instances = GaugeMetricFamily(
            "qfarm_instances",
            "Service instances the online nodes offer, by service",
            labels=["service"],
        )
        offered: Tally[str] = Tally()
        for node in d.nodes.values():
            offered.update(node.services)
        for service, count in sorted(offered.items()):
            instances.add_metric([service], count)
        yield instances
