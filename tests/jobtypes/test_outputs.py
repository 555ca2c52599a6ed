"""The output helpers every job type shares (:mod:`qfarm.jobtypes.outputs`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.jobtypes.outputs import discard, place, temporary_name, write_concat_list


def test_a_temporary_name_is_hidden_beside_and_keeps_the_extension() -> None:
    assert temporary_name("/out/shot.mp4", "k1-2") == "/out/.qfarm-k1-2.shot.mp4"


def test_discard_takes_a_missing_file_or_none(tmp_path: Path) -> None:
    path = tmp_path / "half.mp4"
    path.write_text("x")
    discard(str(path))
    assert not path.exists()
    discard(str(path))
    discard(None)


def test_place_moves_into_the_final_name(tmp_path: Path) -> None:
    staged, final = tmp_path / "staged.png", tmp_path / "final.png"
    staged.write_text("frame")
    final.write_text("old")
    place(staged, final)
    assert final.read_text() == "frame" and not staged.exists()


def test_a_concat_list_quotes_names_and_gives_durations(tmp_path: Path) -> None:
    listing = tmp_path / "list.ffconcat"
    write_concat_list(listing, [("/a/it's.mp4", 2.0), ("/a/b.mp4", 0.04)])
    assert listing.read_text().splitlines() == [
        "ffconcat version 1.0",
        "file '/a/it'\\''s.mp4'",
        "duration 2.000000000",
        "file '/a/b.mp4'",
        "duration 0.040000000",
    ]
    with pytest.raises(ValueError, match="line break"):
        write_concat_list(listing, [("/a/two\nlines.mp4", 1.0)])
