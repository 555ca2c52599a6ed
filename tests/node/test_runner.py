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
