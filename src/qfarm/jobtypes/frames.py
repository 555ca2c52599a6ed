"""Numbered frames: how the frames a job writes are named, and how a sequence given by a
pattern is read. Render and composite jobs write frames under the same naming; movie and
composite jobs read a pattern of frames (often a render's)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from qfarm.domain.errors import InvalidRequest

_PRINTF = re.compile(r"%(0?)(\d*)d")


def frame_path(job: Mapping[str, Any], frame: int) -> str:
    """Where frame ``frame`` of a render (or composite) job ends up: OUTPUT/NAME_0001.png,
    or the scene's own naming (``shot_0001_v2.jpg``, POV-Ray's ``orbit01.png``) where the
    job keeps it."""
    return os.path.join(job["output"], frame_pattern(job).format(frame=frame))


def frame_pattern(job: Mapping[str, Any]) -> str:
    """The frames' file name with ``{frame:04d}`` for the number (movie jobs read it)."""
    prefix = job.get("frame_prefix")
    prefix = f"{job['name']}_" if prefix is None else str(prefix)
    suffix = str(job.get("frame_suffix") or "") + str(job["extension"])
    return f"{_literal(prefix)}{{frame:0{job['padding']}d}}{_literal(suffix)}"


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def input_pattern(pattern: str) -> str:
    """``shot_%04d.png`` or ``shot_{frame:04d}.png`` as a Python format with {frame}."""
    if "{frame" in pattern:
        try:
            pattern.format(frame=1)
        except (ValueError, KeyError, IndexError) as exc:
            raise InvalidRequest(f"frame pattern {pattern!r}: {exc}") from None
        return pattern
    matches = _PRINTF.findall(pattern)
    if len(matches) != 1:
        raise InvalidRequest(
            f"frame pattern {pattern!r} needs one frame number: %04d or {{frame:04d}}"
        )
    zero, width = matches[0]
    spec = f":{zero}{width}d" if width else ""
    return _PRINTF.sub("{frame" + spec + "}", pattern.replace("{", "{{").replace("}", "}}"))


def frame_size(path: str) -> tuple[int, int]:
    """Width and height of an image (or a video's first stream)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        return int(stream.codec_context.width), int(stream.codec_context.height)
