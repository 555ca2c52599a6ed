"""A node's configuration as data: what `qfarm node` (or an embedded cluster) tells the
workers of a node, carried into each worker process inside its runner (see
qfarm.node.runner.SegmentRunner) rather than through environment variables, so a worker
reads only what its node was given, and a test can run two differently configured nodes in
one process.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def default_scratch() -> Path:
    return Path(tempfile.gettempdir()) / "qfarm-scratch"


@dataclass(frozen=True)
class NodeConfig:
    """How a node's workers run segments."""

    # The controller to fetch cluster-storage uploads from and send outputs to (None: the
    # node has none, as in an embedded cluster, whose jobs use shared folders).
    controller_url: str | None = None
    token: str | None = None  # the API token for those requests, where the controller wants one
    ca: str | None = None  # the cluster CA (PEM) of a controller on HTTPS
    scratch_root: Path = field(default_factory=default_scratch)  # where uploads are fetched to
    # --path-map: the controller's path prefixes and this node's for them.
    path_map: dict[str, str] = field(default_factory=dict)
    # A node of an embedded cluster: its facts leave out the tool versions when none of its
    # services needs a tool (asking every renderer its version costs a short run dearly).
    local: bool = False
    # --tags: what jobs may require of this node.
    tags: tuple[str, ...] = ()
    # Counted resources (--gpus as "gpu", --resource NAME=N): a segment holds some while it
    # runs. They are the worker's Dask resources too (beside its services).
    resources: dict[str, int] = field(default_factory=dict)
    # The GPU device indices this node hands out, one per gpu a segment holds, as
    # CUDA_VISIBLE_DEVICES ("0", "1"...): detected ones first, then numbered on.
    gpu_devices: tuple[str, ...] = ()
    gpu_memory_mib: int = 0  # of its smallest GPU, as detected (0: unknown)
    # --schedule: its weekly hours (qfarm.domain.schedule), in this node's local time; None:
    # always. --schedule-end: what its running segments do when they end (finish, suspend,
    # requeue). --when-idle: seconds its user must have been away before it takes work.
    schedule: str | None = None
    schedule_end: str = "finish"
    when_idle: float | None = None
