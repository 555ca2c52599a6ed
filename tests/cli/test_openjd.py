"""OpenJD on the command line: `qfarm run TEMPLATE`, `qfarm openjd check|run`, batch files
with an openjd entry; exit codes and one-line messages, and a two-step run on the embedded
cluster (once nodes offer the openjd service)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.cli import batchfile
from qfarm.cli.openjd_detect import is_template
from qfarm.domain.errors import InvalidRequest
from qfarm.jobtypes.openjd import TOOL
from qfarm.node import facts
from tests.cli.test_main import qfarm

pytestmark = pytest.mark.integration


def _nodes_offer_openjd() -> bool:
    return TOOL in facts.SERVICE_TOOLS.get("openjd", ()) and TOOL in facts.tool_versions()


needs_openjd_nodes = pytest.mark.skipif(
    not _nodes_offer_openjd(),
    reason="nodes do not offer openjd yet: qfarm.node.facts needs SERVICE_TOOLS['openjd'] "
    "and the openjd-sessions version in tool_versions()",
)

TEMPLATE: dict[str, Any] = {
    "specificationVersion": "jobtemplate-2023-09",
    "name": "Two steps",
    "parameterDefinitions": [
        {"name": "Message", "type": "STRING", "default": "hello"},
        {"name": "Count", "type": "INT", "default": 2, "minValue": 1},
    ],
    "steps": [
        {
            "name": "First",
            "parameterSpace": {
                "taskParameterDefinitions": [
                    {"name": "N", "type": "INT", "range": "1-{{Param.Count}}"}
                ]
            },
            "script": {
                "actions": {
                    "onRun": {
                        "command": "bash",
                        "args": ["-c", "echo first {{Param.Message}} {{Task.Param.N}}"],
                    }
                }
            },
        },
        {
            "name": "Second",
            "dependencies": [{"dependsOn": "First"}],
            "script": {
                "actions": {"onRun": {"command": "bash", "args": ["-c", "echo second done"]}}
            },
        },
    ],
}


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(TEMPLATE, sort_keys=False), encoding="utf-8")
    return path


def test_templates_and_bundles_are_told_from_commands(tmp_path: Path, template: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "template.json").write_text(json.dumps(TEMPLATE), encoding="utf-8")
    other = tmp_path / "config.yaml"
    other.write_text("key: value\n", encoding="utf-8")
    assert is_template([str(template), "-p", "Count=3"]) and is_template([str(bundle)])
    assert is_template([str(tmp_path / "missing.yaml")])  # the loader says it is missing
    assert not is_template([str(other)]) and not is_template([str(tmp_path)])
    assert not is_template(["echo", "hi"]) and not is_template(["transcode"])
    assert not is_template([]) and not is_template(None)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["-p", "Count=0"],
            "two.yaml: parameters: Value (0) for parameter Count must be at least 1",
        ),
        (["-p", "Nope=1"], "not defined in the template: Nope"),
        (["-p", "Count"], "-p 'Count': expected NAME=VALUE"),
        (["--env", "A=B"], "--env takes an environment template file"),
        (["--step", "Third"], "no such step (steps: First, Second)"),
        (["--priority", "urgent"], "'urgent'"),
    ],
)
def test_bad_parameters_are_usage_errors_of_one_line(
    tmp_path: Path, template: Path, args: list[str], says: str
) -> None:
    result = qfarm("run", str(template), *args, data_dir=tmp_path / "data", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.db"))


def test_an_invalid_template_is_a_usage_error_naming_the_field(tmp_path: Path) -> None:
    broken = {**TEMPLATE, "steps": [{"name": "S", "script": {"actions": {"onRun": {}}}}]}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    for command in (["run"], ["submit", "--controller", "http://127.0.0.1:9"]):
        result = qfarm(*command, str(path), data_dir=tmp_path / "data")
        assert result.returncode == 2, result.stderr
        assert "broken.json: steps[0].script.actions.onRun.command: Field required" in (
            result.stderr
        )


def test_openjd_check(tmp_path: Path, template: Path) -> None:
    ok = qfarm("openjd", "check", str(template), data_dir=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{template}: ok"
    bad = qfarm("openjd", "check", str(template), "-p", "Count=0", data_dir=tmp_path)
    assert bad.returncode == 2 and "Count must be at least 1" in bad.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("specificationVersion: jobtemplate-2023-09\nname: x\n", encoding="utf-8")
    result = qfarm("openjd", "check", str(broken), "--json", data_dir=tmp_path)
    assert result.returncode == 2
    answer = json.loads(result.stdout)
    assert answer["ok"] is False and any("steps" in p for p in answer["problems"])


def test_a_batch_file_entry_of_type_openjd_expands_into_its_steps(
    tmp_path: Path, template: Path
) -> None:
    path = tmp_path / "shot.toml"
    path.write_text(
        """
name = "shot"
[[jobs]]
name = "pre"
command = ["true"]
[[jobs]]
name = "oj"
type = "openjd"
template = "two.yaml"
params = { Count = 3 }
depends_on = ["pre"]
[[jobs]]
name = "post"
command = ["true"]
depends_on = ["oj"]
""",
        encoding="utf-8",
    )
    request = batchfile.load(path)
    assert [(j.name, j.job_type, j.depends_on) for j in request.jobs] == [
        ("pre", "command", ()),
        ("oj/First", "openjd", ("pre",)),
        ("oj/Second", "openjd", ("pre", "oj/First")),
        ("post", "command", ("oj/First", "oj/Second")),
    ]
    assert len(request.jobs[1].spec["segments"]) == 3
    path.write_text(
        '[[jobs]]\ntype = "openjd"\ntemplate = "two.yaml"\nparams = { Count = 0 }\n',
        encoding="utf-8",
    )
    with pytest.raises(InvalidRequest, match="Count must be at least 1"):
        batchfile.load(path)


def test_without_nodes_offering_openjd_a_run_says_so(tmp_path: Path, template: Path) -> None:
    if _nodes_offer_openjd():
        pytest.skip("nodes offer openjd here: the run is tested below")
    result = qfarm("run", str(template), data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert "no local node can run openjd jobs" in result.stderr


@needs_openjd_nodes
def test_a_two_step_template_runs_on_the_embedded_cluster(tmp_path: Path, template: Path) -> None:
    result = qfarm(
        "run", str(template), "-p", "Count=3", "-p", "Message=hey", "--json",
        data_dir=tmp_path / "data",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "done" and report["segments"]["done"] == 4
    shown = qfarm("openjd", "run", str(template), "-p", "Message=hey", "-q", data_dir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "first hey 1" in shown.stdout and "first hey 2" in shown.stdout
    assert "Job: Two steps" in shown.stdout  # the resolved job name, as openjd run says it
    assert "second done" in shown.stdout
    only = qfarm("run", str(template), "--step", "Second", "--json", data_dir=tmp_path)
    assert only.returncode == 0 and json.loads(only.stdout)["segments"]["total"] == 1


@needs_openjd_nodes
def test_a_failed_task_fails_the_run(tmp_path: Path) -> None:
    failing = {**TEMPLATE, "steps": [TEMPLATE["steps"][0]]}
    failing["steps"][0] = {
        **TEMPLATE["steps"][0],
        "script": {"actions": {"onRun": {"command": "bash", "args": ["-c", "exit 3"]}}},
    }
    path = tmp_path / "fail.yaml"
    path.write_text(yaml.safe_dump(failing), encoding="utf-8")
    result = qfarm("run", str(path), "--retries", "0", "-q", data_dir=tmp_path / "data")
    assert result.returncode == 1


@needs_openjd_nodes
def test_host_requirements_no_local_node_meets_refuse_the_run_unless_ignored(
    tmp_path: Path,
) -> None:
    """A step that needs a license count: qfarm run refuses it (exit 2) rather than wait for a
    node that never comes; qfarm openjd run --ignore-host-requirements runs it on this
    machine, as the OpenJD CLI runs every template."""
    licensed = {**TEMPLATE, "name": "Licensed", "steps": [dict(TEMPLATE["steps"][1])]}
    licensed["steps"][0].pop("dependencies")
    licensed["steps"][0]["hostRequirements"] = {
        "amounts": [{"name": "amount.custom.licenses", "min": 1}]
    }
    path = tmp_path / "licensed.yaml"
    path.write_text(yaml.safe_dump(licensed), encoding="utf-8")
    refused = qfarm("openjd", "run", str(path), "-q", data_dir=tmp_path / "data")
    assert refused.returncode == 2
    assert "licenses" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    ran = qfarm(
        "openjd", "run", str(path), "-q", "--ignore-host-requirements", data_dir=tmp_path / "d2"
    )
    assert ran.returncode == 0, ran.stderr
    assert "second done" in ran.stdout


@needs_openjd_nodes
def test_one_node_enters_the_job_environment_once_for_all_its_tasks(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    env = {
        "name": "Once",
        "script": {
            "actions": {
                "onEnter": {
                    "command": "bash",
                    "args": ["-c", f"echo enter >> {trace}; echo 'openjd_env: SEEN=yes'"],
                },
                "onExit": {
                    "command": "bash",
                    "args": ["-c", f"echo exit >> {trace}; echo leaving once"],
                },
            }
        },
    }
    task = f'echo "task {{{{Task.Param.N}}}} $SEEN" >> {trace}'
    doc = {
        **TEMPLATE,
        "jobEnvironments": [env],
        "steps": [
            {
                **TEMPLATE["steps"][0],
                "script": {"actions": {"onRun": {"command": "bash", "args": ["-c", task]}}},
            }
        ],
    }
    path = tmp_path / "once.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    shown = qfarm(
        "openjd", "run", str(path), "-p", "Count=4", "--nodes", "1", "-q",
        data_dir=tmp_path / "data",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = trace.read_text().splitlines()
    # A session per segment running at once (the node may run two at a time), each entered
    # once and exited once, its onExit output in the log of the segment that ended it.
    enters = lines.count("enter")
    assert 1 <= enters < 4 and lines.count("exit") == enters, lines
    assert lines[0] == "enter" and lines[-1] == "exit", lines
    assert sorted(x for x in lines if x.startswith("task")) == [
        f"task {n} yes" for n in (1, 2, 3, 4)
    ]
    assert shown.stdout.count("leaving once") == enters
    assert "reused" in shown.stdout


@needs_openjd_nodes
def test_two_nodes_enter_once_each_and_exit_by_the_end_of_the_run(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    env = {
        "name": "Once",
        "script": {
            "actions": {
                "onEnter": {"command": "bash", "args": ["-c", f"echo enter >> {trace}"]},
                "onExit": {
                    "command": "bash",
                    "args": ["-c", f"echo exit >> {trace}; echo leaving once"],
                },
            }
        },
    }
    task = f'sleep 0.2; echo "task {{{{Task.Param.N}}}}" >> {trace}'
    doc = {
        **TEMPLATE,
        "jobEnvironments": [env],
        "steps": [
            {
                **TEMPLATE["steps"][0],
                "script": {"actions": {"onRun": {"command": "bash", "args": ["-c", task]}}},
            }
        ],
    }
    path = tmp_path / "two-nodes.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    shown = qfarm(
        "openjd", "run", str(path), "-p", "Count=8", "--nodes", "2", "-q",
        data_dir=tmp_path / "data",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = trace.read_text().splitlines()
    nodes = {line.split(" on ")[1].split(":")[0] for line in shown.stdout.splitlines()
             if line.startswith("== ")}  # fmt: skip
    # A node's session that was idle when the last segment ran elsewhere is ended when its
    # worker closes, its onExit output in the log of its last segment.
    assert lines.count("enter") == lines.count("exit") >= len(nodes), lines
    assert lines.count("enter") < 8
    assert shown.stdout.count("leaving once") == lines.count("exit")


@needs_openjd_nodes
def test_adaptive_chunks_are_cut_again_from_measured_task_times(tmp_path: Path) -> None:
    """targetRuntimeSeconds 10 with tasks of about 0.1 s: the first chunks are one task each
    (defaultTaskCount), the rest are cut again into chunks of several tasks once one is done,
    and every frame still runs exactly once."""
    trace = tmp_path / "trace"
    task = (
        "v={{Task.Param.Frame}}; a=${v%-*}; b=${v#*-}; "
        f"for f in $(seq $a $b); do sleep 0.1; echo frame $f >> {trace}; done"
    )
    doc = {
        "specificationVersion": "jobtemplate-2023-09",
        "extensions": ["TASK_CHUNKING"],
        "name": "Adaptive",
        "steps": [
            {
                "name": "Frames",
                "parameterSpace": {
                    "taskParameterDefinitions": [
                        {
                            "name": "Frame",
                            "type": "CHUNK[INT]",
                            "range": "1-20",
                            "chunks": {
                                "defaultTaskCount": 1,
                                "targetRuntimeSeconds": 10,
                                "rangeConstraint": "CONTIGUOUS",
                            },
                        }
                    ]
                },
                "script": {"actions": {"onRun": {"command": "bash", "args": ["-c", task]}}},
            }
        ],
    }
    path = tmp_path / "adaptive.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = qfarm("run", str(path), "--nodes", "1", "--json", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    segments = report["segments"]
    assert segments["done"] == segments["total"], segments
    assert segments["total"] < 20, segments  # 20 one-task chunks had nothing been cut again
    frames = [int(line.split()[1]) for line in trace.read_text().splitlines()]
    assert sorted(frames) == list(range(1, 21))
