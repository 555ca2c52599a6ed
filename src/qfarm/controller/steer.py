"""Steering batches that have work out: suspend and resume their running processes, and
cancel them (the dispatcher's part; the rules are qfarm.domain.steering's)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from qfarm import jobtypes
from qfarm.controller.inflight import DispatcherState, InFlight
from qfarm.domain.model import BatchState, SegmentState
from qfarm.domain.steering import resume_continues, suspend_plan
from qfarm.store import Canceled, Change


class BatchSteering(DispatcherState):
    async def suspend_batch(self, batch_id: int) -> list[Change]:
        """Pause a batch and stop its running segments' processes where they are (SIGSTOP
        on their nodes), recording them suspended. Each keeps its attempt and its node's
        instance; :meth:`resume_batch` continues them. Refused (InvalidRequest) for an
        ended batch and for one running OpenJD jobs (see steering.suspend_plan)."""
        batch = self.store.batch(batch_id)
        active = self.store.active_segments([batch_id])
        jobs = {job.id: job for job in self.store.jobs(batch_id)}
        unsuspendable = {
            jobs[s.job_id].name
            for s in active
            if jobtypes.get(jobs[s.job_id].job_type).keeps_sessions
        }
        running = [s.id for s in active if s.state is SegmentState.RUNNING]
        plan = suspend_plan(batch_id, batch.state, running, unsuspendable)
        changes = self.store.pause_batch(batch_id) if plan.batch is not None else []
        if batch.state is not BatchState.HELD:  # a held batch has nothing out to stop
            self.suspending.add(batch_id)
        by_segment = {f.segment_id: f for f in self.in_flight.values()}
        flights = [by_segment[s] for s in plan.segments if s in by_segment]
        changes += await self._stop_or_continue(flights, suspend=True)
        self.poke()
        return changes  # for the caller to broadcast (Controller.suspend)

    async def resume_batch(self, batch_id: int) -> list[Change]:
        """Resume a paused or held batch; a paused one's suspended segments are continued
        (SIGCONT) and run on from where they were, on the same attempt."""
        batch = self.store.batch(batch_id)
        suspended = [
            s.id
            for s in self.store.active_segments([batch_id])
            if s.state is SegmentState.SUSPENDED
        ]
        continued = resume_continues(batch.state, suspended)
        changes = self.store.resume_batch(batch_id)
        self.suspending.discard(batch_id)
        by_segment = {f.segment_id: f for f in self.in_flight.values()}
        flights = [by_segment[s] for s in continued if s in by_segment]
        changes += await self._stop_or_continue(flights, suspend=False)
        self.poke()
        return changes

    async def _stop_or_continue(self, flights: list[InFlight], *, suspend: bool) -> list[Change]:
        """Stop (or continue) the flights of batches being steered, and record those the
        nodes did (see _ask_nodes_to_stop)."""
        reached = await self._ask_nodes_to_stop(flights, suspend=suspend)
        if suspend:
            # A resume that came while the stops were out found these still running and
            # left them: continue them now rather than leave them stopped in a running batch.
            resumed = [f for f in reached if f.batch_id not in self.suspending]
            if resumed:
                await asyncio.gather(*(self.engine.resume(f.key, f.address) for f in resumed))
                reached = [f for f in reached if f.batch_id in self.suspending]
        return self._record_stopped(reached, suspend=suspend)

    async def cancel_batch(self, batch_id: int, reason: str = "canceled") -> None:
        """Cancel queued work at once and kill what runs (a suspended segment is continued
        by its node's kill so that it can end); kills report back as canceled."""
        self.suspending.discard(batch_id)
        await self._cancel(batch_id, self.store.cancel(batch_id, reason))

    async def cancel_segments(
        self, batch_id: int, chosen: Collection[int], reason: str = "canceled"
    ) -> None:
        """Cancel the chosen segments of a running batch, as :meth:`cancel_batch` does the
        whole batch; the rest of it runs on."""
        await self._cancel(batch_id, self.store.cancel_segments(batch_id, chosen, reason))

    async def _cancel(self, batch_id: int, canceled: Canceled) -> None:
        if canceled.changes and self.on_changes is not None:
            self.on_changes(canceled.changes)  # what ended at once, for the event stream
        by_segment = {f.segment_id: f for f in self.in_flight.values()}
        flights = [by_segment[s.id] for s in canceled.active if s.id in by_segment]
        self.killing.update(f.key for f in flights)
        # One call per node, however many of its segments are killed.
        await self.engine.kill_many({f.key: f.address for f in flights})
        self.poke()
