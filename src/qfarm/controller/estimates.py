"""ETAs for the batches that give out work: the store's facts (qfarm.store.estimates) and the
live farm as placement sees it, put to the domain's replay of the queue (qfarm.domain.eta).

An estimate reads the whole queue, so one is made at most every CACHE_SECONDS however many
pages and progress bars ask; the answer is an epoch time per job and batch, or none where
nothing is known yet (no segment of the job, nor of a job like it, has finished).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from qfarm.controller.placement import Farm
from qfarm.domain.eta import Estimate, Pending, Rates, estimate, learn_rates
from qfarm.domain.requirements import unmet
from qfarm.store.estimates import EstimateFacts

# How old an estimate may be before it is made again: CACHE_SECONDS, or SPREAD times as
# long as the last one took to make, whichever is longer. An estimate replays the whole
# queue on the controller's event loop; with tens of thousands of segments queued it takes
# a second, and made every 2 s for the clients that poll, it would leave the dispatcher
# half the loop. Spread so, estimates take at most a twentieth of it.
CACHE_SECONDS = 2.0
SPREAD = 20.0


def estimate_from(facts: EstimateFacts, farm: Farm, now: float) -> Estimate:
    """The estimate of ``facts`` on ``farm``'s nodes that take work: each job's segments may
    go to the nodes that offer its service and meet its requirements, at the rates its own
    finished segments show (those of earlier jobs like it, before it has any)."""
    live = {name: node for name, node in farm.nodes.items() if name not in farm.disabled}
    instances = {name: dict(node.services) for name, node in live.items()}
    allowed: dict[int, frozenset[str]] = {}
    rates: dict[int, Rates] = {}
    for job_id, job in facts.jobs.items():
        allowed[job_id] = frozenset(
            name
            for name, node in live.items()
            if node.services.get(job.service, 0) > 0 and unmet(node.offer, job.requirements) is None
        )
        own = learn_rates(facts.samples.get(job_id, ()))
        rates[job_id] = own if own.known else learn_rates(facts.similar.get(job.key, ()))
    pending = [
        Pending(
            batch_id=work.batch_id,
            job_id=work.job_id,
            service=facts.jobs[work.job_id].service,
            frames=work.frames,
            nodes=allowed[work.job_id],
            running_on=work.running_on,
            done=work.done,
            after=frozenset(facts.jobs[work.job_id].depends_on),
            last_of_job=work.assembly,
            not_before=work.not_before or 0.0,
        )
        for work in facts.work
    ]
    return estimate(pending, instances, rates, now)


class Estimates:
    """The latest estimate, made again when older than CACHE_SECONDS (or SPREAD times what
    the last one took)."""

    def __init__(
        self,
        facts: Callable[[], EstimateFacts],
        farm: Callable[[], Farm],
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.thread_time,
    ) -> None:
        self._facts = facts
        self._farm = farm
        self._clock = clock
        # What the making of an estimate is timed with: the CPU time of the loop's own
        # thread, which is what an estimate takes from the dispatcher. Wall time would
        # count the moments other processes held the CPU too, and on a busy machine one
        # preempted estimate would leave every ETA stale for SPREAD times that pause.
        self._timer = timer
        self._made_at = float("-inf")
        self._latest = Estimate({}, {})
        self.took = 0.0  # seconds the last estimate took to make

    def current(self) -> Estimate:
        now = self._clock()
        if now - self._made_at >= max(CACHE_SECONDS, SPREAD * self.took):
            began = self._timer()
            self._latest = estimate_from(self._facts(), self._farm(), now)
            self.took = self._timer() - began
            self._made_at = now
        return self._latest

    def batch(self, batch_id: int) -> float | None:
        """When the batch is expected to end (epoch seconds), or None."""
        return self.current().batches.get(batch_id)

    def job(self, job_id: int) -> float | None:
        return self.current().jobs.get(job_id)
