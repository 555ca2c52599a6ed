"""Running a transcode segment that encodes: a video chunk (from its cut, with the frame
before it for a deinterlacer), the audio (whole, as one segment), a range of frames of an
image-sequence preset, or a whole unsplit output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm.jobtypes.base import SegmentOutcome, describe_process_failure
from qfarm.jobtypes.outputs import temporary_name
from qfarm.jobtypes.transcode.runner import Runner, ffmpeg_outcome
from qfarm.media import presets as presets_mod
from qfarm.media.tool import image_pattern


class ChunkRunner(Runner):
    """Encodes one segment: a chunk, the audio, frames or the whole output."""

    def video_chunk(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        chunk = seg["chunk"]
        temp = temporary_name(chunk, self.ctx.key)
        Path(chunk).parent.mkdir(parents=True, exist_ok=True)
        progress = Path(temp + ".progress")
        seek = ["-ss", f"{seg['seek']:.6f}"] if seg.get("seek") is not None else []
        # The first kept frame becomes time 0, so chunks join on their own durations. The
        # source's timestamps are kept and shifted on output (not rewritten by setpts, which
        # leaves the encoder without a frame rate: x264 then labels 720p25 Level 6.2).
        first = seg.get("first_time")
        inputs = self.media.input_args()
        if self.media.is_sequence:
            inputs, shift, video = self._sequence_chunk(int(seg["first"]))
        elif first is None:  # planned before chunks kept their timestamps
            shift, video = seek, self._video_args(["setpts=PTS-STARTPTS"])
        else:
            shift = ["-copyts", *seek]
            head_filters: list[str] = []
            if self.job.get("deinterlace") and seg.get("trim_start") is not None:
                # The frame before the cut is decoded and filtered (the deinterlacer looks
                # at it), then dropped: the seam's frames are those of a whole-file run.
                shift = ["-copyts", "-ss", f"{float(seg.get('context_seek') or 0.0):.6f}"]
                head_filters = [self._deinterlacer(),
                                f"trim=start={float(seg['trim_start']):.6f}"]  # fmt: skip
            video = [*self._video_args(head_filters), "-output_ts_offset", f"{-float(first):.9f}"]

        def argv(number: int, passlog: str) -> list[str]:
            head = [*self._base(progress), *shift, *inputs, "-map", "0:v:0"]
            tail = ["-an", "-sn", "-dn", "-frames:v", str(seg["frames"])]
            out = [*self._chunk_mux_args_plain(), *self._chunk_mux_args(), temp]
            if number == 1:
                out = ["-f", "null", os.devnull]
            return [*head, *video, *self._pass_args(number, passlog), *tail, *out]

        outcome = self._encode(argv, temp, progress, float(seg["frames"]), "frame")
        return self._finish(outcome, temp, chunk, progress)

    def _sequence_chunk(self, first: int) -> tuple[list[str], list[str], list[str]]:
        """Input, seek and video options of a sequence's chunk: it reads its own frames by
        number, from 0 (no seek); a deinterlaced one reads the frame before its cut too, for
        the filter, and drops it."""
        if not (self.job.get("deinterlace") and first > 0):
            return self.media.input_args(first), [], self._video_args([])
        head = [self._deinterlacer(), "trim=start_frame=1"]
        shift = ["-output_ts_offset", f"{-float(1 / self.media.rate):.9f}"]
        return self.media.input_args(first - 1), [], [*self._video_args(head), *shift]

    def audio_chunk(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        chunk = seg["chunk"]
        temp = temporary_name(chunk, self.ctx.key)
        Path(chunk).parent.mkdir(parents=True, exist_ok=True)
        progress = Path(temp + ".progress")
        argv = [
            *self._base(progress), *self.media.input_args(), *self._audio_maps(), "-vn", "-sn",
            "-dn", *presets_mod.audio_codec_args(self.preset), *self._chunk_mux_args_plain(),
            temp,
        ]  # fmt: skip
        duration = float((self.source.get("audio") or {}).get("duration") or 1.0)
        result = self._run(argv, progress, duration, "time")
        outcome = ffmpeg_outcome(result, temp)
        return self._finish(outcome, temp, chunk, progress)

    def images(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        folder = Path(seg["folder"])
        staging = folder / f".qfarm-{self.ctx.key}"
        staging.mkdir(parents=True, exist_ok=True)
        progress = staging / "progress"
        first, count = int(seg["first"]), int(seg["frames"])
        stem = str(seg["stem"]).replace("%", "%%")
        pattern = image_pattern(staging, f"{stem}_%06d{self.preset.extension}")
        seek = ["-ss", f"{seg['seek']:.6f}"] if seg.get("seek") is not None else []
        inputs = self.media.input_args()
        if self.media.is_sequence:
            seek, inputs = [], self.media.input_args(first)
        argv = [
            *self._base(progress), *seek, *inputs, "-map", "0:v:0",
            *self._video_args([]), "-frames:v", str(count), "-start_number", str(first + 1),
            "-f", "image2", pattern,
        ]  # fmt: skip
        try:
            result = self._run(argv, progress, float(count), "frame")
            if not result.succeeded():
                return describe_process_failure(result, "ffmpeg")
            names = [
                f"{seg['stem']}_{n:06d}{self.preset.extension}"
                for n in range(first + 1, first + count + 1)
            ]
            absent = [
                n for n in names if not (staging / n).is_file() or not (staging / n).stat().st_size
            ]
            if absent:
                return SegmentOutcome(
                    ok=False, exit_code=0, error=f"ffmpeg did not write frame {absent[0]}"
                )
            for name in names:
                os.replace(staging / name, folder / name)
            return SegmentOutcome(ok=True, exit_code=0)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def whole(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        output = seg["output"]
        temp = temporary_name(output, self.ctx.key)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        progress = Path(temp + ".progress")
        preset = self.preset
        has_audio = bool(self.source.get("audio")) and preset.audio_codec is not None
        has_video = bool(self.source.get("video")) and preset.video_codec is not None
        if preset.kind == "remux":
            # Every stream the container takes, copied.
            codec = ["-map", "0:v:0", *(self._audio_maps() if has_audio else []), "-c", "copy"]
            codec += self._side_streams(0)
        else:
            codec = []
            if has_video:
                codec += ["-map", "0:v:0", *self._video_args([])]
            if has_audio:
                codec += [*self._audio_maps(), *presets_mod.audio_codec_args(preset)]
            if preset.kind == "video":
                codec += self._side_streams(0)
        if has_video:
            codec += self._stream_metadata(0, has_audio)
        if not has_video:
            codec.append("-vn")
        if not has_audio:
            codec.append("-an")

        def argv(number: int, passlog: str) -> list[str]:
            if number == 1:
                return [
                    *self._base(progress), *self.media.input_args(), "-map", "0:v:0",
                    *self._video_args([]), *self._pass_args(1, passlog), "-an",
                    "-f", "null", os.devnull,
                ]  # fmt: skip
            return [
                *self._base(progress), *self.media.input_args(), *codec,
                *self._pass_args(number, passlog), "-dn", *self._mux_args(), temp,
            ]  # fmt: skip

        if has_video:
            total, unit = float((self.source.get("video") or {}).get("frames") or 1), "frame"
        else:
            total, unit = float((self.source.get("audio") or {}).get("duration") or 1), "time"
        outcome = self._encode(argv, temp, progress, total, unit)
        if outcome.ok:
            outcome = self._verify(temp, [])
        return self._finish(outcome, temp, output, progress)
