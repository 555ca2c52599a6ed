"""What a service node offers and reports: services follow the tools that run here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qfarm.media.tool import FFMPEG_ENV, ffmpeg
from qfarm.node.facts import node_facts, offerable_services

pytestmark = pytest.mark.integration


def test_default_services_include_transcode_when_ffmpeg_runs() -> None:
    offered, dropped = offerable_services(None)
    assert offered["transcode"] == 1 and offered["command"] >= 1
    assert dropped == []
    assert node_facts()["fingerprint"]["ffmpeg"] == ffmpeg().version


def test_transcode_is_not_offered_without_a_working_ffmpeg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FFMPEG_ENV, "/nonexistent/ffmpeg")
    offered, dropped = offerable_services({"command": 2, "transcode": 1})
    assert offered == {"command": 2}
    assert dropped == ["transcode is not offered: ffmpeg does not run on this node"]
    # Asked for nothing in particular, the node just leaves it out.
    assert offerable_services(None)[1] == []
    assert "ffmpeg" not in node_facts()["fingerprint"]


def test_only_the_tools_of_the_services_asked_for_are_asked_their_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node or run of command jobs never starts Blender to ask its version (half a second
    of CPU), and a transcode node asks ffmpeg only."""
    from qfarm import renderers

    def no_renderers() -> dict[str, str]:
        raise AssertionError("a renderer was asked its version")

    monkeypatch.setattr(renderers, "fingerprint", no_renderers)
    assert offerable_services({"command": 2}) == ({"command": 2}, [])
    offered, _ = offerable_services({"command": 1, "transcode": 1})
    assert offered == {"command": 1, "transcode": 1}
    assert set(node_facts({"ffmpeg"})["fingerprint"]) == {"qfarm", "python", "ffmpeg"}
    assert set(node_facts(set())["fingerprint"]) == {"qfarm", "python"}
    with pytest.raises(AssertionError, match="renderer was asked"):
        node_facts({"blender", "povray"})  # a render node's


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to give one")
def test_a_node_pinned_to_one_core_says_it_has_one() -> None:
    # As under `taskset -c 0`, a Slurm allocation or a container's cpuset: the node reports
    # the cores it may run on, so a segment is not told to run two threads on one core.
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from qfarm.node.facts import node_facts;"
        "print(node_facts(set())['cores'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1"]
    assert node_facts(set())["cores"] == len(os.sched_getaffinity(0))
