"""``qfarm scale slurm --adapt``: keep as many node jobs as the controller's queue needs.

Every few seconds the scaler reads ``GET /metrics``, works out the nodes wanted
(:func:`~qfarm.scale.adapt.nodes_wanted`) and compares them with its jobs that Slurm still
knows. It submits the missing ones; of the ones too many it cancels only jobs still waiting
for an allocation. A running node that is no longer needed finishes what it has and leaves
by itself (``--idle-exit``), so no segment is ever cut short to shrink the farm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from qfarm.scale.adapt import AdaptRange, nodes_wanted, queue_from_metrics
from qfarm.scale.slurm import WAITING_STATES, SlurmNodes
from qfarm.waits import wait_set


async def follow_queue(
    metrics: Callable[[], str],
    nodes: SlurmNodes,
    per_node: Mapping[str, int],
    limits: AdaptRange,
    *,
    stop: asyncio.Event,
    interval: float = 5.0,
    say: Callable[[str], None] = lambda line: None,
) -> None:
    """Follow the queue until ``stop`` is set (the caller cancels the jobs then)."""
    while not stop.is_set():
        queue = queue_from_metrics(await asyncio.to_thread(metrics))
        states = await nodes.states()
        wanted, have = nodes_wanted(queue, per_node, limits), len(states)
        if wanted > have:
            ids = await nodes.submit(wanted - have)
            say(f"{wanted} node(s) wanted, {have} submitted: submitted {', '.join(ids)}")
        elif wanted < have:
            waiting = [job_id for job_id, state in states.items() if state in WAITING_STATES]
            extra = waiting[len(waiting) - min(len(waiting), have - wanted) :]
            if extra:
                await nodes.cancel(extra)
                say(f"{wanted} node(s) wanted, {have} submitted: canceled {', '.join(extra)}")
        await wait_set(stop, interval)
