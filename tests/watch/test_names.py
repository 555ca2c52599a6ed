"""The files a watcher never takes: hidden, partial downloads, backups, its sidecars."""

from __future__ import annotations

import pytest

from qfarm.watch.names import ignored


@pytest.mark.parametrize(
    "name",
    [".DS_Store", ".clip.mov.Xa81b2", ".qfarm-part-1.clip.mov", "clip.mov.part",
     "clip.MOV.crdownload", "clip.mov.download", "clip.mov.tmp", "clip.mov~", "~$notes.docx",
     "clip.mov.qfarm.json", "clip.mov.!qB", "clip.mov.filepart"],
)  # fmt: skip
def test_partial_hidden_and_own_files_are_ignored(name: str) -> None:
    assert ignored(name)


@pytest.mark.parametrize("name", ["clip.mov", "shot 12 (final).mxf", "part1.mov", "tmp.wav"])
def test_ordinary_files_are_taken(name: str) -> None:
    assert not ignored(name)
