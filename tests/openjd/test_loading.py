"""Loading templates, bundles, environment templates and parameter values."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd import load_plan
from tests.openjd.conftest import Writer, env_template, job, step

PARAMS = [
    {"name": "Shot", "type": "STRING", "default": "sh010"},
    {"name": "Count", "type": "INT", "minValue": 1, "maxValue": 100},
]


@pytest.mark.parametrize("name", ["t.yaml", "t.yml", "t.json"])
def test_loads_yaml_and_json(write: Writer, name: str) -> None:
    plan = load_plan(write(job(name="J {{Param.Shot}}", parameterDefinitions=PARAMS[:1]), name))
    assert plan.name == "J sh010"
    assert [s.name for s in plan.steps] == ["A"]


def test_values_override_defaults_and_later_override_earlier(write: Writer) -> None:
    path = write(job(parameterDefinitions=PARAMS))
    plan = load_plan(path, ["Count=3", "Shot=sh020", "Count=4"])
    assert plan.parameter_values == {"Shot": "sh020", "Count": "4"}


def test_value_may_contain_equals(write: Writer) -> None:
    plan = load_plan(write(job(parameterDefinitions=PARAMS)), ["Count=1", "Shot=a=b"])
    assert plan.parameter_values["Shot"] == "a=b"


@pytest.mark.parametrize("name", ["values.yaml", "values.json"])
def test_values_from_file(write: Writer, tmp_path: Path, name: str) -> None:
    path = write(job(parameterDefinitions=PARAMS))
    write({"Count": 7, "Shot": "x"}, name)
    plan = load_plan(path, [f"file://{tmp_path / name}"])
    assert plan.parameter_values == {"Count": "7", "Shot": "x"}
    # A relative file:// path is taken from the working directory given.
    plan = load_plan(path, [f"file://{name}", "Shot=y"], cwd=tmp_path)
    assert plan.parameter_values == {"Count": "7", "Shot": "y"}


def test_relative_path_values_are_joined_with_the_working_directory_and_normalized(
    write: Writer, tmp_path: Path
) -> None:
    params = [{"name": n, "type": "PATH"} for n in ("Dot", "Interior", "Abs")]
    path = write(job(parameterDefinitions=params))
    values = ["Dot=./b.exr", "Interior=sub/../other", "Abs=/mnt/x/../y"]
    plan = load_plan(path, values, cwd=tmp_path)
    assert plan.parameter_values["Dot"] == str(tmp_path / "b.exr")
    assert plan.parameter_values["Interior"] == str(tmp_path / "other")
    # An absolute value is the user's own: it is not rewritten.
    assert plan.parameter_values["Abs"] == "/mnt/x/../y"


def test_bundle_folder(write: Writer, tmp_path: Path) -> None:
    write(job(parameterDefinitions=PARAMS), "bundle/template.json")
    write(
        {
            "parameterValues": [
                {"name": "Count", "value": 5},
                {"name": "Shot", "value": "b"},
                {"name": "deadline:priority", "value": 50},
            ]
        },
        "bundle/parameter_values.yaml",
    )
    write(
        {
            "assetReferences": {
                "inputs": {"filenames": ["/in/a.blend"], "directories": ["/in/tex"]},
                "outputs": {"directories": ["/out"]},
                "referencedPaths": [],
            }
        },
        "bundle/asset_references.json",
    )
    plan = load_plan(tmp_path / "bundle", ["Shot=explicit"])
    assert plan.parameter_values == {"Count": "5", "Shot": "explicit"}
    assert plan.submitter_settings == {"deadline:priority": 50}
    assert plan.asset_references is not None
    assert plan.asset_references.input_filenames == ("/in/a.blend",)
    assert plan.asset_references.output_directories == ("/out",)
    assert plan.source == tmp_path / "bundle" / "template.json"


def test_bundle_without_template(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with pytest.raises(InvalidRequest, match=r"not a job bundle"):
        load_plan(tmp_path / "b")


def test_bundle_with_two_templates(write: Writer, tmp_path: Path) -> None:
    write(job(), "b/template.yaml")
    write(job(), "b/template.json")
    with pytest.raises(InvalidRequest, match="more than one template"):
        load_plan(tmp_path / "b")


def test_env_templates_in_order_before_job_environments(write: Writer) -> None:
    path = write(job(jobEnvironments=[{"name": "JobEnv", "variables": {"X": "1"}}]))
    first = write(env_template("First"), "first.yaml")
    second = write(env_template("Second"), "second.json")
    plan = load_plan(path, [], [first, second])
    assert [(e.name, e.origin) for e in plan.environments] == [
        ("First", "env-template"),
        ("Second", "env-template"),
        ("JobEnv", "job"),
    ]
    assert plan.environments[0].source == first
    assert len(plan.environment_templates) == 2


def test_env_template_parameters_merge(write: Writer) -> None:
    env = env_template(
        "E", parameterDefinitions=[{"name": "Queue", "type": "STRING", "default": "q"}]
    )
    plan = load_plan(write(job()), ["Queue=other"], [write(env, "env.yaml")])
    assert plan.parameter_values == {"Queue": "other"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Count=0"], r"template\.yaml: parameters: .*Count must be at least 1"),
        (["Count=x"], r"template\.yaml: parameters: .*Count"),
        (["Count=1", "Nope=1"], r"not defined in the template: Nope"),
        ([], r"Values missing for required job parameters: Count"),
        (["Count"], r"expected NAME=VALUE"),
        (["=3"], r"expected NAME=VALUE"),
        (["file://missing.yaml"], r"missing\.yaml: no such file"),
    ],
)
def test_bad_values_are_usage_errors(write: Writer, args: list[str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        load_plan(write(job(parameterDefinitions=PARAMS)), args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("a: [", "t.yaml", r"t\.yaml: not valid YAML"),
        ("{", "t.json", r"t\.json: not valid JSON"),
        ("- 1\n- 2\n", "t.yaml", r"t\.yaml: not valid"),
        ("name: x", "t.txt", r"not a \.yaml, \.yml or \.json file"),
    ],
)
def test_unreadable_documents(tmp_path: Path, content: str, name: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidRequest, match=message):
        load_plan(tmp_path / name)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no such file or folder"):
        load_plan(tmp_path / "nothing.yaml")


def test_invalid_env_template_names_its_file(write: Writer) -> None:
    bad = write({"specificationVersion": "environment-2023-09", "environment": {}}, "env.yaml")
    with pytest.raises(InvalidRequest, match=r"env\.yaml: environment: .*script or variables"):
        load_plan(write(job()), [], [bad])


def test_job_template_given_as_env_template(write: Writer) -> None:
    with pytest.raises(InvalidRequest, match=r"env\.yaml: .*specificationVersion"):
        load_plan(write(job()), [], [write(job(steps=[step("B")]), "env.yaml")])
