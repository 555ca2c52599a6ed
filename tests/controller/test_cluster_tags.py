"""Tags and GPUs on a real cluster: a `qfarm controller` and two `qfarm node` processes on
loopback, one started with `--tags gpu --gpus 2 --tags site=paris`, one with nothing. Jobs
that require the tag and hold a GPU run only on the first, two at a time, each with its own
CUDA_VISIBLE_DEVICES; a job that requires what no node has waits and says why; an OpenJD
step whose hostRequirements only the tagged node meets runs only there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]


class TagCluster:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = Client(url)

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "QFARM_CONTROLLER": self.url, "COLUMNS": "200"}
        return subprocess.run(
            [*QFARM, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
        )

    def segments(self, batch_id: int) -> list[dict[str, Any]]:
        return self.client.segments(batch_id)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TagCluster]:
    root = tmp_path_factory.mktemp("tags")
    procs = []
    try:
        ctl, url = start_controller(root)
        procs.append(ctl)
        services = "command=4,openjd=2"
        procs.append(
            start_node(root, url, "gpu-node", "--tags", "gpu", "--tags", "site=paris",
                       "--gpus", "2", services=services)
        )  # fmt: skip
        procs.append(start_node(root, url, "plain-node", "--gpus", "0", services=services))
        yield TagCluster(url)
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_nodes_show_their_tags_and_resources(farm: TagCluster) -> None:
    nodes = {n["name"]: n for n in farm.client.nodes()}
    assert nodes["gpu-node"]["tags"] == ["gpu", "site=paris"]
    assert nodes["gpu-node"]["resources"] == {"gpu": 2} and nodes["gpu-node"]["gpus"] == 2
    assert nodes["gpu-node"]["services"] == {"command": 4, "openjd": 2}
    assert nodes["plain-node"]["tags"] == [] and nodes["plain-node"]["resources"] == {}
    listed = json.loads(farm.cli("nodes", "--json").stdout)
    assert {n["name"]: n["resources"] for n in listed}["gpu-node"] == {"gpu": 2}
    table = farm.cli("nodes").stdout
    row = next(line for line in table.splitlines() if "gpu-node" in line)
    assert "gpu,site=paris" in row and "gpu=2" in row


def test_gpu_segments_run_on_the_gpu_node_two_at_a_time_each_on_its_device(
    farm: TagCluster, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    script = (
        'echo "$CUDA_VISIBLE_DEVICES" > dev-{start}.txt; '
        f"while [ ! -e {go} ]; do sleep 0.02; done"
    )
    submitted = farm.cli(
        "submit", "--json", "--require", "gpu", "--gpus", "1", "--frames", "1-4", "--",
        "sh", "-c", script, cwd=tmp_path,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    batch_id = json.loads(submitted.stdout)["batch"]

    def running() -> list[dict[str, Any]]:
        return [s for s in farm.segments(batch_id) if s["state"] == "running"]

    wait_until_sync(lambda: len(running()) == 2, what="two GPU segments running")
    wait_until_sync(lambda: len(list(tmp_path.glob("dev-*.txt"))) == 2, what="both wrote")
    # Four command instances are free on the GPU node, but only two GPUs: two run, two wait.
    states = sorted(s["state"] for s in farm.segments(batch_id))
    assert states == ["queued", "queued", "running", "running"], states
    first = sorted(p.read_text().strip() for p in tmp_path.glob("dev-*.txt"))
    assert first == ["0", "1"]  # the two at once got different devices
    go.touch()
    waited = farm.cli("wait", str(batch_id))
    assert waited.returncode == 0, waited.stderr
    assert {s["node"] for s in farm.segments(batch_id)} == {"gpu-node"}
    assert {p.read_text().strip() for p in tmp_path.glob("dev-*.txt")} == {"0", "1"}
    # A job that holds no GPU may run anywhere, and gets no device.
    plain = farm.cli(
        "submit", "--json", "--frames", "1-8", "--",
        "sh", "-c", "printenv CUDA_VISIBLE_DEVICES > plain-{start}.txt; true", cwd=tmp_path,
    )  # fmt: skip
    plain_id = json.loads(plain.stdout)["batch"]
    assert farm.cli("wait", str(plain_id)).returncode == 0
    assert all(p.read_text() == "" for p in tmp_path.glob("plain-*.txt"))


def test_a_job_no_node_can_serve_waits_and_says_why(farm: TagCluster, tmp_path: Path) -> None:
    cases = [
        (["--require", "fast-disk"], "needs tag fast-disk; no online command node has it"),
        (["--gpus", "3"], "needs 3 gpu; the most any online command node has is 2"),
    ]
    for options, reason in cases:
        submitted = farm.cli("submit", "--json", *options, "--", "true", cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr
        batch_id = json.loads(submitted.stdout)["batch"]
        wait_until_sync(
            lambda b=batch_id, r=reason: farm.client.batch(b).raw["jobs"][0]["waiting"] == r,
            what=f"the reason {reason!r}",
        )
        assert farm.client.batch(batch_id).state == "queued"
        shown = farm.cli("show", str(batch_id))
        assert reason in shown.stdout, shown.stdout
        assert "requires " in shown.stdout  # what the job asked for, beside why it waits
        farm.cli("cancel", str(batch_id))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--require", "bad tag"], "--require 'bad tag' is not a tag"),
        (["--resource", "license_nuke"], "--resource 'license_nuke' is not NAME=N"),
        (["--gpus", "-1"], "--gpus -1 must be a whole number"),
    ],
)
def test_a_malformed_requirement_is_a_usage_error(
    farm: TagCluster, tmp_path: Path, options: list[str], message: str
) -> None:
    submitted = farm.cli("submit", *options, "--", "true", cwd=tmp_path)
    assert submitted.returncode == 2, submitted.stderr
    assert message in submitted.stderr


def test_the_api_refuses_a_malformed_requirement_with_a_400(farm: TagCluster) -> None:
    import httpx

    for requirements, message in (
        ({"tags": ["bad tag"]}, "'bad tag' is not a tag"),
        ({"resources": {"9x": 1}}, "'9x' must start with a letter"),
        ({"gpus": "many"}, "gpus"),
    ):
        job = {"type": "command", "spec": {"command": ["true"]}, "requirements": requirements}
        answer = httpx.post(f"{farm.url}/api/v1/batches", json={"jobs": [job]})
        assert answer.status_code == 400, answer.text
        assert message in answer.json()["error"]


def test_an_openjd_step_runs_only_where_its_host_requirements_hold(
    farm: TagCluster, tmp_path: Path
) -> None:
    from qfarm.jobtypes.openjd import batch_from_plan
    from qfarm.openjd import load_plan

    template = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "Paris only",
        "steps": [
            {
                "name": "Render",
                "parameterSpace": {
                    "taskParameterDefinitions": [{"name": "F", "type": "INT", "range": "1-4"}]
                },
                "hostRequirements": {
                    "amounts": [{"name": "amount.worker.gpu", "min": 1}],
                    "attributes": [
                        {"name": "attr.site", "anyOf": ["paris", "lyon"]},
                        {"name": "attr.worker.os.family", "anyOf": ["linux", "macos"]},
                    ],
                },
                "script": {"actions": {"onRun": {"command": "true"}}},
            },
            {
                "name": "Nowhere",
                "hostRequirements": {"attributes": [{"name": "attr.site", "anyOf": ["tokyo"]}]},
                "script": {"actions": {"onRun": {"command": "true"}}},
            },
        ],
    }
    path = tmp_path / "paris.template.yaml"
    path.write_text(yaml.safe_dump(template))
    plan = load_plan(path, [], [], cwd=tmp_path)
    batch_id = farm.client.submit(batch_from_plan(plan)).id

    def render_done() -> bool:
        jobs = {j["name"]: j for j in farm.client.batch(batch_id).raw["jobs"]}
        return jobs["Render"]["state"] == "done"

    wait_until_sync(render_done, timeout=120, what="the Render step done")
    detail = farm.client.batch(batch_id).raw
    jobs = {j["name"]: j for j in detail["jobs"]}
    render = [s for s in farm.segments(batch_id) if s["job_id"] == jobs["Render"]["id"]]
    assert {s["node"] for s in render} == {"gpu-node"}
    assert jobs["Nowhere"]["waiting"] == ("needs attr.site tokyo; online openjd nodes have paris")
    farm.cli("cancel", str(batch_id))
