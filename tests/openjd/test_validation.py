"""Invalid templates are refused as one-line usage errors that name the file and the field."""

from __future__ import annotations

from typing import Any

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd import SUPPORTED_EXTENSIONS, check, load_plan
from qfarm.openjd.messages import problems_from_text
from tests.openjd.conftest import Writer, env_template, job, step


def test_missing_command_names_the_field(write: Writer) -> None:
    doc = job(steps=[{"name": "A", "script": {"actions": {"onRun": {}}}}])
    path = write(doc)
    with pytest.raises(InvalidRequest) as info:
        load_plan(path)
    assert str(info.value) == f"{path}: steps[0].script.actions.onRun.command: Field required"


def test_several_problems_on_one_line(write: Writer) -> None:
    doc = job(
        steps=[
            {"name": "A", "script": {"actions": {"onRun": {}}}},
            step("B", hostRequirements={"amounts": [{"name": "amount.worker.vcpu", "min": -1}]}),
        ]
    )
    path = write(doc)
    problems = check(path)
    assert problems == [
        f"{path}: steps[0].script.actions.onRun.command: Field required",
        f"{path}: steps[1].hostRequirements.amounts[0].min: Value -1 must be zero or greater",
    ]
    with pytest.raises(InvalidRequest) as info:
        load_plan(path)
    assert str(info.value) == "; ".join(problems)


def test_discriminator_tags_left_out_of_the_path(write: Writer) -> None:
    doc = job(parameterDefinitions=[{"name": "F", "type": "INT", "minValue": 5, "default": 1}])
    [problem] = check(write(doc))
    assert problem.endswith("parameterDefinitions[0].default: Value less than minValue.")


@pytest.mark.parametrize(
    ("doc", "part"),
    [
        ({"name": "x", "steps": []}, "specificationVersion"),
        (job(specificationVersion="jobtemplate-2099-01"), "Unknown template version"),
        (job(extensions=["NOT_AN_EXTENSION"]), "extensions"),
        (job(steps=[step("A"), step("A")]), "steps"),
        (job(steps=[step("A", dependencies=[{"dependsOn": "Z"}])]), "Z"),
        (job(unknown=1), "unknown"),
    ],
)
def test_refused(write: Writer, doc: dict[str, Any], part: str) -> None:
    problems = check(write(doc))
    assert problems and all("\n" not in p for p in problems)
    assert part in " ".join(problems)


def test_dependency_cycle_refused(write: Writer) -> None:
    doc = job(
        steps=[
            step("A", dependencies=[{"dependsOn": "B"}]),
            step("B", dependencies=[{"dependsOn": "A"}]),
        ]
    )
    [problem] = check(write(doc))
    assert problem.endswith("template.yaml: Step dependencies form a cycle: A -> B -> A")


def test_check_without_params_allows_required_parameters(write: Writer) -> None:
    path = write(job(parameterDefinitions=[{"name": "P", "type": "INT"}]))
    assert check(path) == []
    problems = check(path, params=[])
    assert len(problems) == 1, problems
    assert "Values missing for required job parameters: P" in problems[0]
    assert check(path, params=["P=3"]) == []


def test_check_env_template(write: Writer) -> None:
    assert check(write(env_template("E"), "env.yaml")) == []
    bad = write({"specificationVersion": "environment-2023-09"}, "bad.yaml")
    assert check(bad) == [f"{bad}: environment: Field required"]


def test_check_reports_unreadable_file(tmp_path: Any) -> None:
    (tmp_path / "t.yaml").write_text("a: [")
    [problem] = check(tmp_path / "t.yaml")
    assert "not valid YAML" in problem


def test_extensions_are_those_of_the_library() -> None:
    assert {"TASK_CHUNKING", "EXPR", "REDACTED_ENV_VARS"} <= set(SUPPORTED_EXTENSIONS)


def test_extension_needs_declaring(write: Writer) -> None:
    space = {
        "taskParameterDefinitions": [
            {
                "name": "F",
                "type": "CHUNK[INT]",
                "range": "1-3",
                "chunks": {"defaultTaskCount": 2, "rangeConstraint": "CONTIGUOUS"},
            }
        ]
    }
    assert check(write(job(steps=[step("A", parameterSpace=space)])))
    assert not check(
        write(job(steps=[step("A", parameterSpace=space)], extensions=["TASK_CHUNKING"]))
    )


def test_messages_from_plain_text() -> None:
    assert problems_from_text("t.yaml", "Template is missing a key") == [
        "t.yaml: Template is missing a key"
    ]
    text = "1 validation errors for JobTemplate\nJobTemplate: must name a step"
    assert problems_from_text("t.yaml", text) == ["t.yaml: must name a step"]
