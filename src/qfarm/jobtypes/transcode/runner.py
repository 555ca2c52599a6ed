"""What every transcode segment shares on a node: the ffmpeg command line's common parts
(threads, progress, maps, video and audio codecs, colour tags, containers and metadata), running
ffmpeg under the node's supervisor with progress, one or two passes, and moving a verified result
to its final name. :mod:`.chunk` and :mod:`.assemble` build their segments' commands on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qfarm.jobtypes.base import SegmentContext, SegmentOutcome, describe_process_failure
from qfarm.jobtypes.outputs import check_output, discard
from qfarm.jobtypes.supervisor import ProcessResult
from qfarm.jobtypes.transcode.source import source_of
from qfarm.media import presets as presets_mod
from qfarm.media import streams as streams_mod
from qfarm.media.presets import Preset
from qfarm.media.progress import watch_progress

# The colour tags an encoder is told, as ffmpeg's options name them (the probe's tags).
COLOUR_OPTIONS = ("color_primaries", "color_trc", "colorspace", "color_range")
# Encoders of codecs without frame reordering: every frame a keyframe.
INTRA_ONLY = frozenset({"prores_ks", "prores", "mjpeg", "png", "dnxhd", "ffv1"})


class Runner:
    """Runs the ffmpeg of one segment under the node's supervisor, with progress."""

    def __init__(self, ffmpeg_path: str, job: Mapping[str, Any], ctx: SegmentContext) -> None:
        self.ffmpeg = ffmpeg_path
        self.job = job
        self.ctx = ctx
        self.preset = Preset.from_dict(job["preset"])
        self.source = job["source"]
        self.media = source_of(job)
        self.threads = ctx.threads

    def _base(self, progress: Path) -> list[str]:
        # -threads here is the decoder's (an input option); the encoder's is in
        # video_codec_args. Both get the cores this instance has.
        threads = ["-threads", str(self.threads)] if self.threads else []
        return [
            self.ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "warning", "-nostats",
            "-progress", str(progress), *threads,
        ]  # fmt: skip

    def _audio_maps(self) -> list[str]:
        """A -map for each audio track the output keeps, by its index in the source."""
        indexes = self.job.get("audio_streams")
        if indexes is None:  # a job planned before tracks were chosen: the first
            return ["-map", "0:a:0"]
        return [arg for index in indexes for arg in ("-map", f"0:{int(index)}")]

    def _display_size(self) -> tuple[int, int]:
        size = (self.source.get("video") or {}).get("display_size") or [0, 0]
        return int(size[0]), int(size[1])

    def _video_args(self, extra_filters: list[str]) -> list[str]:
        if self.job.get("deinterlace") and not extra_filters:
            extra_filters = [self._deinterlacer()]
        filters = extra_filters + presets_mod.video_filters(self.preset, self._display_size())
        args = ["-vf", ",".join(filters)] if filters else []
        if not self.preset.frame_rate:
            # Frames pass through one to one: the output has the source's timestamps, to
            # the tick (the encoder's default time base, a frame, would round a video
            # that starts 21 ms after its audio to 40 ms).
            args += ["-fps_mode", "passthrough", "-enc_time_base:v", "demux"]
        codec = presets_mod.video_codec_args(self.preset, self.threads)
        return args + codec + self._colour_args()

    def _deinterlacer(self) -> str:
        return presets_mod.deinterlace_filter(self.job.get("field_order") or "auto")

    def _mux_args(self, source_input: int = 0) -> list[str]:
        """The container, and the source's metadata, chapters and timecode (read from
        input ``source_input``): a split output's first input is the chunk list, which has
        none of them."""
        args = ["-map_metadata", str(source_input), "-map_chapters", str(source_input)]
        timecode = (self.source.get("tags") or {}).get("timecode")
        if timecode and self.preset.kind in ("video", "remux"):
            args += ["-timecode", str(timecode)]
        if self.preset.container in ("mp4", "mov", "m4a"):
            args += ["-movflags", "+faststart"]
        return [*args, "-f", self.preset.muxer]

    def _chunk_mux_args_plain(self) -> list[str]:
        """A chunk's container: no chapters, timecode or metadata (the assembly writes
        them from the source)."""
        return ["-map_metadata", "-1", "-map_chapters", "-1", "-f", self.preset.muxer]

    def _stream_metadata(self, source_input: int, audio: bool) -> list[str]:
        """The source's own stream tags (language, title, handler) for the joined video and
        each audio track: the chunks were written without them."""
        plans = [streams_mod.StreamPlan.from_dict(p) for p in self.job.get("streams") or []]
        video = next((p.index for p in plans if p.kind == "video" and p.kept), None)
        args = [] if video is None else ["-map_metadata:s:v:0", f"{source_input}:s:{video}"]
        if audio:
            for number, index in enumerate(self.job.get("audio_streams") or []):
                args += [f"-map_metadata:s:a:{number}", f"{source_input}:s:{int(index)}"]
        subtitles = [p.index for p in plans if p.kind == "subtitle" and p.kept]
        for number, index in enumerate(subtitles):
            args += [f"-map_metadata:s:s:{number}", f"{source_input}:s:{index}"]
        return args

    def _side_streams(self, source_input: int) -> list[str]:
        """Maps and codecs of the subtitles and attachments the output keeps."""
        plans = [streams_mod.StreamPlan.from_dict(p) for p in self.job.get("streams") or []]
        return streams_mod.output_args(plans, source_input)

    def _colour_args(self) -> list[str]:
        """The source's colour tags, told to the encoder: a scale or a chunk boundary must
        not leave the output untagged (players then guess BT.601 for HD)."""
        tags = self.source.get("tags") or {}
        return [arg for name in COLOUR_OPTIONS if name in tags
                for arg in (f"-{name}", str(tags[name]))]  # fmt: skip

    def _chunk_mux_args(self) -> list[str]:
        """A chunk of an intra-only codec in MOV/MP4 is written without an edit list: it needs
        none (no frame reordering), and ffmpeg 7.0's MOV muxer cuts the last frame of a
        ProRes chunk ended by -frames:v out of the edit list it writes."""
        if self.preset.container in ("mp4", "mov") and self.preset.video_codec in INTRA_ONLY:
            return ["-use_editlist", "0"]
        return []

    def _run(
        self,
        argv: list[str],
        progress: Path,
        total: float,
        unit: str,
        share: tuple[float, float] = (0.0, 1.0),
    ) -> ProcessResult:
        """Run ffmpeg, reporting its progress as the ``share`` (start, size) of the segment."""
        with watch_progress(progress, total, unit, self.ctx.on_progress, share):
            return self.ctx.run(argv, cwd=self.job.get("cwd"))

    def _encode(
        self,
        argv_for_pass: Callable[[int, str], list[str]],
        target: str,
        progress: Path,
        total: float,
        unit: str,
    ) -> SegmentOutcome:
        """Run one pass, or two (each half the progress), writing ``target``."""
        passes = [1, 2] if self.preset.two_pass else [0]
        passlog = str(progress.with_suffix(".pass"))
        try:
            for number in passes:
                share = (0.5 * (number - 1), 0.5) if number else (0.0, 1.0)
                result = self._run(argv_for_pass(number, passlog), progress, total, unit, share)
                if not result.succeeded():
                    break
        finally:
            for leftover in Path(passlog).parent.glob(Path(passlog).name + "*"):
                leftover.unlink(missing_ok=True)
        return ffmpeg_outcome(result, target)

    def _pass_args(self, number: int, passlog: str) -> list[str]:
        if number == 0:
            return []
        return ["-pass", str(number), "-passlogfile", passlog]

    def _verify(self, temp: str, seams: list[float]) -> SegmentOutcome:
        mode = self.job.get("verify") or "seams"
        if mode == "none":
            return SegmentOutcome(ok=True, exit_code=0)
        self.ctx.log(f"verifying {os.path.basename(temp)} ({mode})")
        return check_output(
            temp, self.job["expected"], self.ctx, self.ffmpeg, self.job.get("cwd"),
            seams=seams, full=mode == "full",
        )  # fmt: skip

    @staticmethod
    def _finish(outcome: SegmentOutcome, temp: str, final: str, progress: Path) -> SegmentOutcome:
        """Rename the temporary file into place on success; leave nothing otherwise."""
        progress.unlink(missing_ok=True)
        if outcome.ok:
            os.replace(temp, final)
        else:
            discard(temp)
        return outcome


def ffmpeg_outcome(result: ProcessResult, target: str) -> SegmentOutcome:
    """How an ffmpeg run that writes ``target`` went: exit status 0 is not enough, the
    file must be there too."""
    if not result.succeeded():
        return describe_process_failure(result, "ffmpeg")
    if not os.path.exists(target):
        return SegmentOutcome(ok=False, exit_code=0, error=f"ffmpeg exited 0 but wrote no {target}")
    return SegmentOutcome(ok=True, exit_code=0)
