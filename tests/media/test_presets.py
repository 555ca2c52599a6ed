"""Transcode presets: built in, from users' TOML files, and their ffmpeg arguments, in
:mod:`qfarm.media.presets`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.media.presets import (
    BUILTIN,
    PRESETS_ENV,
    Preset,
    audio_codec_args,
    available,
    check,
    load_file,
    presets_for_listing,
    resolve,
    video_codec_args,
    video_filters,
)
from qfarm.media.tool import FFMPEG_ENV, ffmpeg

ABSENT_ENCODER = "libsvtav1"  # an AV1 encoder the wheel's ffmpeg is built without


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No preset files of the developer's, and the wheel's ffmpeg."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(PRESETS_ENV, raising=False)
    monkeypatch.delenv(FFMPEG_ENV, raising=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_one(tmp_path: Path, body: str) -> Preset:
    """The one preset ``mine`` of a file whose [preset.mine] table is ``body``."""
    return load_file(write(tmp_path / "p.toml", f"[preset.mine]\n{body}"))["mine"]


def x264(**values: Any) -> Preset:
    return Preset(name="t", container="mp4", video_codec="libx264", **values)


# --- built-in presets and resolve ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_presets_pass_their_own_check(name: str) -> None:
    preset = BUILTIN[name]
    check(preset, name)
    assert preset.name == name


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_to_dict_from_dict_round_trip(name: str) -> None:
    """A resolved preset travels in a job's spec as a dict and must come back the same."""
    preset = BUILTIN[name]
    assert Preset.from_dict(preset.to_dict()) == preset


def test_resolve_by_name() -> None:
    assert resolve("h264-720p") is BUILTIN["h264-720p"]


def test_resolve_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequest, match="unknown preset 'h265'") as err:
        resolve("h265")
    assert ", ".join(sorted(BUILTIN)) in str(err.value)


def test_resolve_uses_the_given_presets() -> None:
    mine = x264(crf=30)
    assert resolve("t", {"t": mine}) is mine
    with pytest.raises(InvalidRequest, match="known are t "):
        resolve("h264", {"t": mine})


@pytest.mark.parametrize("value", ["", 5, None])
def test_resolve_refuses_what_is_neither_name_nor_table(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="preset must be a name or a table"):
        resolve(value)


def test_resolve_inline_table() -> None:
    preset = resolve({"name": "quick", "container": "mkv", "video_codec": "libx264", "crf": 30})
    assert (preset.name, preset.container, preset.crf, preset.source) == (
        "quick",
        "mkv",
        30,
        "inline",
    )
    assert preset.kind == "video"


def test_resolve_inline_table_is_checked() -> None:
    with pytest.raises(InvalidRequest, match="preset 'custom': a preset needs a container"):
        resolve({"video_codec": "libx264"})


# --- preset files ----------------------------------------------------------------------------


def test_load_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "web.toml",
        """
[preset.web-small]
description = "540p H.264 for the web"
container = "mp4"
video_codec = "libx264"
crf = 24
encoder_preset = "fast"
height = 540
frame_rate = 25
video_options = ["-tune", "film", 1]
audio_codec = "aac"
audio_bitrate = "128k"
audio_channels = 2

[preset.talk]
container = "mp3"
audio_codec = "libmp3lame"
audio_quality = 4
""",
    )
    found = load_file(path)
    assert list(found) == ["web-small", "talk"]
    web = found["web-small"]
    assert web.source == str(path)
    assert (web.crf, web.height, web.encoder_preset) == (24, 540, "fast")
    assert web.frame_rate == "25"  # an integer rate becomes the string ffmpeg takes
    assert web.video_options == ("-tune", "film", "1")
    assert web.kind == "video"
    assert found["talk"].kind == "audio"
    assert found["talk"].audio_quality == "4"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(InvalidRequest, match=re.escape(f"preset file {path} does not exist")):
        load_file(path)


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", "[preset.x\ncontainer = 'mp4'\n")
    with pytest.raises(InvalidRequest, match=re.escape(f"preset file {path} is not valid TOML")):
        load_file(path)


@pytest.mark.parametrize(
    "text", ["", "container = 'mp4'\n", "[preset.a]\ncontainer='mp4'\naudio_codec='aac'\n[other]\n"]
)
def test_file_without_preset_tables(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"write each preset as \[preset.NAME\]"):
        load_file(write(tmp_path / "p.toml", text))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'container = "mp4"\nvideo_codec = "libx264"\nsize = 3\n',
            "unknown key 'size'; a preset takes audio_bitrate, ",
        ),
        ('container = "mp4"\nvideo_codec = "libx264"\ncrf = "x"\n', "crf must be int, not 'x'"),
        ('container = "mp4"\nvideo_codec = "libx264"\ncrf = true\n', "crf must be int, not True"),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nbitrate = "4M"\ntwo_pass = 1\n',
            "two_pass must be bool, not 1",
        ),
        (
            'container = "mp4"\nvideo_options = "-tune film"\n',
            "video_options must be list or tuple",
        ),
        (
            'container = "mp4"\nvideo_options = [["-tune"]]\n',
            "video_options must be a list of strings",
        ),
        ('video_codec = "libx264"\n', "a preset needs a container (mp4, mov, webm, "),
        ('container = "avi"\nvideo_codec = "libx264"\n', "unknown container 'avi'; known are mp4"),
        (
            'container = "webm"\nvideo_codec = "libx264"\n',
            "a webm file cannot hold h264 (from libx264); it takes av1, opus, vorbis, vp8, vp9",
        ),
        (
            'container = "m4a"\naudio_codec = "libopus"\n',
            "a m4a file cannot hold opus (from libopus)",
        ),
        ('container = "m4a"\nvideo_codec = "libx264"\naudio_codec = "aac"\n', "holds audio only"),
        (
            'container = "mp4"\nvideo_codec = "libx264"\ntwo_pass = true\n',
            "two_pass needs a bitrate",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx265"\ntwo_pass = true\nbitrate = "2M"\n',
            "two_pass works with libaom-av1, libvpx-vp9, libx264, mpeg4, not libx265",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\ncrf = 20\nbitrate = "4M"\n',
            "give crf or bitrate, not both",
        ),
        ('container = "mp4"\n', "a preset needs a video_codec or an audio_codec"),
        (
            'container = "png"\nvideo_codec = "png"\naudio_codec = "aac"\n',
            "an image sequence has no audio",
        ),
        (
            'container = "mp4"\nvideo_codec = "copy"\naudio_codec = "aac"\n',
            "a remux copies both streams",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nheight = 1\n',
            "height 1 is out of range (2-16384)",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nframe_rate = "fast"\n',
            "frame_rate 'fast' is not a number",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nframe_rate = "1/0"\n',
            "frame_rate '1/0' is not a number",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nframe_rate = 0\n',
            "frame_rate 0 is out of range",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nlevel = "7.5"\n',
            "level '7.5' is not an H.264 level (1 to 6.2)",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx265"\nlevel = "3.2"\n',
            "level '3.2' is not an HEVC level (1, 2, 2.1, 3, 3.1, 4, 4.1, 5 to 6.2)",
        ),
        (
            'container = "webm"\nvideo_codec = "libvpx-vp9"\nlevel = "4"\n',
            "level is for libx264 and libx265, not libvpx-vp9",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nprofile = "extreme"\n',
            "libx264 has no profile 'extreme'; it has baseline, high, high10",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\naudio_codec = "aac"\n'
            'audio_tracks = "some"\n',
            'audio_tracks must be "all", "first" or a list of track numbers',
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\naudio_codec = "aac"\n'
            "audio_tracks = [0, 2]\n",
            "audio_tracks counts tracks from 1, each once, not [0, 2]",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\ndeinterlace = "yes"\n',
            "deinterlace must be auto, on or off, not 'yes'",
        ),
        (
            'container = "mp4"\nvideo_codec = "libx264"\nsubtitles = "burn"\n',
            'subtitles must be "all" or "none", not \'burn\'',
        ),
    ],
)
def test_bad_preset_is_refused_naming_file_preset_and_problem(
    tmp_path: Path, body: str, message: str
) -> None:
    """Each refusal names the file and the preset, so a user can find the line to fix."""
    with pytest.raises(InvalidRequest) as err:
        load_one(tmp_path, body)
    text = str(err.value)
    assert text.startswith(f"preset file {tmp_path / 'p.toml'}, preset 'mine': ")
    assert message in text


def test_preset_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=re.escape("preset.mine must be a table")):
        load_file(write(tmp_path / "p.toml", "[preset]\nmine = 3\n"))


def test_image_sequence_without_encoder_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        resolve({"name": "frames", "container": "png"})


# --- available -------------------------------------------------------------------------------


def test_available_is_the_builtins_without_user_files() -> None:
    assert available() == BUILTIN


def test_available_reads_qfarm_presets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    one = write(tmp_path / "one.toml", '[preset.a]\ncontainer = "m4a"\naudio_codec = "aac"\n')
    two = write(
        tmp_path / "two.toml", '[preset.b]\ncontainer = "mp3"\naudio_codec = "libmp3lame"\n'
    )
    monkeypatch.setenv(PRESETS_ENV, f"{one}{os.pathsep}{two}")
    found = available()
    assert found["a"].source == str(one)
    assert found["b"].source == str(two)
    assert set(BUILTIN) < set(found)


def test_user_file_replaces_a_builtin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(
        tmp_path / "mine.toml",
        '[preset.h264]\ncontainer = "mkv"\nvideo_codec = "libx264"\ncrf = 28\n'
        'audio_codec = "aac"\n',
    )
    monkeypatch.setenv(PRESETS_ENV, str(path))
    h264 = available()["h264"]
    assert (h264.container, h264.crf, h264.source) == ("mkv", 28, str(path))
    assert BUILTIN["h264"].crf == 20  # the built-in table itself is untouched


def test_later_files_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Config dir, then QFARM_PRESETS, then files given on the command line."""
    body = '[preset.x]\ncontainer = "m4a"\naudio_codec = "aac"\naudio_bitrate = "{}"\n'
    config = write(tmp_path / "config" / "qfarm" / "presets" / "a.toml", body.format("64k"))
    assert available()["x"].source == str(config)
    env = write(tmp_path / "env.toml", body.format("96k"))
    monkeypatch.setenv(PRESETS_ENV, str(env))
    assert available()["x"].audio_bitrate == "96k"
    extra = write(tmp_path / "extra.toml", body.format("128k"))
    assert available([extra])["x"].audio_bitrate == "128k"


def test_a_bad_user_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A broken preset file is reported, not skipped: a silently missing preset would
    surface later as 'unknown preset'."""
    monkeypatch.setenv(PRESETS_ENV, str(tmp_path / "gone.toml"))
    with pytest.raises(InvalidRequest, match="does not exist"):
        available()


# --- ffmpeg arguments ------------------------------------------------------------------------


def test_filters_never_upscale() -> None:
    preset = x264(height=720, pix_fmt="yuv420p")
    assert video_filters(preset, (320, 240)) == ["scale=-2:240"]
    assert video_filters(preset, (1920, 1080)) == ["scale=-2:720"]


def test_filters_keep_aspect_with_even_sizes_for_420() -> None:
    assert video_filters(x264(height=481, pix_fmt="yuv420p"), (1920, 1080)) == ["scale=-2:480"]
    assert video_filters(x264(width=641, pix_fmt="yuv420p"), (1920, 1080)) == ["scale=640:-2"]


def test_filters_422_needs_only_an_even_width() -> None:
    assert video_filters(x264(height=481, pix_fmt="yuv422p"), (1920, 1080)) == ["scale=-2:481"]
    assert video_filters(x264(width=641, pix_fmt="yuv422p10le"), (1920, 1080)) == ["scale=640:-1"]


def test_filters_without_subsampling_keep_odd_sizes() -> None:
    assert video_filters(x264(width=641, pix_fmt="yuv444p"), (1920, 1080)) == ["scale=641:-1"]
    assert video_filters(x264(pix_fmt="yuv444p"), (319, 239)) == []


def test_filters_fit_in_a_box() -> None:
    preset = x264(width=640, height=640, pix_fmt="yuv420p")
    assert video_filters(preset, (1920, 1080)) == [
        "scale=640:640:force_original_aspect_ratio=decrease:force_divisible_by=2"
    ]
    assert video_filters(preset, (320, 240)) == [
        "scale=320:240:force_original_aspect_ratio=decrease:force_divisible_by=2"
    ]


def test_filters_make_odd_sources_even_for_420() -> None:
    """x264 refuses odd sizes in 4:2:0; a source of 319x239 must lose a line and a column."""
    assert video_filters(x264(pix_fmt="yuv420p"), (319, 239)) == ["scale=318:238"]
    assert video_filters(x264(pix_fmt="yuvj420p"), (320, 239)) == ["scale=320:238"]
    assert video_filters(x264(pix_fmt="yuv422p"), (319, 239)) == ["scale=318:239"]
    assert video_filters(x264(pix_fmt="yuv420p"), (320, 240)) == []


def test_filters_frame_rate_comes_after_scaling() -> None:
    preset = x264(height=120, pix_fmt="yuv420p", frame_rate="30000/1001")
    assert video_filters(preset, (320, 240)) == ["scale=-2:120", "fps=30000/1001"]
    assert video_filters(x264(frame_rate="25"), (320, 240)) == ["fps=25"]


def test_video_codec_args() -> None:
    preset = BUILTIN["h264"]
    assert video_codec_args(preset, threads=4) == [
        "-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p",
        "-threads", "4",
    ]  # fmt: skip
    two_pass = video_codec_args(BUILTIN["h264-720p-2pass"], threads=None)
    assert two_pass[two_pass.index("-b:v") + 1] == "4M"
    assert "-crf" not in two_pass and "-threads" not in two_pass
    vp9 = video_codec_args(BUILTIN["vp9"], threads=None)
    assert vp9[-len(BUILTIN["vp9"].video_options) :] == list(BUILTIN["vp9"].video_options)


def test_audio_codec_args() -> None:
    assert audio_codec_args(BUILTIN["h264"]) == ["-c:a", "aac", "-b:a", "192k"]
    assert audio_codec_args(BUILTIN["mp3"]) == ["-c:a", "libmp3lame", "-q:a", "2", "-ac", "2"]
    custom = Preset(
        name="t", container="mkv", audio_codec="libopus", audio_sample_rate=48000,
        audio_options=("-application", "voip"),
    )  # fmt: skip
    assert audio_codec_args(custom) == [
        "-c:a", "libopus", "-ar", "48000", "-application", "voip"
    ]  # fmt: skip


# --- listing ---------------------------------------------------------------------------------


def test_listing_marks_presets_whose_encoder_is_missing(tmp_path: Path) -> None:
    assert ABSENT_ENCODER not in ffmpeg().encoders
    path = write(
        tmp_path / "av1.toml",
        f'[preset.svt]\ncontainer = "mp4"\nvideo_codec = "{ABSENT_ENCODER}"\naudio_codec = "aac"\n',
    )
    rows = {row["name"]: row for row in presets_for_listing([path])}
    assert rows["svt"]["available"] is False
    assert rows["svt"]["missing_encoders"] == [ABSENT_ENCODER]
    assert rows["svt"]["kind"] == "video"
    assert rows["svt"]["extension"] == ".mp4"


def test_listing_builtins_all_run_on_the_wheels_ffmpeg() -> None:
    """Every built-in preset's encoders are in the pinned ffmpeg build."""
    rows = presets_for_listing()
    assert [row["name"] for row in rows] == list(BUILTIN)
    assert [row["name"] for row in rows if not row["available"]] == []
    assert {row["name"]: row["kind"] for row in rows}["remux"] == "remux"


def test_listing_with_no_ffmpeg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(FFMPEG_ENV, str(tmp_path / "no-ffmpeg"))
    rows = {row["name"]: row for row in presets_for_listing()}
    assert rows["h264"]["missing_encoders"] == ["libx264", "aac"]
    assert rows["remux"]["available"] is True  # copies need no encoder


def test_level_and_profile_reach_the_encoder_and_the_prediction(tmp_path: Path) -> None:
    from fractions import Fraction

    from qfarm.media.presets import expected_level

    preset = load_one(
        tmp_path,
        'container = "mp4"\nvideo_codec = "libx264"\nlevel = 4.1\nprofile = "main"\n'
        "audio_tracks = [2, 1]\n",
    )
    args = video_codec_args(preset, threads=None)
    assert args[args.index("-profile:v") + 1] == "main"
    assert args[args.index("-level:v") + 1] == "4.1"
    assert expected_level(preset, (320, 180), Fraction(25)) == 41
    assert preset.audio_tracks == (2, 1)
    assert Preset.from_dict(preset.to_dict()) == preset
