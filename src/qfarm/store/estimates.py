"""What an ETA is made from (see qfarm.domain.eta): the unfinished work of the batches that
give out work, in dispatch order, and the finished attempts their rates are learned from,
the jobs' own and, for a job that has finished none yet, those of earlier jobs like it.
Reading only; the estimate itself is the domain's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import Connection, select

from qfarm.domain.eta import Sample, similar_job_key
from qfarm.domain.model import ACTIVE_SEGMENT_STATES, AttemptOutcome, SegmentKind, SegmentState
from qfarm.domain.requirements import Requirements
from qfarm.domain.steering import DISPATCHING_BATCH_STATES
from qfarm.store.base import StoreBase
from qfarm.store.rows import to_job
from qfarm.store.tables import attempts, batches, jobs, segments

# How many finished jobs of a type are looked through for ones like a new job, and how many
# of their attempts are kept: enough for a rate, few enough to read on every estimate.
SIMILAR_JOBS_READ = 50
SIMILAR_SAMPLES_KEPT = 64

_UNFINISHED = [s.value for s in (SegmentState.QUEUED, *ACTIVE_SEGMENT_STATES)]
_WORK_LEFT_COLUMNS = ("batch_id", "job_id", "idx", "frames", "state", "node", "progress", "kind")


class WorkLeft(NamedTuple):
    """An unfinished segment of a batch that gives out work. A named tuple, not a
    dataclass: one is made for every queued segment of the farm at each estimate, and a
    tuple is made in half the time."""

    batch_id: int
    job_id: int
    frames: float
    running_on: str | None  # its node, when an attempt of it is out
    done: float  # 0..1 of that attempt
    assembly: bool  # it starts once the job's other segments are done
    not_before: float | None  # the batch's start_at


@dataclass(frozen=True)
class EstimateFacts:
    """Everything an estimate reads from the store, in one snapshot."""

    work: list[WorkLeft]  # in dispatch order
    jobs: dict[int, JobFacts]
    samples: dict[int, list[Sample]]  # by job: its own finished attempts
    similar: dict[str, list[Sample]] = field(default_factory=dict)  # by similar_job_key


@dataclass(frozen=True)
class JobFacts:
    job_type: str
    service: str
    depends_on: tuple[int, ...]
    key: str  # similar_job_key
    requirements: Requirements


class Estimating(StoreBase):
    def estimate_facts(self) -> EstimateFacts:
        """The unfinished work of queued and running batches (batch priority, then
        submission, then job and segment order, as the dispatcher walks them) and the
        samples to learn its rates from."""
        with self.engine.connect() as conn:
            batch_rows = conn.execute(
                select(batches.c.id, batches.c.start_at)
                .where(batches.c.state.in_([s.value for s in DISPATCHING_BATCH_STATES]))
                .order_by(batches.c.priority.desc(), batches.c.id)
            ).all()
            order = {row.id: n for n, row in enumerate(batch_rows)}
            start_at = {row.id: row.start_at for row in batch_rows}
            if not order:
                return EstimateFacts([], {}, {})
            job_rows = conn.execute(select(jobs).where(jobs.c.batch_id.in_(list(order)))).all()
            job_list = sorted(
                (to_job(r) for r in job_rows), key=lambda j: (order[j.batch_id], j.index)
            )
            job_order = {job.id: n for n, job in enumerate(job_list)}
            # The columns the estimate reads, not whole rows: a segment's spec is JSON, and
            # decoding it for every queued segment was most of an estimate's time.
            seg_rows = conn.execute(
                select(*(segments.c[name] for name in _WORK_LEFT_COLUMNS)).where(
                    segments.c.batch_id.in_(list(order)), segments.c.state.in_(_UNFINISHED)
                )
            ).all()
            # Read by position, not by name: a queue of tens of thousands of segments is
            # read on every estimate, and a Row's lookups by name were a third of its time.
            rows = [r for r in seg_rows if r[1] in job_order]
            rows.sort(key=lambda r: (job_order[r[1]], r[2]))
            queued, assembly = SegmentState.QUEUED.value, SegmentKind.ASSEMBLE.value
            work = [
                WorkLeft(
                    batch_id,
                    job_id,
                    float(frames),
                    None if state == queued else node,
                    float(progress or 0.0),
                    kind == assembly,
                    start_at.get(batch_id),
                )
                for batch_id, job_id, _, frames, state, node, progress, kind in rows
            ]
            facts = {
                job.id: JobFacts(
                    job.job_type,
                    job.service,
                    job.depends_on,
                    similar_job_key(job.job_type, job.spec),
                    job.requirements,
                )
                for job in job_list
            }
            samples = _samples(conn, [job.id for job in job_list])
            wanted = {f.key: f.job_type for jid, f in facts.items() if not samples.get(jid)}
            similar = _similar(conn, wanted, exclude=set(facts)) if wanted else {}
        return EstimateFacts(work, facts, samples, similar)


def _samples(conn: Connection, job_ids: list[int]) -> dict[int, list[Sample]]:
    found: dict[int, list[Sample]] = defaultdict(list)
    if not job_ids:
        return found
    rows = conn.execute(
        select(segments.c.job_id, segments.c.frames, attempts.c.node,
               attempts.c.started_at, attempts.c.ended_at)
        .join(attempts, attempts.c.segment_id == segments.c.id)
        .where(segments.c.job_id.in_(job_ids), segments.c.kind == SegmentKind.WORK.value)
        .where(attempts.c.outcome == AttemptOutcome.DONE.value)
        .where(attempts.c.started_at.is_not(None), attempts.c.ended_at.is_not(None))
    )  # fmt: skip
    for row in rows:
        found[row.job_id].append(
            Sample(row.node, float(row.frames), row.ended_at - row.started_at, row.ended_at)
        )
    return found


def _similar(
    conn: Connection, wanted: dict[str, str], exclude: set[int]
) -> dict[str, list[Sample]]:
    """For each key, the newest finished attempts of earlier jobs of that key."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for job_type in set(wanted.values()):
        rows = conn.execute(
            select(jobs)
            .where(jobs.c.job_type == job_type, jobs.c.finished_at.is_not(None))
            .order_by(jobs.c.id.desc())
            .limit(SIMILAR_JOBS_READ)
        )
        for row in rows:
            job = to_job(row)
            key = similar_job_key(job.job_type, job.spec)
            if key in wanted and job.id not in exclude:
                by_key[key].append(job.id)
    samples = _samples(conn, [jid for ids in by_key.values() for jid in ids])
    similar: dict[str, list[Sample]] = {}
    for key, ids in by_key.items():
        found = [s for jid in ids for s in samples.get(jid, [])]
        found.sort(key=lambda s: s.ended_at, reverse=True)
        similar[key] = found[:SIMILAR_SAMPLES_KEPT]
    return similar
