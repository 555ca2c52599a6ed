"""A node's tags, counted resources and GPUs: the options checked, GPUs detected through
nvidia-smi's listing, and each segment that holds gpus given its own devices as
CUDA_VISIBLE_DEVICES for as long as its attempt runs (real subprocesses, no Dask)."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from qfarm.domain.errors import QfarmError
from qfarm.node.config import NodeConfig
from qfarm.node.facts import cpu_arch, os_family, parse_gpu_list
from qfarm.node.runner import GPUS, GpuPool, SegmentRunner
from qfarm.node.serve import node_capacity
from tests.helpers import wait_until_sync
from tests.node.test_segment_runner import run, tasks

SMI = "0, 24576\n1, 16384\n"


def test_nvidia_smis_listing_is_read_and_odd_lines_skipped() -> None:
    assert parse_gpu_list(SMI) == [("0", 24576), ("1", 16384)]
    assert parse_gpu_list("No devices were found\n\n") == []


def test_gpus_default_to_those_detected_and_can_be_set() -> None:
    detected = node_capacity([], None, [], {"command": 2}, detect=lambda: parse_gpu_list(SMI))
    assert detected.resources == {"gpu": 2} and detected.gpu_devices == ("0", "1")
    assert detected.gpu_memory_mib == 16384
    none = node_capacity(["gpu,fast-disk"], None, ["license_nuke=2"], {}, detect=lambda: [])
    assert none.resources == {"license_nuke": 2} and none.tags == ("fast-disk", "gpu")
    one = node_capacity([], 1, [], {}, detect=lambda: parse_gpu_list(SMI))
    assert one.gpu_devices == ("0",) and one.resources == {"gpu": 1}
    # Asked for without nvidia-smi (another vendor, a test): numbered from 0.
    assert node_capacity([], 2, [], {}, detect=lambda: []).gpu_devices == ("0", "1")
    assert node_capacity([], 0, [], {}, detect=lambda: parse_gpu_list(SMI)).resources == {}


@pytest.mark.parametrize(
    ("tags", "gpus", "resources", "message"),
    [
        ([], None, ["gpu=2"], "give the GPU count with --gpus N"),
        ([], None, ["command=2"], "--resource command has the name of a service"),
        ([], None, ["nuke"], "--resource 'nuke' is not NAME=N"),
        (["bad tag"], None, [], "--tags 'bad tag' is not a tag"),
        ([], -1, [], "--gpus -1 must be a whole number"),
    ],
)
def test_bad_node_options_are_refused_naming_them(
    tags: list[str], gpus: int | None, resources: list[str], message: str
) -> None:
    with pytest.raises(QfarmError, match=message):
        node_capacity(tags, gpus, resources, {"command": 1}, detect=lambda: [])


def test_a_nodes_facts_carry_what_requirements_match() -> None:
    config = NodeConfig(local=True, tags=("gpu",), resources={"gpu": 2, "x": 0},
                        gpu_memory_mib=8192)  # fmt: skip
    facts = SegmentRunner(config).facts({"command": 1})
    assert facts["tags"] == ["gpu"] and facts["resources"] == {"gpu": 2}
    assert facts["gpus"] == 2 and facts["gpu_memory_mib"] == 8192
    assert facts["os_family"] == os_family() in ("linux", "macos", "windows")
    assert facts["cpu_arch"] == cpu_arch() and facts["scratch_gib"] >= 0


def test_the_pool_gives_distinct_devices_and_takes_them_back() -> None:
    pool = GpuPool()
    devices = ("0", "1", "2")
    assert pool.take("a", 1, devices) == ("0",)
    assert pool.take("b", 2, devices) == ("1", "2")
    with pytest.raises(QfarmError, match="holds 1 gpu but 0 of this node's 3 are free"):
        pool.take("c", 1, devices)
    pool.give_back("a")
    assert pool.take("c", 1, devices) == ("0",)


def test_concurrent_segments_get_different_devices_and_give_them_back(tmp_path: Path) -> None:
    config = NodeConfig(resources={"gpu": 2}, gpu_devices=("0", "1"))
    go = tmp_path / "go"
    script = (
        f'echo "[$CUDA_VISIBLE_DEVICES]" > out-{{start}}.txt; '
        f"while [ ! -e {go} ]; do sleep 0.01; done"
    )
    found = tasks(tmp_path, ["sh", "-c", script], frames="1-2")
    held = [replace(t, resources={"gpu": 1}) for t in found]
    results = []
    threads = [threading.Thread(target=lambda t=t: results.append(run(t, config))) for t in held]
    for thread in threads:
        thread.start()
    wait_until_sync(lambda: len(GPUS.held()) == 2, what="both segments holding a gpu")
    wait_until_sync(lambda: all((tmp_path / f"out-{i}.txt").exists() for i in (1, 2)))
    go.touch()
    for thread in threads:
        thread.join(30)
    assert all(r.ok for r in results), results
    seen = sorted((tmp_path / f"out-{i}.txt").read_text().strip() for i in (1, 2))
    assert seen == ["[0]", "[1]"]
    assert GPUS.held() == {}
    # A segment that holds no gpu gets nothing set; one that fails gives its device back.
    [plain] = tasks(tmp_path, ["sh", "-c", "printenv CUDA_VISIBLE_DEVICES > plain.txt; true"])
    assert run(plain, config).ok
    assert (tmp_path / "plain.txt").read_text().strip() == os.environ.get(
        "CUDA_VISIBLE_DEVICES", ""
    )
    [failing] = tasks(tmp_path, ["sh", "-c", "exit 3"])
    assert not run(replace(failing, resources={"gpu": 2}), config).ok
    assert GPUS.held() == {}
