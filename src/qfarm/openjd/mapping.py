"""From an openjd-model ``Job`` to qfarm's plan: steps to jobs, tasks and chunks to segments.

Tasks come from openjd-model's own ``StepParameterSpaceIterator``, so the order, the
combination of ``*`` and ``(,)`` expressions and the TASK_CHUNKING chunks are exactly the
library's; nothing here computes a parameter space itself.
"""

from __future__ import annotations

from typing import Any

from openjd.model import IntRangeExpr, Job, JobWithSymbolTables, StepParameterSpaceIterator

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd.plan import (
    AmountRequirement,
    AttributeRequirement,
    Chunking,
    HostRequirements,
    OpenJDSegment,
    OpenJDStep,
    ParameterValue,
)

# More segments than one qfarm job should hold; a range typo such as 1-100000000 must be a
# usage error, not a store full of rows.
MAX_SEGMENTS = 100_000
CHUNK_INT = "CHUNK[INT]"


def host_requirements(step: Any) -> HostRequirements:
    reqs = step.hostRequirements
    if reqs is None:
        return HostRequirements()
    amounts = tuple(
        AmountRequirement(name=str(a.name), min=a.min, max=a.max) for a in reqs.amounts or ()
    )
    attributes = tuple(
        AttributeRequirement(
            name=str(a.name),
            any_of=tuple(str(v) for v in a.anyOf) if a.anyOf is not None else None,
            all_of=tuple(str(v) for v in a.allOf) if a.allOf is not None else None,
        )
        for a in reqs.attributes or ()
    )
    return HostRequirements(amounts=amounts, attributes=attributes)


def chunking(step: Any) -> Chunking | None:
    space = step.parameterSpace
    if space is None:
        return None
    for name, param in space.taskParameterDefinitions.items():
        if getattr(param.type, "value", param.type) == CHUNK_INT and param.chunks is not None:
            chunks = param.chunks
            target = chunks.targetRuntimeSeconds
            return Chunking(
                parameter=str(name),
                default_task_count=int(chunks.defaultTaskCount),
                contiguous=getattr(chunks.rangeConstraint, "value", chunks.rangeConstraint)
                == "CONTIGUOUS",
                target_runtime_seconds=int(target) if target is not None else None,
            )
    return None


def _count(space: Any, override: int | None) -> int:
    try:
        return len(StepParameterSpaceIterator(space=space, chunks_task_count_override=override))
    except ValueError:  # adaptive chunking has no length
        return -1


def segments(
    step_name: str, space: Any, chunk: Chunking | None
) -> tuple[int, tuple[OpenJDSegment, ...]]:
    """The step's task count, and its segments: one per task, or one per chunk."""
    task_count = _count(space, 1 if chunk else None)
    if task_count > MAX_SEGMENTS * (chunk.default_task_count if chunk else 1):
        raise InvalidRequest(
            f"step {step_name!r}: {task_count} tasks is more than qfarm plans in one job"
        )
    out: list[OpenJDSegment] = []
    for index, params in enumerate(StepParameterSpaceIterator(space=space)):
        if index >= MAX_SEGMENTS:
            raise InvalidRequest(
                f"step {step_name!r}: more than {MAX_SEGMENTS} segments in one job"
            )
        values = tuple(ParameterValue.of(name, value) for name, value in sorted(params.items()))
        size = 1
        if chunk is not None and chunk.parameter in params:
            size = len(IntRangeExpr.from_str(str(params[chunk.parameter].value)))
        out.append(OpenJDSegment(index=index, parameters=values, task_count=size))
    return task_count, tuple(out)


def steps(created: JobWithSymbolTables) -> tuple[OpenJDStep, ...]:
    job: Job = created.job
    index_of = {str(step.name): i for i, step in enumerate(job.steps)}
    result: list[OpenJDStep] = []
    for i, step in enumerate(job.steps):
        name = str(step.name)
        names = tuple(str(d.dependsOn) for d in step.dependencies or ())
        chunk = chunking(step)
        space = step.parameterSpace
        count, segs = segments(name, space, chunk)
        result.append(
            OpenJDStep(
                index=i,
                name=name,
                description=step.description,
                depends_on=tuple(index_of[n] for n in names),
                depends_on_names=names,
                host_requirements=host_requirements(step),
                parameter_names=tuple(space.taskParameterDefinitions) if space else (),
                task_count=count,
                segments=segs,
                chunking=chunk,
                script=step.script,
                environments=tuple(step.stepEnvironments or ()),
                symbol_table=created.step_symbol_tables.get(name),
            )
        )
    return tuple(result)
