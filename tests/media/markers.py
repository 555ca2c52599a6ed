"""Sync-marker media for A/V offset tests: a white flash frame and a 1 kHz beep at the
same instants (every second from 1 s), made with ffmpeg's lavfi, and a reader that finds
each flash and each beep in a file, in presentation time."""

from __future__ import annotations

import subprocess
from array import array
from dataclasses import dataclass
from pathlib import Path

import av

from qfarm.media.tool import ffmpeg

BEEP_SECONDS = 0.04  # a frame at 25 fps


@dataclass(frozen=True)
class Markers:
    flashes: tuple[float, ...]  # seconds at which a white frame starts
    beeps: tuple[float, ...]  # seconds at which a beep's first loud sample plays

    def offsets(self) -> list[float]:
        """Beep minus flash for each pair, in seconds."""
        return [b - f for f, b in zip(self.flashes, self.beeps, strict=True)]


def make_sync_source(
    path: Path,
    *,
    seconds: float = 4.0,
    video_delay: float = 0.0,
    rate: str = "25",
    size: str = "320x180",
    audio_args: tuple[str, ...] = ("-c:a", "aac"),
) -> Path:
    """Flashes and beeps at 1 s, 2 s, ...; with ``video_delay`` the video stream starts that
    much after the audio (its first frame at that time), the markers still together."""
    run = [ffmpeg().path, "-hide_banner", "-v", "error", "-y"]
    # The video is made on its own, its flashes at its own times minus the delay, then
    # muxed by stream copy with -itsoffset: a copy keeps the late start (an encode would
    # fill the lead-in with copies of the first frame).
    shown = f"(t+{video_delay})"
    flash = f"lt(mod({shown}\\,1)\\,{BEEP_SECONDS})*gte({shown}\\,1)"
    video_path = path.with_name(path.stem + "-video.mp4")
    video = (
        f"color=c=black:size={size}:rate={rate}:duration={seconds - video_delay},"
        f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='{flash}'"
    )
    subprocess.run([*run, "-f", "lavfi", "-i", video, "-c:v", "libx264", "-g", "30",
                    "-pix_fmt", "yuv420p", str(video_path)], check=True)  # fmt: skip
    beep = f"if(lt(mod(t\\,1)\\,{BEEP_SECONDS})*gte(t\\,1)\\,0.8*sin(2*PI*1000*t)\\,0)"
    audio = f"aevalsrc='{beep}':sample_rate=48000:duration={seconds}"
    delay = ["-itsoffset", str(video_delay)] if video_delay else []
    subprocess.run([*run, *delay, "-i", str(video_path), "-f", "lavfi", "-i", audio,
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy", *audio_args, str(path)],
                   check=True)  # fmt: skip
    video_path.unlink()
    return path


def read_markers(path: Path) -> Markers:
    """Each flash's frame time and each beep's onset, as a player presents them."""
    with av.open(str(path)) as container:
        flashes = _flashes(container)
    with av.open(str(path)) as container:
        beeps = _beeps(container)
    return Markers(flashes=tuple(flashes), beeps=tuple(beeps))


def _flashes(container: av.container.InputContainer) -> list[float]:
    found: list[float] = []
    lit = False
    for frame in container.decode(video=0):
        plane = bytes(frame.reformat(format="gray").planes[0])
        bright = sum(plane[:: max(1, len(plane) // 256)]) / 256 > 128
        if bright and not lit and frame.time is not None:
            found.append(float(frame.time))
        lit = bright
    return found


def _beeps(container: av.container.InputContainer) -> list[float]:
    resampler = av.AudioResampler(format="s16", layout="mono")
    found: list[float] = []
    quiet_since = -1.0
    stream = container.streams.audio[0]
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        rate = frame.sample_rate
        start = float(frame.time)
        for out in resampler.resample(frame):
            samples = array("h", bytes(out.planes[0])[: out.samples * 2])
            for i, value in enumerate(samples):
                at = start + i / rate
                if abs(value) > 3000:
                    if at - quiet_since > 0.5:
                        found.append(at)
                    quiet_since = at
    return found
