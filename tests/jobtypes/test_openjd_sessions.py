"""OpenJD sessions kept on a node between the segments of a job: environments entered once
per session and exited when the job has nothing left queued, when a task fails or is
canceled, when the session was idle too long, or when the worker closes. Real processes run
by openjd-sessions; the "nodes" are session pools (one per worker process on a real node)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes import plan_job
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome
from qfarm.jobtypes.openjd import OPENJD, jobs_from_plan
from qfarm.jobtypes.openjd.pool import IDLE_ENV, POOL, SessionPool, idle_seconds
from qfarm.jobtypes.openjd.session import NODE_LOG, run_segment
from qfarm.jobtypes.supervisor import Supervisor
from qfarm.openjd import load_plan
from tests.helpers import wait_until_sync

JOB_ID = 7


def bash(script: str, **extra: Any) -> dict[str, Any]:
    return {"command": "bash", "args": ["-c", script], **extra}


# The job environment writes to {{Param.Out}}/trace, as does each task; the task also writes
# what it saw of the environment's variable and of the attempt's environment.
ENV = {
    "name": "Farmhouse",
    "script": {
        "actions": {
            "onEnter": bash("echo enter >> {{Param.Out}}/trace; echo 'openjd_env: GREETING=hello'"),
            "onExit": bash("echo exit >> {{Param.Out}}/trace; echo leaving the farmhouse"),
        }
    },
}


def step(script: str = "", frames: str = "1-4", **action: Any) -> dict[str, Any]:
    body = script or 'echo "task {{Task.Param.Frame}} $GREETING ${QFARM_DEVICE:-}"'
    return {
        "name": "Render",
        "parameterSpace": {
            "taskParameterDefinitions": [{"name": "Frame", "type": "INT", "range": frames}]
        },
        "script": {"actions": {"onRun": bash(f"{body} >> {{{{Param.Out}}}}/trace", **action)}},
    }


def template(the_step: dict[str, Any]) -> dict[str, Any]:
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "Job",
        "parameterDefinitions": [{"name": "Out", "type": "PATH"}],
        "jobEnvironments": [ENV],
        "steps": [the_step],
    }


@pytest.fixture(autouse=True)
def sessions_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sessions"
    monkeypatch.setenv("QFARM_OPENJD_ROOT", str(root))
    return root


class Node:
    """Runs segments as one node's worker process would, with a pool of its own."""

    def __init__(self, tmp: Path, name: str, idle: float = 600.0) -> None:
        self.tmp = tmp
        self.name = name
        self.pool = SessionPool(idle=idle)
        self.supervisor = Supervisor()
        self.logs: list[Path] = []

    def context(self, key: str, queued_after: int | None, **extra: Any) -> SegmentContext:
        log = self.tmp / "logs" / f"{self.name}-{key}.log"
        self.logs.append(log)
        return SegmentContext(
            key=key,
            log_path=log,
            timeout=60,
            supervisor=self.supervisor,
            job_id=JOB_ID,
            job_queued_after=queued_after,
            **extra,
        )

    def run(
        self, job: dict[str, Any], seg: SegmentPlan, queued_after: int | None, **extra: Any
    ) -> SegmentOutcome:
        ctx = self.context(f"s{seg.index}-{len(self.logs)}", queued_after, **extra)
        return run_segment(job, seg.spec, ctx, self.pool)


def plan(tmp: Path, doc: dict[str, Any], out: Path) -> tuple[dict[str, Any], list[SegmentPlan]]:
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    [request] = jobs_from_plan(load_plan(path, [f"Out={out}"], []))
    return plan_job("openjd", json.loads(json.dumps(request.spec)))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def trace(out: Path) -> list[str]:
    path = out / "trace"
    return path.read_text().splitlines() if path.exists() else []


def test_four_segments_on_one_node_enter_once_and_exit_once(tmp_path: Path, out: Path) -> None:
    job, segs = plan(tmp_path, template(step()), out)
    logs: list[Path] = []
    progress: list[float] = []
    outcomes = []
    for seg, queued_after in zip(segs, (3, 2, 1, 0), strict=True):
        logs.append(tmp_path / "logs" / f"{seg.index}.log")
        ctx = SegmentContext(
            key=f"qfarm-b1-s{seg.index}-a1",
            log_path=logs[-1],
            timeout=60,
            on_progress=progress.append,
            supervisor=Supervisor(),
            environment={"QFARM_DEVICE": "gpu3"},
            job_id=JOB_ID,
            job_queued_after=queued_after,
        )
        outcomes.append(OPENJD.run(job, seg.spec, ctx))  # the node's own pool
    assert outcomes == [SegmentOutcome(ok=True, exit_code=0)] * 4
    assert trace(out) == [
        "enter", "task 1 hello gpu3", "task 2 hello gpu3", "task 3 hello gpu3",
        "task 4 hello gpu3", "exit",
    ]  # fmt: skip
    texts = [p.read_text() for p in logs]
    assert "Entering Environment: Farmhouse" in texts[0]
    assert all("Entering Environment" not in t for t in texts[1:])
    assert all("reused" in t for t in texts[1:])
    assert "Exiting Environment: Farmhouse" in texts[3] and "leaving the farmhouse" in texts[3]
    assert all("leaving the farmhouse" not in t for t in texts[:3])
    assert POOL.idle_count() == 0
    assert progress.count(1.0) == 4


def test_two_nodes_each_enter_once(tmp_path: Path, out: Path) -> None:
    job, segs = plan(tmp_path, template(step()), out)
    a, b = Node(tmp_path, "a"), Node(tmp_path, "b")
    # The dispatcher alternates; the last segment (none queued after it) goes to b.
    for seg, node, queued_after in zip(segs, (a, b, a, b), (3, 2, 1, 0), strict=True):
        assert node.run(job, seg, queued_after).ok
    assert b.pool.idle_count() == 0  # b ended its session with its last segment
    assert trace(out).count("exit") == 1
    # a's session waits for more of the job (until its idle time is up, or a closes).
    assert a.pool.idle_count() == 1
    a.pool.close_all()
    lines = trace(out)
    assert lines.count("enter") == 2 and lines.count("exit") == 2
    assert sorted(x for x in lines if x.startswith("task")) == [
        f"task {n} hello " for n in (1, 2, 3, 4)
    ]
    assert "leaving the farmhouse" in a.logs[-1].read_text()  # a's last segment's log
    assert a.pool.idle_count() == 0


def test_a_failed_task_ends_its_session_and_the_retry_opens_a_new_one(
    tmp_path: Path, out: Path
) -> None:
    flaky = (
        "if [ {{Task.Param.Frame}} = 2 ] && [ ! -e {{Param.Out}}/failed ]; then "
        "touch {{Param.Out}}/failed; echo 'openjd_fail: frame 2 flaked'; exit 3; fi; "
        'echo "task {{Task.Param.Frame}}"'
    )
    job, segs = plan(tmp_path, template(step(flaky, frames="1-3")), out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], 2).ok
    failed = node.run(job, segs[1], 1)
    assert failed == SegmentOutcome(ok=False, exit_code=3, error="frame 2 flaked")
    assert trace(out) == ["enter", "task 1", "exit"]  # the failure ended the session
    assert node.pool.idle_count() == 0
    assert node.run(job, segs[1], 1).ok  # the retry
    assert node.run(job, segs[2], 0).ok
    assert trace(out) == ["enter", "task 1", "exit", "enter", "task 2", "task 3", "exit"]


@pytest.mark.parametrize("busy_call", [1, 2], ids=["onenter", "task"])
def test_a_script_busy_at_its_start_opens_the_session_again(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch, busy_call: int
) -> None:
    """The n-th script openjd-sessions writes is held open for writing, as a child forked
    by another thread at that moment holds it: its exec fails with ETXTBSY. The segment runs
    again in a new session (the process never ran), so the user sees it done."""
    import openjd.sessions._runner_base as runner_base

    written: list[Path] = []
    held: list[Any] = []
    real_write = runner_base.write_file_for_user

    def write_and_hold(filename: Path, *args: Any, **kwargs: Any) -> None:
        real_write(filename, *args, **kwargs)
        written.append(Path(filename))
        if len(written) == busy_call:
            held.append(open(filename, "a"))  # noqa: SIM115 - closed below

    monkeypatch.setattr(runner_base, "write_file_for_user", write_and_hold)
    job, segs = plan(tmp_path, template(step()), out)
    node = Node(tmp_path, "n")
    try:
        assert node.run(job, segs[0], 0) == SegmentOutcome(ok=True, exit_code=0)
    finally:
        for fh in held:
            fh.close()
    assert held, "no script was held busy"
    # The first session is exited as any failed one is: an onEnter that was started is
    # exited too (openjd-sessions counts it entered), though its process never ran.
    first = ["enter", "exit"] if busy_call == 2 else ["exit"]
    assert trace(out) == [*first, "enter", "task 1 hello ", "exit"]
    log = node.logs[-1].read_text()
    assert "Text file busy" in log and "opening the session again" in log


def test_a_failed_onenter_fails_the_segment_and_keeps_nothing(tmp_path: Path, out: Path) -> None:
    doc = template(step())
    doc["jobEnvironments"] = [
        {"name": "Broken", "script": {"actions": {"onEnter": bash("exit 5")}}}
    ]
    job, segs = plan(tmp_path, doc, out)
    node = Node(tmp_path, "n")
    outcome = node.run(job, segs[0], 3)
    assert outcome == SegmentOutcome(
        ok=False, exit_code=5, error="onEnter of Broken exited with code: 5"
    )
    assert node.pool.idle_count() == 0 and trace(out) == []


def _in_thread(fn: Callable[[], SegmentOutcome]) -> tuple[threading.Thread, list[SegmentOutcome]]:
    result: list[SegmentOutcome] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    return thread, result


def test_a_cancel_mid_task_runs_the_cancelation_and_ends_the_session(
    tmp_path: Path, out: Path
) -> None:
    slow = (
        "if [ {{Task.Param.Frame}} = 2 ]; then "
        "trap 'echo notified >> {{Param.Out}}/trace; exit 9' TERM; "
        "touch {{Param.Out}}/started; while :; do sleep 0.1; done; fi; "
        'echo "task {{Task.Param.Frame}}"'
    )
    cancelation = {"mode": "NOTIFY_THEN_TERMINATE", "notifyPeriodInSeconds": 30}
    job, segs = plan(tmp_path, template(step(slow, frames="1-3", cancelation=cancelation)), out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], 2).ok
    ctx = node.context("cancel-me", 1)
    thread, result = _in_thread(lambda: run_segment(job, segs[1].spec, ctx, node.pool))
    wait_until_sync((out / "started").exists, timeout=20, what="the task to start")
    assert node.supervisor.kill("cancel-me")  # what the node does to cancel a segment
    thread.join(25)  # well inside the 30 s grace: the task ended on its notice
    assert not thread.is_alive()
    assert result == [SegmentOutcome(ok=False, error="canceled", killed=True)]
    assert trace(out) == ["enter", "task 1", "notified", "exit"]
    assert node.pool.idle_count() == 0
    assert "canceling the task" in ctx.log_path.read_text()


def test_an_idle_session_is_ended_after_its_idle_time(
    tmp_path: Path, out: Path, sessions_root: Path
) -> None:
    job, segs = plan(tmp_path, template(step()), out)
    node = Node(tmp_path, "n", idle=0.3)
    assert node.run(job, segs[0], 3).ok
    assert node.pool.idle_count() == 1 or trace(out)[-1:] == ["exit"]
    wait_until_sync(lambda: trace(out)[-1:] == ["exit"], timeout=20, what="the idle session")
    assert trace(out) == ["enter", "task 1 hello ", "exit"]
    # The exit action's output reaches the log once the action has ended, a moment after
    # its process wrote the trace.
    wait_until_sync(
        lambda: "leaving the farmhouse" in node.logs[-1].read_text(), timeout=20, what="its log"
    )
    assert "ending idle openjd session" in node.logs[-1].read_text()
    assert "leaving the farmhouse" in (sessions_root / NODE_LOG).read_text()
    assert node.pool.idle_count() == 0
    # The next segment of the job opens a new session.
    assert node.run(job, segs[1], 0).ok
    assert trace(out)[3:] == ["enter", "task 2 hello ", "exit"]


def test_closing_the_worker_ends_idle_sessions(tmp_path: Path, out: Path) -> None:
    job, segs = plan(tmp_path, template(step()), out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], 3).ok
    assert node.pool.idle_count() == 1 and trace(out)[-1] != "exit"
    node.pool.close_all()
    assert trace(out)[-1] == "exit" and node.pool.idle_count() == 0


def test_two_segments_at_once_have_a_session_each(tmp_path: Path, out: Path) -> None:
    # Each of the first two tasks waits until both have started: they run at the same time.
    both = (
        "touch {{Param.Out}}/started-{{Task.Param.Frame}}; "
        "if [ {{Task.Param.Frame}} -le 2 ]; then for i in $(seq 200); do "
        "[ -e {{Param.Out}}/started-1 ] && [ -e {{Param.Out}}/started-2 ] && break; "
        'sleep 0.05; done; fi; echo "task {{Task.Param.Frame}}"'
    )
    job, segs = plan(tmp_path, template(step(both, frames="1-3")), out)
    node = Node(tmp_path, "n")
    runs = [_in_thread(lambda seg=seg: node.run(job, seg, 2)) for seg in segs[:2]]
    for thread, _ in runs:
        thread.join(30)
    assert [r for _, r in runs] == [[SegmentOutcome(ok=True, exit_code=0)]] * 2
    assert node.pool.idle_count() == 2
    assert trace(out).count("enter") == 2
    # The last segment takes one session and ends both, their output in its log.
    assert node.run(job, segs[2], 0).ok
    assert trace(out).count("exit") == 2 and node.pool.idle_count() == 0
    assert node.logs[-1].read_text().count("leaving the farmhouse") == 2


def test_a_changed_spec_or_environment_never_reuses_a_session(tmp_path: Path, out: Path) -> None:
    job, segs = plan(tmp_path, template(step()), out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], 3).ok
    changed = {**job, "job_name": "Job v2"}
    assert node.run(changed, segs[1], 2).ok
    assert node.run(job, segs[2], 1, environment={"QFARM_DEVICE": "gpu1"}).ok
    assert trace(out).count("enter") == 3 and node.pool.idle_count() == 3
    assert node.run(job, segs[3], 0).ok  # ends them all: one job
    assert trace(out).count("exit") == 3 and node.pool.idle_count() == 0


def test_without_a_queue_count_nothing_is_kept(tmp_path: Path, out: Path) -> None:
    job, segs = plan(tmp_path, template(step()), out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], None).ok and node.run(job, segs[1], None).ok
    assert trace(out).count("enter") == 2 and trace(out).count("exit") == 2


def test_idle_seconds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IDLE_ENV, "2.5")
    assert idle_seconds() == 2.5 and SessionPool().idle_seconds == 2.5
    monkeypatch.setenv(IDLE_ENV, "soon")
    assert idle_seconds() == 30.0


def test_the_node_runner_closing_ends_the_idle_sessions_of_its_process(
    tmp_path: Path, out: Path
) -> None:
    from qfarm.node.runner import SegmentRunner

    job, segs = plan(tmp_path, template(step()), out)
    ctx = SegmentContext(
        key="qfarm-b1-s1-a1",
        log_path=tmp_path / "logs" / "1.log",
        timeout=60,
        job_id=JOB_ID,
        job_queued_after=3,
    )
    assert OPENJD.run(job, segs[0].spec, ctx).ok
    assert POOL.idle_count() == 1 and trace(out)[-1] != "exit"
    SegmentRunner().kill_all()  # what the worker plugin's teardown calls
    assert trace(out)[-1] == "exit" and POOL.idle_count() == 0
    assert "leaving the farmhouse" in ctx.log_path.read_text()


def test_a_cancel_also_ends_the_idle_sessions_of_its_job(tmp_path: Path, out: Path) -> None:
    slow = (
        "if [ {{Task.Param.Frame}} = 2 ]; then touch {{Param.Out}}/started; sleep 30; fi; "
        'echo "task {{Task.Param.Frame}}"'
    )
    job, segs = plan(tmp_path, template(step(slow, frames="1-3")), out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], 2).ok  # kept idle
    # Another device set: a session of its own, canceled mid-task.
    ctx = node.context("cancel-me", 1, environment={"QFARM_DEVICE": "gpu1"})
    thread, result = _in_thread(lambda: run_segment(job, segs[1].spec, ctx, node.pool))
    wait_until_sync((out / "started").exists, timeout=20, what="the task to start")
    assert node.pool.idle_count() == 1
    assert node.supervisor.kill("cancel-me")
    thread.join(25)
    assert result == [SegmentOutcome(ok=False, error="canceled", killed=True)]
    assert trace(out).count("exit") == 2 and node.pool.idle_count() == 0
    assert ctx.log_path.read_text().count("leaving the farmhouse") == 2


def test_the_nodes_path_map_becomes_the_sessions_path_mapping_rules(
    tmp_path: Path, out: Path
) -> None:
    """The submitter's rule (/Volumes/media onto the farm's /farm/media) is carried on
    through the node's --path-map (/farm onto /mnt/farm): the PATH value arrives as this node
    sees it, mapped once, and the rules file a tool reads says the same."""
    doc = template(
        step(
            "cp {{Session.PathMappingRulesFile}} {{Param.Out}}/rules.json; "
            'echo "{{Param.In}} {{Session.HasPathMappingRules}}"',
            frames="1",
        )
    )
    doc["parameterDefinitions"].append({"name": "In", "type": "PATH"})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    loaded = load_plan(path, [f"Out={out}", "In=/Volumes/media/shot1"], [])
    [request] = jobs_from_plan(loaded, path_mapping={"/Volumes/media": "/farm/media"})
    job, segs = plan_job("openjd", json.loads(json.dumps(request.spec)))
    node = Node(tmp_path, "n")
    outcome = node.run(job, segs[0], 0, path_map={"/farm": "/mnt/farm"})
    assert outcome.ok, node.logs[-1].read_text()
    assert trace(out)[1] == "/mnt/farm/media/shot1 true"
    rules = json.loads((out / "rules.json").read_text())["path_mapping_rules"]
    assert {(r["source_path"], r["destination_path"]) for r in rules} == {
        ("/Volumes/media", "/mnt/farm/media"),
        ("/farm", "/mnt/farm"),
    }


def test_a_reused_session_still_redacts_what_its_environment_hid(tmp_path: Path, out: Path) -> None:
    secret = "t0ken-Value-99"
    doc = template(step('echo "the token is $TOKEN"; echo "task {{Task.Param.Frame}}"'))
    doc["extensions"] = ["REDACTED_ENV_VARS"]
    doc["jobEnvironments"] = [
        {
            "name": "Secrets",
            "script": {"actions": {"onEnter": bash(f"echo 'openjd_redacted_env: TOKEN={secret}'")}},
        }
    ]
    job, segs = plan(tmp_path, doc, out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], 1).ok and node.run(job, segs[1], 0).ok
    second = node.logs[1].read_text()
    assert "reused" in second and "the token is ********" in second
    assert all(secret not in p.read_text() for p in node.logs)
    assert trace(out) == ["task 1", "task 2"]


def test_a_stalled_task_is_ended_with_its_session(tmp_path: Path, out: Path) -> None:
    quiet = 'if [ {{Task.Param.Frame}} = 2 ]; then sleep 60; fi; echo "task {{Task.Param.Frame}}"'
    job, segs = plan(tmp_path, template(step(quiet, frames="1-3")), out)
    node = Node(tmp_path, "n")
    assert node.run(job, segs[0], 2).ok
    ctx = node.context("quiet", 1, stall_timeout=1.0)
    outcome = run_segment(job, segs[1].spec, ctx, node.pool)
    assert outcome == SegmentOutcome(ok=False, error="openjd task stalled") and ctx.stalled
    assert trace(out) == ["enter", "task 1", "exit"] and node.pool.idle_count() == 0


def test_a_process_that_exits_ends_its_idle_sessions(tmp_path: Path, out: Path) -> None:
    job, segs = plan(tmp_path, template(step()), out)
    (tmp_path / "job.json").write_text(json.dumps({"job": job, "segment": segs[0].spec}))
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from qfarm.jobtypes.base import SegmentContext\n"
        "from qfarm.jobtypes.openjd import OPENJD\n"
        "tmp = Path(sys.argv[1])\n"
        "data = json.loads((tmp / 'job.json').read_text())\n"
        "ctx = SegmentContext(key='s1', log_path=tmp / 'exit.log', timeout=60, job_id=7,\n"
        "                     job_queued_after=3)\n"
        "assert OPENJD.run(data['job'], data['segment'], ctx).ok\n"
    )  # the session is kept (three more queued) when the interpreter exits
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert trace(out) == ["enter", "task 1 hello ", "exit"]
    assert "leaving the farmhouse" in (tmp_path / "exit.log").read_text()


def test_the_pool_forgets_a_job_once_nothing_of_it_is_left() -> None:
    pool = SessionPool(idle=600)
    pool.begin(1, 0)
    assert pool.drained(1)
    pool.end(1)
    assert not pool.drained(1)  # nothing of job 1 runs or waits here: nothing kept of it
    pool.begin(2, 0)
    pool.begin(2, 4)  # a retry queued more of it again
    assert not pool.drained(2)
