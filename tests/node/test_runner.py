"""What a service node offers and reports: services follow the tools that run here."""

from __future__ import annotations

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
