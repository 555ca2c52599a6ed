"""The one rule for which log line looks like an error (qfarm.domain.loglines), behind the
Batch Monitor's "First error" button and GET .../log/summary."""

from __future__ import annotations

import pytest

from qfarm.domain.loglines import LINE_CHARS, looks_like_error, split_lines, summarize

ERRORS = [
    "Error: cannot read scene.blend",
    "ERROR: license server not reachable",
    "main.c:3: error: expected ';'",
    "Traceback (most recent call last):",
    "fatal: not a git repository",
    "FATAL ERROR in native method",
    "cat: /mnt/in/frame_0001.exr: No such file or directory",
    "Render failed",
    "Failed to open output file",
    "ValueError: invalid literal for int()",
    'Exception in thread "main" java.lang.NullPointerException',
    "Segmentation fault (core dumped)",
    "sh: 1: nuke: Permission denied",
    "sh: 1: blender: command not found",
    "panic: runtime error: index out of range",
    "[h264 @ 0x55d] Error while decoding stream #0:0",
    "Could not open codec",
    "2 errors generated.",
    # The lines qfarm itself writes into a log when an attempt goes wrong.
    "[qfarm] failed: the task's action exited with code: 3",
    "[qfarm] verification failed: out/part-1.txt is empty",
    "[qfarm] ended: no progress for 5 min 00 s (its stall timeout)",
    "[qfarm] command timed out",
    "[qfarm] preflight was killed by signal 9",
]

NOT_ERRORS = [
    "",
    "frame 12/240 done",
    "Compiled with 0 errors and 0 warnings",
    "no errors found",
    "tests: 12 passed, 0 failed",
    "failed: 0, passed: 14",
    "errors=0",
    "finished without errors",
    "[qfarm] preflight: ffmpeg -v error -i in.mov -f null -",
    "ffmpeg -loglevel error -i clip.mov",
    "writing stderr to the log",
    "terror_count: 2",  # a word that holds "error" is not the word
    "Saved: 'out/frame_0001.png'",
]


@pytest.mark.parametrize("line", ERRORS)
def test_lines_that_say_something_went_wrong_look_like_errors(line: str) -> None:
    assert looks_like_error(line)


@pytest.mark.parametrize("line", NOT_ERRORS)
def test_counts_of_none_and_ordinary_lines_do_not(line: str) -> None:
    assert not looks_like_error(line)


def test_the_summary_names_the_first_error_line_counting_from_one() -> None:
    log = "start\n0 errors so far\nframe 1\nError: disk full\nTraceback (most recent call last):\n"
    summary = summarize(split_lines(log))
    assert summary.lines == 5
    assert summary.first_error_line == 4
    assert summary.first_error == "Error: disk full"


def test_a_log_without_an_error_has_no_first_error_line() -> None:
    summary = summarize(split_lines("frame 1\nframe 2\n"))
    assert (summary.lines, summary.first_error_line, summary.first_error) == (2, None, "")
    assert summarize([]).lines == 0


def test_lines_split_on_newlines_only_as_the_page_splits_them() -> None:
    # A carriage return (a progress bar's) or a form feed does not start a line of its own.
    assert split_lines("a\rb\x0cc\nd") == ["a\rb\x0cc", "d"]
    assert split_lines("a\n\nb\n") == ["a", "", "b"]
    assert split_lines("") == []
    # Lines with their own "\n" (read from a file) count the same.
    assert summarize(["ok\n", "fatal: gone\r\n"]).first_error == "fatal: gone"


def test_the_first_error_line_is_cut_to_a_bounded_length() -> None:
    summary = summarize(["failed " + "x" * 5000])
    assert len(summary.first_error) == LINE_CHARS
