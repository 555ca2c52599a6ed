"""The thumbnail a node makes of a segment that succeeded: its newest output that is a
picture or a video, seen small and at display size (:mod:`qfarm.media.thumbnail`).

It rides back with the attempt's result. A thumbnail is a convenience: one that cannot be
made never fails its segment, and says why in the attempt's log and the node's log
instead. Its ffmpeg runs under the segment's supervisor (a cancel that comes now ends it
too) with what is left of the segment's timeout.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from qfarm.domain.messages import Picture, SegmentTask, Thumbnail
from qfarm.jobtypes.base import SegmentContext, describe_process_failure
from qfarm.media import thumbnail
from qfarm.media.tool import ToolMissing, ffmpeg_path

log = logging.getLogger(__name__)

FRAME, POSTER, OUTPUT = "frame", "poster", "output"


def newest_output(outputs: Sequence[str]) -> str | None:
    """The segment's last planned output that exists and is a picture or a video: a
    render's last frame, a transcode's chunk or joined output."""
    for path in reversed(outputs):
        if thumbnail.source_kind(path) is not None and os.path.isfile(path):
            return path
    return None


def kind_and_label(task: SegmentTask, source: str) -> tuple[str, str]:
    """What the picture shows (a frame, a chunk's poster, an output's), and its label."""
    name = Path(source).name
    if thumbnail.source_kind(source) == "video":
        part = task.segment.get("part")
        return (POSTER if part == "video" else OUTPUT), name
    return FRAME, _frame_label(task, source) or name


def _frame_label(task: SegmentTask, source: str) -> str | None:
    """``frame 12`` where the segment's outputs are its frames, one each, in order."""
    outputs = list(task.segment.get("outputs") or [])
    seg = task.segment
    try:
        start, end = int(seg["start"]), int(seg["end"])
        frames = list(range(start, end + 1, int(seg.get("step") or 1)))
    except (KeyError, TypeError, ValueError):
        return None
    if len(frames) != len(outputs) or source not in outputs:
        return None
    return f"frame {frames[outputs.index(source)]}"


def make_thumbnail(task: SegmentTask, ctx: SegmentContext) -> Thumbnail | None:
    """The thumbnail of the segment's newest output, or None (with the reason logged when
    there was something to show). Never raises."""
    source = newest_output(list(task.segment.get("outputs") or []))
    if source is None:
        return None  # nothing to look at (an audio chunk, a command that writes data)
    name = Path(source).name
    began = time.monotonic()
    try:
        ffmpeg = ffmpeg_path()
        with tempfile.TemporaryDirectory(prefix=f"qfarm-thumb-{task.key}-") as folder:
            work = Path(folder)
            pictures = thumbnail.make(ffmpeg, source, work, _runner(ctx, work / "ffmpeg.log"))
    except (thumbnail.ThumbnailFailed, ToolMissing, OSError) as exc:
        why = f"no thumbnail of {name}: {exc}"
        ctx.log(why)
        log.warning("segment %s: %s", task.key, why)
        return None
    kind, label = kind_and_label(task, source)
    small, full = pictures.small, pictures.full
    ctx.log(
        f"thumbnail of {name}: {small.width}x{small.height} ({len(small.data)} bytes) and "
        f"{full.width}x{full.height} ({len(full.data)} bytes) in "
        f"{time.monotonic() - began:.2f} s"
    )
    return Thumbnail(
        kind=kind,
        label=label,
        source=name,
        small=Picture("image/jpeg", small.width, small.height, small.data),
        full=Picture("image/jpeg", full.width, full.height, full.data),
    )


def _runner(ctx: SegmentContext, log_path: Path) -> thumbnail.Run:
    def run(argv: Sequence[str]) -> str | None:
        result = ctx.run(argv, log_path=log_path)
        if result.succeeded():
            return None
        why = describe_process_failure(result, "ffmpeg").error
        try:
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return f"{why}: {last}" if last else why

    return run
