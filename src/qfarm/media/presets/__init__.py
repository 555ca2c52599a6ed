"""Transcode presets: what an output is (container, video and audio encoding), built in or
from users' TOML files, and the ffmpeg arguments each one turns into.

A preset is resolved on the client or controller into a plain dict that travels in the job's
spec, so nodes never need the user's preset files. The ffmpeg argument lists are built from
that dict on the node.

A user preset file holds one table per preset::

    [preset.web-small]
    description = "540p H.264 for the web"
    container = "mp4"            # mp4 mov webm mkv m4a mp3 png jpeg
    video_codec = "libx264"      # an ffmpeg encoder, or "copy"
    crf = 24                     # or bitrate = "3M" (two_pass = true for two passes)
    encoder_preset = "fast"
    height = 540                 # the width follows, keeping the aspect ratio
    frame_rate = "25"            # "30000/1001" works too; absent: the source's
    video_options = ["-tune", "film"]
    audio_codec = "aac"
    audio_bitrate = "128k"
    audio_channels = 2

The package's modules: :mod:`.definition` (the preset, its tables and checks),
:mod:`.builtin` (the presets qfarm comes with), :mod:`.library` (finding presets by name,
users' files) and :mod:`.arguments` (the ffmpeg arguments). Everything is imported from
``qfarm.media.presets``.
"""

from __future__ import annotations

from qfarm.media.presets.arguments import (
    DEINTERLACE_FILTER,
    audio_codec_args,
    deinterlace_filter,
    expected_level,
    output_size,
    video_codec_args,
    video_filters,
)
from qfarm.media.presets.builtin import BUILTIN
from qfarm.media.presets.definition import (
    AUDIO_CONTAINERS,
    AUDIO_TRACK_CHOICES,
    CONTAINER_CODECS,
    CONTAINERS,
    DEINTERLACE_CHOICES,
    ENCODER_CODECS,
    IMAGE_CONTAINERS,
    SUBTITLE_CHOICES,
    TWO_PASS_ENCODERS,
    X264_PROFILES,
    Preset,
    check,
)
from qfarm.media.presets.library import (
    PRESETS_ENV,
    available,
    check_encoders,
    for_request,
    load_file,
    presets_for_listing,
    resolve,
    user_preset_files,
)

__all__ = [
    "AUDIO_CONTAINERS",
    "AUDIO_TRACK_CHOICES",
    "BUILTIN",
    "CONTAINERS",
    "CONTAINER_CODECS",
    "DEINTERLACE_CHOICES",
    "DEINTERLACE_FILTER",
    "ENCODER_CODECS",
    "IMAGE_CONTAINERS",
    "PRESETS_ENV",
    "SUBTITLE_CHOICES",
    "TWO_PASS_ENCODERS",
    "X264_PROFILES",
    "Preset",
    "audio_codec_args",
    "available",
    "check",
    "check_encoders",
    "deinterlace_filter",
    "expected_level",
    "for_request",
    "load_file",
    "output_size",
    "presets_for_listing",
    "resolve",
    "user_preset_files",
    "video_codec_args",
    "video_filters",
]
