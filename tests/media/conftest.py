"""Small real media made once per session with the ffmpeg of the imageio-ffmpeg wheel.

Every file is at most 3 s of 320x240, so the whole set takes well under a second to make.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from qfarm.media.tool import FFMPEG_ENV, ffmpeg

VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"]

MakeMedia = Callable[..., Path]


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    # A QFARM_FFMPEG of the developer's would change what the files hold.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(FFMPEG_ENV, raising=False)
        return ffmpeg().path


@pytest.fixture(scope="session")
def make_media(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> MakeMedia:
    """``make_media(name, *ffmpeg_args)`` writes ``name`` in a session folder."""
    folder = tmp_path_factory.mktemp("media")

    def make(name: str, *args: str) -> Path:
        out = folder / name
        subprocess.run(
            [ffmpeg_exe, "-hide_banner", "-nostdin", "-v", "error", "-y", *args, str(out)],
            check=True,
            capture_output=True,
        )
        return out

    return make


@pytest.fixture(scope="session")
def av_mp4(make_media: MakeMedia) -> Path:
    """2 s of 25 fps H.264 (timescale 25000) with 2 s of stereo AAC at 48 kHz."""
    return make_media(
        "av.mp4", *VIDEO, *AUDIO, "-c:v", "libx264", "-video_track_timescale", "25000",
        "-c:a", "aac", "-ac", "2", "-shortest",
    )  # fmt: skip


@pytest.fixture(scope="session")
def video_mp4(make_media: MakeMedia) -> Path:
    return make_media("video.mp4", *VIDEO, "-c:v", "libx264")


@pytest.fixture(scope="session")
def audio_m4a(make_media: MakeMedia) -> Path:
    return make_media("audio.m4a", *AUDIO, "-c:a", "aac")


@pytest.fixture(scope="session")
def vfr_mp4(make_media: MakeMedia) -> Path:
    """Frames 0, 1, 5, 6, 10, 11, ... kept at their times: gaps of 1 and 4 frames."""
    return make_media(
        "vfr.mp4", *VIDEO, "-vf", r"select='lt(mod(n\,5)\,2)'", "-fps_mode", "vfr",
        "-c:v", "libx264",
    )  # fmt: skip


@pytest.fixture(scope="session")
def rotated_mp4(make_media: MakeMedia, video_mp4: Path) -> Path:
    """video.mp4 remuxed with a display matrix that turns it a quarter."""
    return make_media("rotated.mp4", "-display_rotation", "90", "-i", str(video_mp4), "-c", "copy")


@pytest.fixture(scope="session")
def whole_ts(make_media: MakeMedia) -> Path:
    """3 s of 25 fps H.264 and AAC in MPEG-TS."""
    return make_media(
        "whole.ts",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
        "-c:v", "libx264", "-c:a", "aac", "-shortest",
    )  # fmt: skip


@pytest.fixture(scope="session")
def truncated_ts(whole_ts: Path) -> Path:
    """The first half of whole.ts, cut on a 188-byte packet: it still probes."""
    data = whole_ts.read_bytes()
    half = len(data) // 2
    out = whole_ts.with_name("truncated.ts")
    out.write_bytes(data[: half - half % 188])
    return out


@pytest.fixture(scope="session")
def corrupt_mp4(av_mp4: Path) -> Path:
    """av.mp4 with the middle half of every video packet of its second second replaced by
    (seeded) noise: the container and its timestamps are intact, the pictures are not."""
    with av.open(str(av_mp4)) as container:
        packets = [
            (p.pos, p.size)
            for p in container.demux(container.streams.video[0])
            if p.size and p.pos is not None
        ]
    data = bytearray(av_mp4.read_bytes())
    noise = random.Random(0)
    for pos, size in packets[len(packets) // 2 :]:
        start, end = pos + size // 4, pos + 3 * size // 4
        data[start:end] = noise.randbytes(end - start)
    out = av_mp4.with_name("corrupt.mp4")
    out.write_bytes(bytes(data))
    return out
