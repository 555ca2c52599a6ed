"""Frame lists: parsing, cutting into segments and writing back, in :mod:`qfarm.frames`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun, chunk_runs, format_run, parse_frames

# --- parse_frames: valid lists --------------------------------------------------------------


def test_parse_simple_range() -> None:
    assert parse_frames("1-240") == [FrameRun(1, 240, 1)]


def test_parse_range_with_step() -> None:
    runs = parse_frames("1-240x2")
    # The end is trimmed to the last frame the step reaches.
    assert runs == [FrameRun(1, 239, 2)]
    assert runs[0].frames[:3] == [1, 3, 5]
    assert runs[0].frames[-1] == 239
    assert len(runs[0]) == 120


def test_parse_range_with_step_that_lands_on_the_end() -> None:
    assert parse_frames("10-20x5") == [FrameRun(10, 20, 5)]


def test_parse_mixed_list_keeps_one_run_per_part() -> None:
    assert parse_frames("1,5,10-20") == [
        FrameRun(1, 1, 1),
        FrameRun(5, 5, 1),
        FrameRun(10, 20, 1),
    ]


def test_parse_single_frame() -> None:
    assert parse_frames("7") == [FrameRun(7, 7, 1)]


def test_parse_frame_zero() -> None:
    assert parse_frames("0-2") == [FrameRun(0, 2, 1)]


@pytest.mark.parametrize("text", [" 1-10 , 20 ", "1 - 10,20", "1-10,\t20", "  1-10,20  "])
def test_parse_ignores_spaces_around_parts_and_dashes(text: str) -> None:
    assert parse_frames(text) == [FrameRun(1, 10, 1), FrameRun(20, 20, 1)]


def test_parse_spaces_around_step() -> None:
    assert parse_frames("1 - 9 x 2") == [FrameRun(1, 9, 2)]


def test_parse_keeps_parts_in_the_order_written() -> None:
    assert parse_frames("20-22,1-2") == [FrameRun(20, 22, 1), FrameRun(1, 2, 1)]


def test_parse_interleaved_steps_do_not_overlap() -> None:
    # Odd and even frames of the same range share no frame.
    assert parse_frames("1-9x2,2-10x2") == [FrameRun(1, 9, 2), FrameRun(2, 10, 2)]


# --- parse_frames: malformed lists ----------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_empty_raises(text: str) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        parse_frames(text)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("a", "'a'"),
        ("1-", "'1-'"),
        ("1--3", "'1--3'"),
        ("1-4x", "'1-4x'"),
        ("7x2", "'7x2'"),
        ("-3", "'-3'"),
        ("1.5", "'1.5'"),
        ("1-10, a, 20", "'a'"),
    ],
)
def test_parse_malformed_part_raises_naming_it(text: str, named: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_frames(text)
    message = str(info.value)
    assert "malformed frame range" in message
    assert named in message


def test_parse_empty_part_between_commas_raises() -> None:
    with pytest.raises(InvalidRequest, match="malformed frame range '' in '1,,2'"):
        parse_frames("1,,2")


def test_parse_range_that_ends_before_it_starts_raises() -> None:
    with pytest.raises(InvalidRequest, match="'5-1' ends before it starts"):
        parse_frames("5-1")


def test_parse_step_zero_raises() -> None:
    with pytest.raises(InvalidRequest, match="'1-10x0' has a step of 0"):
        parse_frames("1-10x0")


@pytest.mark.parametrize(
    ("text", "frame"), [("3,3", 3), ("1-10,5", 5), ("1-10x3,4-6", 4), ("8,1-20x7", 8)]
)
def test_parse_frame_listed_twice_raises_naming_it(text: str, frame: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_frames(text)
    assert f"frame {frame} appears twice" in str(info.value)
    assert repr(text) in str(info.value)


def test_parse_space_inside_a_number_raises() -> None:
    with pytest.raises(InvalidRequest):
        parse_frames("1 0")


# --- chunk_runs -----------------------------------------------------------------------------


def test_chunk_cuts_a_run_into_pieces_of_segment_size() -> None:
    assert chunk_runs([FrameRun(1, 10)], 3) == [
        FrameRun(1, 3),
        FrameRun(4, 6),
        FrameRun(7, 9),
        FrameRun(10, 10),
    ]


def test_chunk_counts_frames_not_numbers_with_a_step() -> None:
    assert chunk_runs([FrameRun(1, 19, 2)], 3) == [
        FrameRun(1, 5, 2),
        FrameRun(7, 11, 2),
        FrameRun(13, 17, 2),
        FrameRun(19, 19, 2),
    ]


def test_chunk_never_joins_two_runs() -> None:
    assert chunk_runs(parse_frames("1-5,10-12"), 4) == [
        FrameRun(1, 4),
        FrameRun(5, 5),
        FrameRun(10, 12),
    ]


def test_chunk_larger_than_the_run_gives_one_piece() -> None:
    assert chunk_runs([FrameRun(1, 240)], 1000) == [FrameRun(1, 240)]


def test_chunk_of_one_gives_one_piece_per_frame() -> None:
    assert chunk_runs([FrameRun(5, 9, 2)], 1) == [
        FrameRun(5, 5, 2),
        FrameRun(7, 7, 2),
        FrameRun(9, 9, 2),
    ]


def test_chunk_of_no_runs_is_empty() -> None:
    assert chunk_runs([], 5) == []


@pytest.mark.parametrize("size", [0, -1])
def test_chunk_size_below_one_raises(size: int) -> None:
    with pytest.raises(InvalidRequest, match=f"at least 1, not {size}"):
        chunk_runs([FrameRun(1, 10)], size)


# --- format_run and FrameRun ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "text"),
    [
        (FrameRun(1, 10), "1-10"),
        (FrameRun(7, 7), "7"),
        (FrameRun(7, 7, 5), "7"),
        (FrameRun(1, 19, 2), "1-19x2"),
        (FrameRun(0, 100, 10), "0-100x10"),
    ],
)
def test_format_run(run: FrameRun, text: str) -> None:
    assert format_run(run) == text


def test_frame_run_frames_and_length() -> None:
    run = FrameRun(3, 15, 4)
    assert run.frames == [3, 7, 11, 15]
    assert len(run) == 4


# --- properties -----------------------------------------------------------------------------


@st.composite
def frame_lists(draw: st.DrawFn) -> tuple[str, list[list[int]]]:
    """A valid frame list as text, and the frames of each of its parts in order."""
    count = draw(st.integers(min_value=1, max_value=6))
    parts: list[tuple[str, list[int]]] = []
    cursor = 0
    for _ in range(count):
        start = cursor + draw(st.integers(min_value=0, max_value=20))
        length = draw(st.integers(min_value=1, max_value=30))
        step = draw(st.integers(min_value=1, max_value=5))
        last = start + (length - 1) * step
        frames = list(range(start, last + 1, step))
        if length == 1 and draw(st.booleans()):
            text = str(start)
        else:
            # The written end may overshoot the last frame by less than a step.
            end = last + draw(st.integers(min_value=0, max_value=step - 1))
            if step == 1 and draw(st.booleans()):
                text = f"{start}-{end}"
            else:
                text = f"{start}-{end}x{step}"
        if draw(st.booleans()):
            text = f" {text} "
        parts.append((text, frames))
        cursor = last + 1
    ordered = draw(st.permutations(parts))
    return ",".join(text for text, _ in ordered), [frames for _, frames in ordered]


@settings(max_examples=300, deadline=None)
@given(frame_lists())
def test_property_parse_gives_the_frames_written(case: tuple[str, list[list[int]]]) -> None:
    text, parts = case
    runs = parse_frames(text)
    assert [run.frames for run in runs] == parts
    assert all(len(run) == len(run.frames) for run in runs)


@settings(max_examples=300, deadline=None)
@given(frame_lists(), st.integers(min_value=1, max_value=40))
def test_property_chunks_cover_the_frames_in_order_within_size_and_parts(
    case: tuple[str, list[list[int]]], segment_size: int
) -> None:
    text, parts = case
    chunks = chunk_runs(parse_frames(text), segment_size)

    covered = [frame for chunk in chunks for frame in chunk.frames]
    assert covered == [frame for part in parts for frame in part]

    for chunk in chunks:
        assert 1 <= len(chunk) <= segment_size
        assert len(chunk.frames) == len(chunk)
        holders = [part for part in parts if set(chunk.frames) <= set(part)]
        assert len(holders) == 1, f"{chunk} spans parts of {text!r}"


@settings(max_examples=300, deadline=None)
@given(frame_lists())
def test_property_format_run_round_trips(case: tuple[str, list[list[int]]]) -> None:
    text, _parts = case
    runs = parse_frames(text)
    again = parse_frames(",".join(format_run(run) for run in runs))
    assert [run.frames for run in again] == [run.frames for run in runs]


def test_a_huge_frame_range_is_refused_without_building_it() -> None:
    with pytest.raises(InvalidRequest, match="more than 1,000,000 frames"):
        parse_frames("1-10000000000")
