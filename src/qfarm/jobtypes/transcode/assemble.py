"""The assembly of a split transcode: the video chunks joined by stream copy (each given
its exact source duration, so timestamps across seams are the source's), the audio muxed at
its offset, the subtitles, attachments, chapters, metadata and timecode carried from the
source, then the result verified and renamed; the chunks' folder is removed only then.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm.jobtypes.base import SegmentOutcome
from qfarm.jobtypes.outputs import temporary_name, write_concat_list
from qfarm.jobtypes.transcode.plan import parts_dir
from qfarm.jobtypes.transcode.runner import Runner, ffmpeg_outcome
from qfarm.media.probe import probe


class Assembler(Runner):
    """Joins a split output's chunks and audio into the output."""

    def assemble(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        output = seg["output"]
        temp = temporary_name(output, self.ctx.key)
        progress = Path(temp + ".progress")
        parts = Path(parts_dir(output))
        missing = [c for c in [*seg["chunks"], seg.get("audio")] if c and not os.path.exists(c)]
        if missing:
            return SegmentOutcome(ok=False, error=f"a chunk is missing: {missing[0]}")
        listing = parts / f".qfarm-{self.ctx.key}.ffconcat"
        write_concat_list(listing, list(zip(seg["chunks"], seg["durations"], strict=True)))
        inputs = ["-f", "concat", "-safe", "0", "-i", str(listing)]
        maps = ["-map", "0:v:0"]
        audio = seg.get("audio")
        video_at = self._video_offset()
        if video_at:
            inputs[:0] = ["-itsoffset", f"{video_at:.6f}"]
        if audio:
            # The chunk's own timestamps, unchanged: ffmpeg counts an input from its start
            # time, which this gives back.
            audio_at = probe(audio).start
            if audio_at:
                inputs += ["-itsoffset", f"{audio_at:.6f}"]
            inputs += ["-i", audio]
            maps += ["-map", "1:a"]
        source_input = 2 if audio else 1
        inputs += self.media.input_args()
        maps += self._side_streams(source_input)
        maps += self._stream_metadata(source_input, bool(audio))
        argv = [*self._base(progress), *inputs, *maps, "-c:v", "copy", "-c:a", "copy",
                *self._mux_args(source_input), temp]  # fmt: skip
        total = float((self.source.get("video") or {}).get("duration") or 1.0)
        try:
            result = self._run(argv, progress, total, "time")
        finally:
            listing.unlink(missing_ok=True)
        outcome = ffmpeg_outcome(result, temp)
        if outcome.ok:
            outcome = self._verify(temp, seg.get("seams") or [])
        outcome = self._finish(outcome, temp, output, progress)
        if outcome.ok:
            shutil.rmtree(parts, ignore_errors=True)
        return outcome

    def _video_offset(self) -> float:
        """Where the joined video starts in the output. The audio chunk was encoded on the
        source's own timeline (ffmpeg counts it from the source's start time, priming
        aside), so the video goes where it started on that timeline: a video 0.5 s after
        its audio keeps its lead-in, and the audio keeps its offset to the sample."""
        if not self.source.get("audio") or not self.preset.audio_codec:
            return 0.0
        video_start = float((self.source.get("video") or {}).get("start") or 0.0)
        return max(0.0, video_start - float(self.source.get("start") or 0.0))
