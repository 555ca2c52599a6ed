"""How many batch-system nodes the controller's queue needs: pure arithmetic on what
``GET /metrics`` says (segments queued and out per service), so it is tested without a
controller or a batch system."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from qfarm.domain.errors import InvalidRequest

# Segment states that hold an instance of their service (qfarm.domain.model.SegmentState).
ACTIVE_STATES = frozenset({"dispatched", "running", "suspended"})


@dataclass(frozen=True)
class AdaptRange:
    """``--adapt min=0,max=20``: the fewest and the most nodes to keep."""

    minimum: int = 0
    maximum: int = 10

    @classmethod
    def parse(cls, text: str) -> AdaptRange:
        values: dict[str, int] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in ("min", "max") or not value.strip().isdigit():
                raise InvalidRequest(
                    f"--adapt {text!r}: give min=N,max=N (whole numbers), e.g. min=0,max=20"
                )
            values[key.strip()] = int(value)
        chosen = cls(values.get("min", cls.minimum), values.get("max", cls.maximum))
        if chosen.maximum < max(1, chosen.minimum):
            raise InvalidRequest(f"--adapt {text!r}: max must be at least 1 and at least min")
        return chosen


@dataclass(frozen=True)
class Queue:
    """Segments waiting for, and holding, each service (from the controller's metrics)."""

    queued: Mapping[str, int]
    active: Mapping[str, int]


def queue_from_metrics(text: str) -> Queue:
    """The queue in a scrape of ``GET /metrics`` (its ``qfarm_segments`` gauge)."""
    from prometheus_client.parser import text_string_to_metric_families

    queued: dict[str, int] = {}
    active: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "qfarm_segments":
            continue
        for sample in family.samples:
            service, state = sample.labels.get("service", ""), sample.labels.get("state", "")
            if state == "queued":
                queued[service] = queued.get(service, 0) + int(sample.value)
            elif state in ACTIVE_STATES:
                active[service] = active.get(service, 0) + int(sample.value)
    return Queue(queued, active)


def nodes_wanted(queue: Queue, per_node: Mapping[str, int], limits: AdaptRange) -> int:
    """Nodes of ``per_node`` instances that run everything queued and out at once, within
    ``limits``: the most any one service needs (a node offers all of them)."""
    need = 0
    for service, instances in per_node.items():
        if instances <= 0:
            continue
        work = queue.queued.get(service, 0) + queue.active.get(service, 0)
        need = max(need, math.ceil(work / instances))
    return max(limits.minimum, min(limits.maximum, need))
