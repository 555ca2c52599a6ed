"""What the controller and the engine say to each other: nodes as the engine sees them, and
the ends and events of the tasks it runs. No Dask here, so the dispatcher and its tests can
read these without starting a cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

# Workers are spawned processes that read Dask's logging level from the environment.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


@dataclass(frozen=True)
class NodeSpec:
    """A local service node to start: its name and service instances."""

    name: str
    services: dict[str, int]


@dataclass(frozen=True)
class EngineNode:
    """A node as the engine sees it: a live worker."""

    name: str
    address: str
    services: dict[str, int]
    host: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    load: dict[str, float] = field(default_factory=dict)  # host CPU % and memory used, live
    silent_for: float = 0.0  # seconds since its last heartbeat reached the scheduler


@dataclass(frozen=True)
class TaskEnd:
    """A task ended: its result dict from the node, or the reason it has none."""

    key: str
    result: dict[str, Any] | None
    lost: bool = False  # the engine lost it (its worker died); no verdict on the segment
    error: str = ""


@dataclass(frozen=True)
class TaskEvent:
    """A report from a running segment: ``started`` (with pid) or ``progress``."""

    key: str
    kind: str
    at: float
    pid: int | None = None
    fraction: float = 0.0


# How long a node may go without a heartbeat before its segments are given to others. The
# dispatcher acts on it itself: Dask, whose workers have nannies, first spends half a minute
# trying to restart a silent worker through its nanny (just as silent, if its host is cut off).
NODE_TIMEOUT_SECONDS = 15
