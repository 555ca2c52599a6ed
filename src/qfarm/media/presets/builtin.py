"""The presets qfarm comes with, by name. A user's preset file may replace any of them
(:func:`qfarm.media.presets.available`).
"""

from __future__ import annotations

from typing import Any

from qfarm.media.presets.definition import Preset


def _builtin(name: str, container: str, description: str, **values: Any) -> Preset:
    return Preset(name=name, container=container, description=description, **values)


_X264 = {"video_codec": "libx264", "encoder_preset": "medium", "pix_fmt": "yuv420p"}
BUILTIN: dict[str, Preset] = {
    p.name: p
    for p in [
        _builtin("h264", "mp4", "H.264 MP4 at the source's size, CRF 20, AAC 192k",
                 crf=20, audio_codec="aac", audio_bitrate="192k", **_X264),
        _builtin("h264-1080p", "mp4", "H.264 MP4 1080 lines, CRF 20, AAC 192k",
                 crf=20, height=1080, audio_codec="aac", audio_bitrate="192k", **_X264),
        _builtin("h264-720p", "mp4", "H.264 MP4 720 lines, CRF 21, AAC 160k",
                 crf=21, height=720, audio_codec="aac", audio_bitrate="160k", **_X264),
        _builtin("h264-480p", "mp4", "H.264 MP4 480 lines, CRF 23, AAC 128k",
                 crf=23, height=480, audio_codec="aac", audio_bitrate="128k", **_X264),
        _builtin("h264-720p-2pass", "mp4", "H.264 MP4 720 lines, two passes at 4 Mb/s",
                 bitrate="4M", two_pass=True, height=720, audio_codec="aac",
                 audio_bitrate="160k", **_X264),
        _builtin("hevc", "mp4", "HEVC (H.265) MP4 at the source's size, CRF 26, AAC 192k",
                 video_codec="libx265", crf=26, encoder_preset="medium", pix_fmt="yuv420p",
                 video_options=("-tag:v", "hvc1", "-x265-params", "log-level=error"),
                 audio_codec="aac", audio_bitrate="192k"),
        _builtin("prores-422", "mov", "Apple ProRes 422 MOV, 16-bit PCM audio",
                 video_codec="prores_ks", pix_fmt="yuv422p10le",
                 video_options=("-profile:v", "2", "-vendor", "apl0"),
                 audio_codec="pcm_s16le"),
        _builtin("vp9", "webm", "VP9 WebM, CRF 32, Opus 128k",
                 video_codec="libvpx-vp9", crf=32, pix_fmt="yuv420p",
                 video_options=("-b:v", "0", "-row-mt", "1", "-deadline", "good",
                                "-cpu-used", "4"),
                 audio_codec="libopus", audio_bitrate="128k"),
        _builtin("av1", "webm", "AV1 WebM (libaom), CRF 34, Opus 128k",
                 video_codec="libaom-av1", crf=34, pix_fmt="yuv420p",
                 video_options=("-b:v", "0", "-cpu-used", "8", "-row-mt", "1"),
                 audio_codec="libopus", audio_bitrate="128k"),
        _builtin("aac", "m4a", "audio only: AAC 192k in M4A",
                 audio_codec="aac", audio_bitrate="192k"),
        _builtin("mp3", "mp3", "audio only: MP3, VBR quality 2, stereo",
                 audio_codec="libmp3lame", audio_quality="2", audio_channels=2),
        _builtin("png", "png", "PNG image sequence, one file per frame", video_codec="png"),
        _builtin("jpeg", "jpeg", "JPEG image sequence, one file per frame, quality 2",
                 video_codec="mjpeg", pix_fmt="yuvj420p", video_options=("-q:v", "2")),
        _builtin("remux", "mp4", "the same streams in MP4, without re-encoding",
                 video_codec="copy", audio_codec="copy"),
        _builtin("remux-mkv", "mkv", "the same streams in Matroska, without re-encoding",
                 video_codec="copy", audio_codec="copy"),
    ]
}  # fmt: skip
