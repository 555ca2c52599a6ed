"""The node runner on its own, with no engine: a segment task in, an attempt result out, the
node's configuration given as data (real job types, real subprocesses, no Dask)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

from qfarm.controller.planning import plan_batch
from qfarm.domain.messages import AttemptResult, SegmentTask
from qfarm.domain.model import BatchRequest, JobRequest
from qfarm.node.config import NodeConfig
from qfarm.node.runner import SegmentRunner, run_segment

_job_ids = iter(range(1000, 100000))


def tasks(cwd: Path, command: list[str], **spec: Any) -> list[SegmentTask]:
    """The tasks of a planned command job's segments, as the dispatcher would send them."""
    request = BatchRequest(jobs=(JobRequest("command", {"command": command, "cwd": str(cwd),
                                                        **spec}),))  # fmt: skip
    [job] = plan_batch(request)
    job_id = next(_job_ids)  # a job of its own: preflights are remembered per job
    found = []
    for plan in job.plans:
        found.append(
            SegmentTask(
                key=f"qfarm-b1-s{plan.index}-a1",
                batch_id=1,
                job_id=job_id,
                segment_id=plan.index,
                attempt=1,
                job_type=job.job_type,
                job=job.spec,
                segment=plan.spec,
                log_path=str(cwd / "logs" / f"segment-{plan.index}.log"),
            )
        )
    return found


def run(task: SegmentTask, config: NodeConfig | None = None) -> AttemptResult:
    started: list[int] = []
    result = run_segment(task, started.append, lambda fraction: None, config)
    assert result.pid is None or started == [result.pid]
    return result


def test_a_task_and_its_result_cross_the_engine_as_plain_dicts(tmp_path: Path) -> None:
    [task] = tasks(tmp_path, ["sh", "-c", "echo hello"])
    assert SegmentTask.from_dict(pickle.loads(pickle.dumps(task.to_dict()))) == task
    result = run(task)
    assert result.ok and result.exit_code == 0 and result.key == task.key
    assert result.log_tail.splitlines()[-1] == "hello"
    assert result.started_at is not None and result.ended_at is not None
    assert AttemptResult.from_dict(result.to_dict()) == result
    assert set(result.to_dict()) == {
        "key", "ok", "exit_code", "error", "killed", "pid", "started_at", "ended_at",
        "log_tail", "thumbnail",
    }  # fmt: skip


def test_ok_exit_codes_count_as_success(tmp_path: Path) -> None:
    [one] = tasks(tmp_path, ["sh", "-c", "exit 1"], ok_exit=[0, 1])
    [two] = tasks(tmp_path, ["sh", "-c", "exit 2"], ok_exit=[0, 1])
    assert run(one).ok
    failed = run(two)
    assert not failed.ok and failed.exit_code == 2
    assert failed.error == "command sh exited with code 2"


def test_preflight_runs_once_per_node_process(tmp_path: Path) -> None:
    segments = tasks(
        tmp_path, ["sh", "-c", "echo {start} >> ran.txt"], frames="1-3",
        preflight=["sh", "-c", "echo $$ >> preflight.txt"],
    )  # fmt: skip
    assert all(run(task).ok for task in segments)
    assert len((tmp_path / "preflight.txt").read_text().split()) == 1
    assert (tmp_path / "ran.txt").read_text().split() == ["1", "2", "3"]


def test_a_failing_preflight_fails_the_segment_without_running_it(tmp_path: Path) -> None:
    [task] = tasks(
        tmp_path, ["touch", "should-not-exist"], preflight=["sh", "-c", "echo no licence; exit 4"]
    )
    result = run(task)
    assert not result.ok and result.error == "preflight exited with code 4"
    assert "no licence" in result.log_tail
    assert not (tmp_path / "should-not-exist").exists()
    assert run(task).error == "preflight exited with code 4"  # a failure is not remembered


def test_the_nodes_path_map_comes_with_its_config(tmp_path: Path) -> None:
    here = tmp_path / "mnt"
    here.mkdir()
    [task] = tasks(tmp_path, ["sh", "-c", "pwd > where.txt"])
    task = replace(task, job={**task.job, "cwd": "/Volumes/media"})  # the controller's path
    assert run(task, NodeConfig(path_map={"/Volumes/media": str(here)})).ok
    assert (here / "where.txt").read_text().strip() == str(here)


def test_the_runner_is_data_a_worker_process_can_be_given(tmp_path: Path) -> None:
    runner = SegmentRunner(NodeConfig(controller_url="https://c:8400", scratch_root=tmp_path))
    assert pickle.loads(pickle.dumps(runner)) == runner
    local = SegmentRunner(NodeConfig(local=True))
    facts = local.facts({"command": 2})  # a local node with no service that needs a tool
    assert set(facts["fingerprint"]) == {"qfarm", "python"}
    assert {"cpu_percent", "memory_used"} <= set(local.host_load())
