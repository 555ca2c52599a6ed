"""How transcode arguments become sources: files, sequences and folders (no media is
opened, so empty files stand in for frames and movies)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.media.sources import MediaSource, expand, parse_rate, resolve


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _frames(folder: Path, name: str, numbers: range) -> None:
    _touch(folder, *(name % n for n in numbers))


def test_every_form_of_a_sequence_names_one_source(tmp_path: Path) -> None:
    _frames(tmp_path / "shot", "shot_%04d.exr", range(1001, 1049))
    want = MediaSource(str(tmp_path / "shot" / "shot_%04d.exr"), 1001, 48, Fraction(25))
    for argument in ("shot/shot_%04d.exr", "shot/shot_####.exr", "shot", "shot/*.exr"):
        assert expand([argument], tmp_path, Fraction(25)).sources == [want], argument
    assert want.stem == "shot" and want.last == 1048
    assert want.frame_path(1007) == str(tmp_path / "shot" / "shot_1007.exr")
    assert want.describe() == "shot_%04d.exr, frames 1001-1048 at 25 fps"
    assert want.input_args(12)[:4] == ["-framerate", "25", "-start_number", "1013"]
    assert MediaSource.from_dict(want.to_dict()) == want


def test_unpadded_numbers_and_frames_named_by_number_alone(tmp_path: Path) -> None:
    _frames(tmp_path / "a", "f%d.png", range(8, 12))
    (source,) = expand(["a"], tmp_path).sources
    assert source.name == "f%d.png" and (source.first, source.frames) == (8, 4)
    _frames(tmp_path / "plate", "%03d.png", range(1, 4))
    (source,) = expand(["plate"], tmp_path).sources
    assert source.name == "%03d.png" and source.stem == "plate"
    assert source.rate == Fraction(24)  # the default


def test_a_gap_names_the_first_missing_frame(tmp_path: Path) -> None:
    _frames(tmp_path / "s", "s.%04d.png", [*range(1, 5), *range(7, 9)])  # type: ignore[arg-type]
    for argument in ("s", "s/s.%04d.png", "s/*.png", "s/s.####.png"):
        with pytest.raises(InvalidRequest, match=r"frame 5 \(s\.0005\.png\) is missing"):
            expand([argument], tmp_path)


def test_a_folder_of_movies_is_a_source_per_movie_and_lists_the_rest(tmp_path: Path) -> None:
    _touch(tmp_path / "day1", "a.mov", "b.MXF", "c.wav", "notes.txt", "thumb.jpg", ".DS_Store")
    found = expand(["day1"], tmp_path)
    assert [Path(s.path).name for s in found.sources] == ["a.mov", "b.MXF", "c.wav"]
    assert not any(s.is_sequence for s in found.sources)
    assert found.skipped == ["notes.txt", "thumb.jpg"]


def test_a_glob_of_movies_or_of_unrelated_stills_stays_one_source_per_file(
    tmp_path: Path,
) -> None:
    _touch(tmp_path, "a.mov", "b.mov", "logo.png", "poster.png", "x_1.png", "y_2.png")
    assert len(expand(["*.mov"], tmp_path).sources) == 2
    stills = expand(["*.png"], tmp_path).sources
    assert len(stills) == 4 and not any(s.is_sequence for s in stills)


def test_what_names_nothing_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "empty")
    _touch(tmp_path / "stills", "logo.png", "poster.png")
    for argument, message in [
        ("missing.mov", "does not exist"),
        ("*.mkv", "matches no file"),
        ("f_%04d.png", "matches no frame"),
        ("nowhere/f_%04d.png", "does not exist"),
        ("empty", "holds no media files or image frames"),
        ("stills", "not one numbered sequence"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            expand([argument], tmp_path)
    _touch(tmp_path / "two", "a.mov", "b.mov")
    with pytest.raises(InvalidRequest, match="a transcode job takes one source"):
        resolve("two", tmp_path)


def test_rates() -> None:
    assert parse_rate(None) == Fraction(24)
    assert parse_rate("30000/1001") == Fraction(30000, 1001)
    assert parse_rate(25) == Fraction(25)
    for bad in ("fast", "0", "-24"):
        with pytest.raises(InvalidRequest, match="rate"):
            parse_rate(bad)
