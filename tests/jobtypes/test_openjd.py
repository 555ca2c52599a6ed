"""The ``openjd`` job type: specs from plans, planning, and real segments run through
openjd-sessions with a real SegmentContext (templates written here, bash and Python)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes import JOB_TYPES, job_summary, plan_job
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome
from qfarm.jobtypes.openjd import OPENJD, TOOL, batch_from_plan, fingerprint, jobs_from_plan
from qfarm.jobtypes.supervisor import Supervisor
from qfarm.openjd import load_plan
from tests.helpers import wait_until_sync

SECRET = "s3cr3t-Value-42"


def bash(script: str, **extra: Any) -> dict[str, Any]:
    """An action that runs ``script`` with bash."""
    return {"command": "bash", "args": ["-c", script], **extra}


def template(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "Job",
        "parameterDefinitions": [{"name": "Out", "type": "PATH"}],
        "steps": steps,
    }
    doc.update(extra)
    return doc


@pytest.fixture(autouse=True)
def sessions_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sessions"
    monkeypatch.setenv("QFARM_OPENJD_ROOT", str(root))
    return root


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


class Farm:
    """Writes a template, plans it, and runs its segments as a node would."""

    def __init__(self, tmp_path: Path, out: Path) -> None:
        self.tmp = tmp_path
        self.out = out
        self.supervisor = Supervisor()
        self.progress: list[float] = []
        self.logs: list[Path] = []

    def plan(
        self, doc: dict[str, Any], env_templates: Sequence[dict[str, Any]] = (), **params: str
    ) -> list[tuple[dict[str, Any], list[SegmentPlan]]]:
        path = self.tmp / "job.yaml"
        path.write_text(yaml.safe_dump(doc))
        envs = []
        for i, env in enumerate(env_templates):
            envs.append(self.tmp / f"env{i}.yaml")
            envs[-1].write_text(yaml.safe_dump(env))
        values = [f"Out={self.out}"] + [f"{k}={v}" for k, v in params.items()]
        plan = load_plan(path, values, envs)
        # Through JSON, as the store keeps it, and the registry, as the controller plans it.
        return [plan_job("openjd", json.loads(json.dumps(r.spec))) for r in jobs_from_plan(plan)]

    def context(self, key: str, timeout: float | None = 60) -> SegmentContext:
        log = self.tmp / "logs" / f"{key}.log"
        self.logs.append(log)
        return SegmentContext(
            key=key,
            log_path=log,
            timeout=timeout,
            on_progress=self.progress.append,
            supervisor=self.supervisor,
        )

    def run(self, job: dict[str, Any], seg: SegmentPlan, **ctx: Any) -> SegmentOutcome:
        return OPENJD.run(job, seg.spec, self.context(f"seg-{len(self.logs) + 1}", **ctx))

    def run_all(self, doc: dict[str, Any], **kw: Any) -> list[SegmentOutcome]:
        outcomes: list[SegmentOutcome] = []
        for job, plans in self.plan(doc, **kw):
            outcomes += [self.run(job, seg) for seg in plans]
        return outcomes

    def log(self) -> str:
        return "".join(p.read_text() for p in self.logs if p.exists())


@pytest.fixture
def farm(tmp_path: Path, out: Path) -> Farm:
    return Farm(tmp_path, out)


# ------------------------------------------------------------------------ planning


def test_registered_with_its_tool() -> None:
    assert JOB_TYPES["openjd"] is OPENJD
    assert OPENJD.service == "openjd"
    assert OPENJD.required_tools({}) == (TOOL,) == ("openjd-sessions",)
    assert fingerprint()[TOOL].startswith("0.14")


def test_parameter_space_plans_one_segment_per_task(farm: Farm) -> None:
    step = {
        "name": "Render",
        "parameterSpace": {
            "taskParameterDefinitions": [
                {"name": "Frame", "type": "INT", "range": "1-3"},
                {"name": "Eye", "type": "STRING", "range": ["left", "right"]},
            ],
            "combination": "Frame * Eye",
        },
        "script": {"actions": {"onRun": bash("echo {{Task.Param.Frame}} {{Task.Param.Eye}}")}},
    }
    [(job, plans)] = farm.plan(template([step]))
    assert [p.label for p in plans] == [
        f"Eye={eye} Frame={f}" for f in (1, 2, 3) for eye in ("left", "right")
    ]
    assert [p.index for p in plans] == [1, 2, 3, 4, 5, 6]
    assert all(p.frames == 1 for p in plans)
    assert job_summary("openjd", job)[0] == "OpenJD step 'Render' of 'Job': 6 tasks in 6 segments"


def test_steps_become_jobs_with_dependencies(farm: Farm, tmp_path: Path) -> None:
    doc = template(
        [
            {"name": "A", "script": {"actions": {"onRun": bash("true")}}},
            {
                "name": "B",
                "dependencies": [{"dependsOn": "A"}],
                "script": {"actions": {"onRun": bash("true")}},
            },
        ]
    )
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(doc))
    plan = load_plan(tmp_path / "two.yaml", [f"Out={tmp_path}"], [])
    jobs = jobs_from_plan(plan, path_mapping={"/Volumes/media": "/mnt/media"}, retries=0)
    assert [(j.job_type, j.name, j.depends_on, j.retries) for j in jobs] == [
        ("openjd", "A", (), 0),
        ("openjd", "B", ("A",), 0),
    ]
    assert jobs[0].spec["path_mapping"] == [
        {"source_path_format": "POSIX", "source_path": "/Volumes/media",
         "destination_path": "/mnt/media"}
    ]  # fmt: skip
    batch = batch_from_plan(plan, priority=10)
    assert batch.name == "Job" and batch.priority == 10 and len(batch.jobs) == 2
    plans = plan_job("openjd", jobs[0].spec)[1]
    assert [p.label for p in plans] == ["whole step"]


def test_bad_specs_are_refused(farm: Farm) -> None:
    [(job, _)] = farm.plan(template([{"name": "A", "script": {"actions": {"onRun": bash("")}}}]))
    with pytest.raises(InvalidRequest, match="unknown option 'colour'"):
        OPENJD.validate({**job, "colour": "red"})
    with pytest.raises(InvalidRequest, match="openjd job: script"):
        OPENJD.validate({**job, "script": {"actions": {}}})
    with pytest.raises(InvalidRequest, match="environments"):
        OPENJD.validate({**job, "environments": [{"name": "x", "origin": "moon"}]})


# ------------------------------------------------------------------------ running


def test_environments_enter_in_order_and_exit_in_reverse(farm: Farm, out: Path) -> None:
    def env(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "script": {
                "actions": {
                    "onEnter": bash(f"echo enter {name} >> {{{{Param.Out}}}}/order"),
                    "onExit": bash(f"echo exit {name} >> {{{{Param.Out}}}}/order"),
                }
            },
        }

    studio = {
        "specificationVersion": "environment-2023-09",
        "parameterDefinitions": [{"name": "Out", "type": "PATH"}],
        "environment": env("Studio"),
    }
    step = {
        "name": "S",
        "stepEnvironments": [env("StepEnv")],
        "script": {"actions": {"onRun": bash("echo task >> {{Param.Out}}/order")}},
    }
    outcomes = farm.run_all(
        template([step], jobEnvironments=[env("JobEnv")]), env_templates=[studio]
    )
    assert outcomes == [SegmentOutcome(ok=True, exit_code=0)]
    assert (out / "order").read_text().split("\n")[:-1] == [
        "enter Studio", "enter JobEnv", "enter StepEnv", "task",
        "exit StepEnv", "exit JobEnv", "exit Studio",
    ]  # fmt: skip
    log = farm.log()
    assert "Entering Environment: JobEnv" in log and "Exiting Environment: Studio" in log
    assert farm.progress[-1] == 1.0


def test_python_script_with_embedded_file_and_working_directory(
    farm: Farm, out: Path, sessions_root: Path
) -> None:
    code = (
        "import os, sys\n"
        "wd = os.environ['OPENJD_SESSION_WORKING_DIR']\n"
        "open(os.path.join(sys.argv[1], 'wd'), 'w').write(wd + chr(10) + sys.argv[2])\n"
        "print('frame', sys.argv[3])\n"
    )
    step = {
        "name": "Py",
        "parameterSpace": {
            "taskParameterDefinitions": [{"name": "Frame", "type": "INT", "range": "7"}]
        },
        "script": {
            "embeddedFiles": [{"name": "main", "type": "TEXT", "data": code}],
            "actions": {
                "onRun": {
                    "command": "{{Param.Python}}",
                    "args": [
                        "{{Task.File.main}}", "{{Param.Out}}", "{{Session.WorkingDirectory}}",
                        "{{Task.Param.Frame}}",
                    ],
                }
            },
        },
    }  # fmt: skip
    doc = template([step])
    doc["parameterDefinitions"].append({"name": "Python", "type": "STRING"})
    [outcome] = farm.run_all(doc, Python=sys.executable)
    assert outcome.ok, farm.log()
    exported, in_template = (out / "wd").read_text().split("\n")
    assert exported == in_template
    assert Path(exported).is_absolute()
    # Named after the segment that opened it and the worker process it runs in.
    folder = sessions_root / f"seg-1-{os.getpid()}"
    assert Path(exported).parent == folder
    assert "frame 7" in farm.log()
    assert not folder.exists()  # the session's folder is removed


def test_task_chunking_runs_each_chunk_as_one_segment(farm: Farm, out: Path) -> None:
    step = {
        "name": "Chunked",
        "parameterSpace": {
            "taskParameterDefinitions": [
                {
                    "name": "Frame",
                    "type": "CHUNK[INT]",
                    "range": "1-10",
                    "chunks": {"defaultTaskCount": 4, "rangeConstraint": "CONTIGUOUS"},
                }
            ]
        },
        "script": {"actions": {"onRun": bash("echo {{Task.Param.Frame}} >> {{Param.Out}}/chunks")}},
    }
    [(job, plans)] = farm.plan(template([step], extensions=["TASK_CHUNKING"]))
    assert [(p.label, p.frames) for p in plans] == [
        ("Frame=1-4", 4), ("Frame=5-7", 3), ("Frame=8-10", 3),
    ]  # fmt: skip
    assert all(farm.run(job, seg).ok for seg in plans)
    assert (out / "chunks").read_text().split() == ["1-4", "5-7", "8-10"]


def test_failing_task_gives_its_exit_code_and_still_exits_environments(
    farm: Farm, out: Path
) -> None:
    env = {
        "name": "E",
        "script": {"actions": {"onExit": bash("touch {{Param.Out}}/exited")}},
    }
    step = {"name": "S", "script": {"actions": {"onRun": bash("echo about to fail; exit 3")}}}
    [outcome] = farm.run_all(template([step], jobEnvironments=[env]))
    assert not outcome.ok and outcome.exit_code == 3
    assert outcome.error == "task exited with code: 3"
    log = farm.log()
    assert "about to fail" in log and "exited with code: 3" in log
    assert (out / "exited").exists()


def test_failing_onenter_skips_the_task(farm: Farm, out: Path) -> None:
    env = {"name": "E", "script": {"actions": {"onEnter": bash("exit 5")}}}
    step = {"name": "S", "script": {"actions": {"onRun": bash("touch {{Param.Out}}/ran")}}}
    [outcome] = farm.run_all(template([step], jobEnvironments=[env]))
    assert outcome == SegmentOutcome(
        ok=False, exit_code=5, error="onEnter of E exited with code: 5"
    )
    assert not (out / "ran").exists()


def test_failing_onexit_fails_a_segment_whose_task_succeeded(farm: Farm, out: Path) -> None:
    env = {"name": "Cleanup", "script": {"actions": {"onExit": bash("exit 4")}}}
    step = {"name": "S", "script": {"actions": {"onRun": bash("touch {{Param.Out}}/ran")}}}
    [outcome] = farm.run_all(template([step], jobEnvironments=[env]))
    assert outcome.error == "onExit of Cleanup exited with code: 4" and outcome.exit_code == 4
    assert (out / "ran").exists()


def test_progress_status_and_fail_messages(farm: Farm) -> None:
    script = (
        "echo 'openjd_progress: 25'; echo 'openjd_status: rendering tiles'; "
        "echo 'openjd_progress: 75'; echo 'openjd_fail: the license server said no'; exit 1"
    )
    step = {"name": "S", "script": {"actions": {"onRun": bash(script)}}}
    [outcome] = farm.run_all(template([step]))
    assert farm.progress[:2] == [0.25, 0.25] and 0.75 in farm.progress
    assert not outcome.ok and outcome.exit_code == 1
    assert outcome.error == "the license server said no (status: rendering tiles)"
    log = farm.log()
    assert "openjd_status: rendering tiles" in log
    assert "failed: the license server said no" in log


def test_redacted_values_never_reach_the_log(farm: Farm, out: Path) -> None:
    env = {
        "name": "Secrets",
        "script": {
            "actions": {
                "onEnter": bash(f"echo 'openjd_redacted_env: TOKEN={SECRET}'; echo {SECRET}"),
            }
        },
    }
    script = 'echo "token is $TOKEN"; printf %s "$TOKEN" > {{Param.Out}}/token; ' + (
        'echo "openjd_fail: bad token $TOKEN"; exit 1'
    )
    step = {"name": "S", "script": {"actions": {"onRun": bash(script)}}}
    doc = template([step], jobEnvironments=[env], extensions=["REDACTED_ENV_VARS"])
    [outcome] = farm.run_all(doc)
    assert (out / "token").read_text() == SECRET  # the task had the value
    log = farm.log()
    assert "token is ********" in log
    assert SECRET not in log
    assert SECRET not in outcome.error and "bad token ********" in outcome.error


def _in_thread(fn: Callable[[], SegmentOutcome]) -> tuple[threading.Thread, list[SegmentOutcome]]:
    result: list[SegmentOutcome] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    return thread, result


def test_cancel_notifies_then_terminates_and_runs_onexit(farm: Farm, out: Path) -> None:
    env = {"name": "E", "script": {"actions": {"onExit": bash("touch {{Param.Out}}/exited")}}}
    script = (
        "trap 'echo notified > {{Param.Out}}/notified; exit 9' TERM; "
        "touch {{Param.Out}}/started; while :; do sleep 0.1; done"
    )
    cancelation = {"mode": "NOTIFY_THEN_TERMINATE", "notifyPeriodInSeconds": 5}
    step = {"name": "S", "script": {"actions": {"onRun": bash(script, cancelation=cancelation)}}}
    [(job, [seg])] = farm.plan(template([step], jobEnvironments=[env]))
    ctx = farm.context("cancel-me")
    thread, result = _in_thread(lambda: OPENJD.run(job, seg.spec, ctx))
    wait_until_sync((out / "started").exists, timeout=20, what="the task to start")
    began = time.monotonic()
    assert farm.supervisor.kill("cancel-me")  # what the node does to cancel a segment
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - began < 5  # the task exited on its notice, well inside the grace
    assert result == [SegmentOutcome(ok=False, error="canceled", killed=True)]
    assert (out / "notified").read_text() == "notified\n"
    assert (out / "exited").exists()
    assert farm.supervisor.running() == {}


def test_cancel_before_start_runs_nothing(farm: Farm, out: Path) -> None:
    step = {"name": "S", "script": {"actions": {"onRun": bash("touch {{Param.Out}}/ran")}}}
    [(job, [seg])] = farm.plan(template([step]))
    farm.supervisor.kill("early")
    outcome = OPENJD.run(job, seg.spec, farm.context("early"))
    assert outcome.killed and not (out / "ran").exists()


def test_segment_timeout_cancels_the_task(farm: Farm, out: Path) -> None:
    step = {
        "name": "S",
        "script": {"actions": {"onRun": bash("touch {{Param.Out}}/started; sleep 30")}},
    }
    [(job, [seg])] = farm.plan(template([step]))
    began = time.monotonic()
    outcome = OPENJD.run(job, seg.spec, farm.context("slow", timeout=1.5))
    assert outcome.timed_out and not outcome.ok
    assert time.monotonic() - began < 10
    assert (out / "started").exists()


def test_action_timeout_of_the_template(farm: Farm) -> None:
    step = {"name": "S", "script": {"actions": {"onRun": bash("sleep 30", timeout=1)}}}
    began = time.monotonic()
    [outcome] = farm.run_all(template([step]))
    assert outcome.timed_out and outcome.error == "task timed out"
    assert time.monotonic() - began < 10


def test_without_openjd_sessions_a_segment_fails_with_a_reason(
    farm: Farm, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = {"name": "S", "script": {"actions": {"onRun": bash("true")}}}
    [(job, [seg])] = farm.plan(template([step]))
    monkeypatch.setitem(sys.modules, "openjd.sessions", None)
    outcome = OPENJD.run(job, seg.spec, farm.context("bare"))
    assert not outcome.ok and "openjd-sessions is not installed" in outcome.error
    assert fingerprint() == {}


def test_expr_let_bindings_reach_the_task(farm: Farm, out: Path) -> None:
    step = {
        "name": "S",
        "let": ["twice = Param.N * 2"],
        "parameterSpace": {
            "taskParameterDefinitions": [{"name": "F", "type": "INT", "range": "1-2"}]
        },
        "script": {
            "let": ["sum = twice + Task.Param.F"],
            "actions": {"onRun": bash("echo twice={{twice}} sum={{sum}} >> {{Param.Out}}/expr")},
        },
    }
    doc = template([step], extensions=["EXPR"])
    doc["parameterDefinitions"].append({"name": "N", "type": "INT", "default": 3})
    assert all(o.ok for o in farm.run_all(doc))
    assert (out / "expr").read_text().splitlines() == ["twice=6 sum=7", "twice=6 sum=8"]


def test_path_mapping_rules_map_path_parameters(farm: Farm, tmp_path: Path, out: Path) -> None:
    step = {"name": "S", "script": {"actions": {"onRun": bash("touch {{Param.Out}}/mapped")}}}
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(template([step])))
    plan = load_plan(tmp_path / "map.yaml", ["Out=/Volumes/media/out"], [])
    [request] = jobs_from_plan(plan, path_mapping={"/Volumes/media": str(tmp_path)})
    job, [seg] = plan_job("openjd", request.spec)
    assert farm.run(job, seg).ok, farm.log()
    assert (out / "mapped").exists()
