"""Path mapping on nodes."""

from __future__ import annotations

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.node import pathmap

MAP = {"/Volumes/media": "/mnt/media", "/Volumes/media/proxies": "/fast/proxies"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Volumes/media/shot1/a.mov", "/mnt/media/shot1/a.mov"),
        ("/Volumes/media", "/mnt/media"),
        ("/Volumes/media/proxies/a.mp4", "/fast/proxies/a.mp4"),  # the longest prefix wins
        ("/Volumes/media2/a.mov", "/Volumes/media2/a.mov"),  # whole folder names only
        ("--out=/Volumes/media/x.png", "--out=/mnt/media/x.png"),
        ("relative/path", "relative/path"),
        ("/elsewhere/a=b", "/elsewhere/a=b"),
    ],
)
def test_map_path(text: str, expected: str) -> None:
    assert pathmap.map_path(text, MAP) == expected


def test_map_all_reaches_nested_strings_only() -> None:
    spec = {
        "cwd": "/Volumes/media/shot1",
        "command": ["render", "/Volumes/media/shot1/scene", "-n", 3],
        "env": {"OUT": "/Volumes/media/out"},
    }
    assert pathmap.map_all(spec, MAP) == {
        "cwd": "/mnt/media/shot1",
        "command": ["render", "/mnt/media/shot1/scene", "-n", 3],
        "env": {"OUT": "/mnt/media/out"},
    }


def test_parse() -> None:
    # The map reaches the node's workers in its NodeConfig (see test_segment_runner.py).
    mapping = pathmap.parse(["/Volumes/media/=/mnt/media", "/a=/b"])
    assert mapping == {"/Volumes/media": "/mnt/media", "/a": "/b"}


@pytest.mark.parametrize("pair", ["/a", "a=/b", "/a=b", "=/b"])
def test_bad_path_maps_are_refused(pair: str) -> None:
    with pytest.raises(InvalidRequest, match="--path-map"):
        pathmap.parse([pair])
