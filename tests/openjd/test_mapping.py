"""Mapping to the plan: steps, dependencies, host requirements, tasks and chunks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openjd.model import IntRangeExpr, StepParameterSpaceIterator

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd import OpenJDPlan, load_plan
from qfarm.openjd.mapping import MAX_SEGMENTS
from tests.openjd.conftest import Writer, job, step


def space(*params: dict[str, Any], combination: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"taskParameterDefinitions": list(params)}
    if combination is not None:
        doc["combination"] = combination
    return doc


def chunked(rng: str, count: int, constraint: str, target: int | None = None) -> dict[str, Any]:
    chunks: dict[str, Any] = {"defaultTaskCount": count, "rangeConstraint": constraint}
    if target is not None:
        chunks["targetRuntimeSeconds"] = target
    return {"name": "F", "type": "CHUNK[INT]", "range": rng, "chunks": chunks}


def plan_of(write: Writer, *steps: dict[str, Any], **extra: Any) -> OpenJDPlan:
    return load_plan(write(job(steps=list(steps), **extra)))


def values(plan: OpenJDPlan, index: int = 0) -> list[dict[str, Any]]:
    return [{p.name: p.value for p in s.parameters} for s in plan.steps[index].segments]


def test_step_without_parameter_space_is_one_segment(write: Writer) -> None:
    plan = plan_of(write, step("A"))
    [s] = plan.steps
    assert s.task_count == 1 and len(s.segments) == 1 and s.segments[0].parameters == ()
    assert s.chunking is None and s.host_requirements.empty


def test_range_types(write: Writer) -> None:
    params = space(
        {"name": "I", "type": "INT", "range": "1-5:2"},
        {"name": "X", "type": "FLOAT", "range": [0.5, 1.5]},
        {"name": "S", "type": "STRING", "range": ["a", "b"]},
        {"name": "P", "type": "PATH", "range": ["/in/a.exr"]},
    )
    plan = plan_of(write, step("A", parameterSpace=params))
    s = plan.steps[0]
    assert s.parameter_names == ("I", "X", "S", "P")
    assert s.task_count == len(s.segments) == 3 * 2 * 2 * 1
    assert values(plan)[0] == {"I": "1", "X": "0.5", "S": "a", "P": "/in/a.exr"}
    assert {p.type for p in s.segments[0].parameters} == {"INT", "FLOAT", "STRING", "PATH"}


def test_combination_product_and_association(write: Writer) -> None:
    params = space(
        {"name": "A", "type": "INT", "range": [1, 2, 3]},
        {"name": "B", "type": "INT", "range": [1, 2]},
        {"name": "C", "type": "INT", "range": [10, 11]},
        combination="A * (B, C)",
    )
    plan = plan_of(write, step("S", parameterSpace=params))
    got = [(v["A"], v["B"], v["C"]) for v in values(plan)]
    assert got == [
        ("1", "1", "10"),
        ("1", "2", "11"),
        ("2", "1", "10"),
        ("2", "2", "11"),
        ("3", "1", "10"),
        ("3", "2", "11"),
    ]
    assert [s.index for s in plan.steps[0].segments] == list(range(6))


def test_segments_are_openjd_models_own_iteration(write: Writer) -> None:
    params = space(
        {"name": "A", "type": "STRING", "range": ["x", "y"]},
        {"name": "B", "type": "INT", "range": "3-1:-1"},
        combination="B * A",
    )
    plan = plan_of(write, step("S", parameterSpace=params))
    expected = list(StepParameterSpaceIterator(space=plan.job.steps[0].parameterSpace))
    assert [seg.to_model() for seg in plan.steps[0].segments] == expected


def test_job_parameters_reach_ranges(write: Writer) -> None:
    params = space({"name": "F", "type": "INT", "range": "{{Param.First}}-{{Param.Last}}"})
    doc = job(
        steps=[step("A", parameterSpace=params)],
        parameterDefinitions=[
            {"name": "First", "type": "INT", "default": 1},
            {"name": "Last", "type": "INT", "default": 4},
        ],
    )
    path = write(doc)
    assert load_plan(path).steps[0].task_count == 4
    assert load_plan(path, ["Last=20"]).steps[0].task_count == 20


def test_dependencies_by_name_and_index(write: Writer) -> None:
    plan = plan_of(
        write,
        step("Sim"),
        step("Render", dependencies=[{"dependsOn": "Sim"}]),
        step("Comp", dependencies=[{"dependsOn": "Render"}, {"dependsOn": "Sim"}]),
    )
    assert [s.depends_on for s in plan.steps] == [(), (0,), (1, 0)]
    assert plan.step("Comp").depends_on_names == ("Render", "Sim")


def test_host_requirements_are_data(write: Writer) -> None:
    reqs = {
        "amounts": [
            {"name": "amount.worker.vcpu", "min": 4, "max": 16},
            {"name": "amount.worker.memory", "min": 8192},
            {"name": "amount.worker.gpu", "min": 1},
            {"name": "amount.custom.licence", "min": 1},
        ],
        "attributes": [
            {"name": "attr.worker.os.family", "anyOf": ["linux", "macos"]},
            {"name": "attr.worker.cpu.arch", "anyOf": ["x86_64"]},
            {"name": "attr.custom.site", "allOf": ["paris", "ssd"]},
        ],
    }
    plan = plan_of(write, step("A", hostRequirements=reqs))
    hr = plan.steps[0].host_requirements
    assert hr.os_families == ("linux", "macos")
    assert hr.cpu_count is not None and (hr.cpu_count.min, hr.cpu_count.max) == (4, 16)
    assert hr.memory_mib is not None and hr.memory_mib.min == Decimal(8192)
    assert hr.gpu_count is not None and hr.gpu_count.min == 1
    assert [a.name for a in hr.custom_amounts] == ["amount.custom.licence"]
    [site] = hr.custom_attributes
    assert site.all_of == ("paris", "ssd") and site.any_of is None


def test_embedded_files_environments_and_scripts_are_kept(write: Writer) -> None:
    script = {
        "embeddedFiles": [{"name": "run", "type": "TEXT", "data": "echo hi"}],
        "actions": {"onRun": {"command": "bash", "args": ["{{Task.File.run}}"]}},
    }
    env = {"name": "StepEnv", "variables": {"A": "1"}}
    plan = plan_of(
        write,
        {"name": "A", "script": script, "stepEnvironments": [env]},
        jobEnvironments=[{"name": "JobEnv", "variables": {"B": "2"}}],
    )
    s = plan.steps[0]
    assert s.script.embeddedFiles[0].name == "run"
    assert s.script.actions.onRun.command == "bash"
    assert [e.name for e in s.environments] == ["StepEnv"]
    assert [e.name for e in plan.environments] == ["JobEnv"]
    assert plan.job.steps[0].script is s.script


@pytest.mark.parametrize(
    ("rng", "count", "constraint", "chunks"),
    [
        ("1-10", 5, "CONTIGUOUS", ["1-5", "6-10"]),
        ("1-10", 3, "CONTIGUOUS", ["1-3", "4-5", "6-8", "9-10"]),
        ("1-10", 20, "CONTIGUOUS", ["1-10"]),
        ("1-3,7-9", 5, "CONTIGUOUS", ["1-3", "7-9"]),
        ("1-3,7-9", 5, "NONCONTIGUOUS", ["1-3", "7-9"]),
        ("1,3,5,7", 2, "CONTIGUOUS", ["1-1", "3-3", "5-5", "7-7"]),
        ("1,3,5,7", 2, "NONCONTIGUOUS", ["1,3", "5,7"]),
    ],
)
def test_chunks(write: Writer, rng: str, count: int, constraint: str, chunks: list[str]) -> None:
    plan = plan_of(
        write,
        step("A", parameterSpace=space(chunked(rng, count, constraint))),
        extensions=["TASK_CHUNKING"],
    )
    s = plan.steps[0]
    assert [seg.value("F") for seg in s.segments] == chunks
    assert [seg.task_count for seg in s.segments] == [len(IntRangeExpr.from_str(c)) for c in chunks]
    assert s.task_count == sum(seg.task_count for seg in s.segments)
    assert s.chunking is not None
    assert (s.chunking.default_task_count, s.chunking.contiguous) == (
        count,
        constraint == "CONTIGUOUS",
    )
    assert not s.chunking.adaptive


def test_target_runtime_is_recorded(write: Writer) -> None:
    plan = plan_of(
        write,
        step("A", parameterSpace=space(chunked("1-10", 4, "CONTIGUOUS", target=600))),
        extensions=["TASK_CHUNKING"],
    )
    s = plan.steps[0]
    assert s.chunking is not None and s.chunking.target_runtime_seconds == 600
    assert s.chunking.adaptive
    assert s.task_count == 10
    # openjd-model's adaptive iteration: first chunks of defaultTaskCount, the rest later.
    assert [seg.value("F") for seg in s.segments] == ["1-4", "5-8", "9-10"]


def test_chunks_with_other_parameters(write: Writer) -> None:
    params = space(
        {"name": "L", "type": "STRING", "range": ["bg", "fg"]},
        chunked("1-4", 2, "CONTIGUOUS"),
        combination="L * F",
    )
    plan = plan_of(write, step("A", parameterSpace=params), extensions=["TASK_CHUNKING"])
    assert [(v["L"], v["F"]) for v in values(plan)] == [
        ("bg", "1-2"),
        ("bg", "3-4"),
        ("fg", "1-2"),
        ("fg", "3-4"),
    ]
    assert plan.steps[0].task_count == 8


def test_too_many_segments_refused(write: Writer) -> None:
    params = space({"name": "F", "type": "INT", "range": f"1-{MAX_SEGMENTS + 1}"})
    with pytest.raises(InvalidRequest, match="more than qfarm plans in one job"):
        plan_of(write, step("A", parameterSpace=params))


def test_plan_records(write: Writer, tmp_path: Path) -> None:
    plan = plan_of(write, step("A"), description="about", extensions=["TASK_CHUNKING"])
    assert plan.description == "about" and plan.extensions == ("TASK_CHUNKING",)
    assert plan.source == tmp_path / "template.yaml"
    assert plan.steps[0].symbol_table is not None


_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(
    start=st.integers(-50, 50),
    length=st.integers(1, 60),
    stride=st.integers(1, 7),
)
def test_int_range_task_count(write: Writer, start: int, length: int, stride: int) -> None:
    end = start + length - 1
    params = space({"name": "F", "type": "INT", "range": f"{start}-{end}:{stride}"})
    plan = plan_of(write, step("A", parameterSpace=params))
    expected = list(range(start, end + 1, stride))
    assert plan.steps[0].task_count == len(expected)
    assert [int(v["F"]) for v in values(plan)] == expected


@_SETTINGS
@given(
    frames=st.lists(st.integers(1, 200), min_size=1, max_size=40, unique=True),
    count=st.integers(1, 12),
    contiguous=st.booleans(),
)
def test_chunks_cover_every_frame_once(
    write: Writer, frames: list[int], count: int, contiguous: bool
) -> None:
    rng = ",".join(str(f) for f in sorted(frames))
    constraint = "CONTIGUOUS" if contiguous else "NONCONTIGUOUS"
    plan = plan_of(
        write,
        step("A", parameterSpace=space(chunked(rng, count, constraint))),
        extensions=["TASK_CHUNKING"],
    )
    s = plan.steps[0]
    seen = [f for seg in s.segments for f in IntRangeExpr.from_str(seg.value("F"))]
    assert sorted(seen) == sorted(frames)
    assert all(1 <= seg.task_count <= count for seg in s.segments)
    if contiguous:
        for seg in s.segments:
            chunk = list(IntRangeExpr.from_str(seg.value("F")))
            assert chunk == list(range(chunk[0], chunk[-1] + 1))
    else:
        # Noncontiguous chunks only split where the default count says so.
        assert len(s.segments) == -(-len(frames) // count)
