"""What a transcode's output must measure, worked out from the source and the preset at
validation and stored in the job's spec as ``expected``: a node checks the output against it
(:func:`qfarm.jobtypes.outputs.check_output`) before it takes its final name, in one of
:data:`VERIFY_MODES`.
"""

from __future__ import annotations

from typing import Any

from qfarm.jobtypes.transcode.source import kept_tracks
from qfarm.media import presets as presets_mod
from qfarm.media import streams as streams_mod
from qfarm.media import verify as verify_mod
from qfarm.media.presets import Preset
from qfarm.media.probe import AudioFacts, MediaInfo

VERIFY_MODES = ("seams", "full", "none")


def expected_of(preset: Preset, info: MediaInfo) -> dict[str, Any]:
    """What the output must measure, for :func:`qfarm.media.verify.compare`."""
    expected: dict[str, Any] = {}
    video = info.video
    if video is not None and preset.kind in ("video", "remux"):
        rate = preset.rate
        if rate is not None and preset.kind == "video":
            expected["frames"] = max(1, round(video.duration * rate))
            expected["exact_frames"] = False
            expected["frame_duration"] = float(1 / rate)
        else:
            expected["frames"] = video.frames
            expected["exact_frames"] = True
            expected["frame_duration"] = video.longest_frame
        expected["duration"] = video.duration
    elif video is not None:
        expected["frame_duration"] = video.longest_frame
    if info.audio is not None and preset.audio_codec:
        expected["audio_duration"] = info.audio.duration
        expected["audio_tracks"] = [_expected_track(preset, t) for t in kept_tracks(preset, info)]
        if video is not None and preset.kind in ("video", "remux"):
            expected["av_offset"] = info.audio.start_seconds - video.start_seconds
    kept = [p for p in streams_mod.plan_streams(preset, info, kept_tracks(preset, info)) if p.kept]
    expected["subtitles"] = sum(1 for p in kept if p.kind == "subtitle")
    timecode = info.tags.get("timecode")
    if timecode and preset.kind in ("video", "remux"):
        expected["timecode"] = timecode
    if info.chapters and preset.kind != "images":
        expected["chapters"] = info.chapters
    if video is not None and preset.kind == "video":
        rate = video.guessed_rate or video.frame_rate
        expected["level"] = presets_mod.expected_level(preset, video.display_size, rate)
    return expected


def _expected_track(preset: Preset, track: AudioFacts) -> dict[str, Any]:
    """What one output track must measure: the source's samples (at its rate), and its
    channels and layout unless the preset sets the channels."""
    encoder = str(preset.audio_codec)
    copied = encoder == "copy"
    channels = track.channels if copied else preset.audio_channels or track.channels
    # "1 channels": the source names no layout, and ffmpeg's encoder picks the usual one.
    named = not track.layout.endswith(" channels")
    return {
        "channels": channels,
        "layout": track.layout if channels == track.channels and named else "",
        "samples": track.samples,
        "sample_rate": track.sample_rate,
        # The source's decoder gives its last frame whole (ffmpeg does not cut the padding
        # a container marks at the end), so the output may hold up to a frame more.
        "source_padding": verify_mod.CODEC_FRAME_SAMPLES.get(track.codec, 0),
        # The priming written ahead of the first sample: the source's own when copied.
        "delay": track.priming if copied else verify_mod.ENCODER_DELAY.get(encoder, 0),
        "copied": copied,
    }
