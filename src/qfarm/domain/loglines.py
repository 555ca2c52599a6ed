"""Which line of a log looks like an error: the one rule behind the Batch Monitor's "First
error" button and the API's log summary (``GET .../attempts/N/log/summary``).

A render or transcode log is thousands of lines of progress; what a person opens it for is
the first line where something went wrong, because later lines are usually its
consequences. The rule lives here, pure and in one place, so the page, the API and the CLI
never disagree about which line that is: the page asks the API, and the API asks this module.

Lines are numbered from 1 and split on ``\\n`` only (as a browser's ``text.split("\\n")``
splits them), so a number the API gives is the line the page shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# Words and phrases programs print when something went wrong (case does not matter):
# ffmpeg's "Error while decoding", Blender's "Error: ...", gcc's "error:", shells' "No such
# file or directory", Python's "Traceback", Go's "panic:", and the lines qfarm itself adds to
# a log when an attempt fails ("[qfarm] failed: ... exited with code: 1", "[qfarm]
# verification failed: ...", "[qfarm] ended: no progress for 5 min (its stall timeout)").
_ERROR_WORDS: Final = re.compile(
    r"\b(?:errors?|fatal|failed|failure|traceback|panic|aborted|segmentation fault"
    r"|core dumped|no such file|permission denied|command not found|could not|unable to"
    r"|timed out|killed by signal|exited with code)\b"
    r"|^\[qfarm\] ended:",
    re.IGNORECASE,
)

# Exception and error class names, as Python and Java print them: "ValueError: ...",
# "java.lang.NullPointerException". Case matters here: "TheError" is a class, "terror" is not.
_ERROR_CLASSES: Final = re.compile(r"[a-z](?:Error|Exception)\b")

# What names errors without being one, removed from a line before the rule reads it: counts
# of none ("0 errors", "no failures", "failed: 0", "errors=0") and a command line's option
# for how much to log ("ffmpeg -v error", "--loglevel=error").
_NOT_AN_ERROR: Final = re.compile(
    r"\b(?:0|no|zero|without)\s+(?:errors?|failures?|failed)\b"
    r"|\b(?:errors?|failures?|failed)\s*[:=]\s*0\b"
    r"|(?:^|\s)--?(?:v|loglevel|log-level|log_level|verbosity)[=\s]+\w+",
    re.IGNORECASE,
)

# How much of the first error line a summary carries: enough to read, bounded whatever the
# program printed.
LINE_CHARS: Final = 300


def looks_like_error(line: str) -> bool:
    """Whether ``line`` reads as a program saying something went wrong."""
    text = _NOT_AN_ERROR.sub(" ", line)
    return bool(_ERROR_WORDS.search(text) or _ERROR_CLASSES.search(text))


@dataclass(frozen=True)
class LogSummary:
    """What a log holds, in numbers: its lines, and the first that looks like an error."""

    lines: int
    first_error_line: int | None  # numbered from 1; None when no line looks like one
    first_error: str  # that line, cut to LINE_CHARS; "" without one


def summarize(lines: Iterable[str]) -> LogSummary:
    """The summary of a log given as its lines (each with or without its ``\\n``)."""
    count = 0
    first: int | None = None
    text = ""
    for count, line in enumerate(lines, start=1):
        if first is None and looks_like_error(line):
            first, text = count, line.rstrip("\r\n")[:LINE_CHARS]
    return LogSummary(lines=count, first_error_line=first, first_error=text)


def split_lines(text: str) -> list[str]:
    """A log's text as the page numbers its lines: split on ``\\n``, the empty piece after
    a last ``\\n`` not counted as a line."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    return pieces
