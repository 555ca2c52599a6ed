"""Checks an assembled output against its source before it takes the final name.

What is checked, and why each one:

* frame count: a seam that duplicates or drops a frame changes it. Exact for sources of
  constant frame rate (and for any source when frames pass through one to one);
* duration, within one frame: a seam at the wrong time stretches or shortens the output;
* audio duration, within one frame or two audio packets: audio encoded once must cover the
  whole source;
* decoding: the first half second, and half a second from every seam, are decoded by ffmpeg,
  whose error log must stay empty. With ``full`` the whole file is decoded (slower: about a
  tenth of an encode's time at 1080p).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qfarm.media.probe import MediaInfo, probe

SEAM_WINDOW_SECONDS = 0.5
SEAM_NUDGE_SECONDS = 0.001
AUDIO_PACKET_SECONDS = 2048 / 44100  # two AAC packets at a low common sample rate


def compare(found: MediaInfo, expected: Mapping[str, Any]) -> list[str]:
    """Problems of ``found`` against ``expected`` (what planning recorded), as one line each.

    ``expected`` keys: ``frames`` and ``exact_frames`` (video frames), ``duration`` (video),
    ``frame_duration`` (the tolerance), ``audio_duration``.
    """
    problems: list[str] = []
    tolerance = float(expected.get("frame_duration") or 0.04)
    frames = expected.get("frames")
    if frames is not None:
        if found.video is None:
            return ["the output has no video stream"]
        got = found.video.frames
        slack = 0 if expected.get("exact_frames", True) else int(expected.get("frame_slack", 1))
        if abs(got - int(frames)) > slack:
            problems.append(f"the output has {got} video frames, the source {frames}")
        duration = expected.get("duration")
        # Half a frame of float noise on top of the one-frame bound.
        if duration is not None and abs(found.video.duration - float(duration)) > tolerance * 1.5:
            problems.append(
                f"the output's video lasts {found.video.duration:.3f} s, "
                f"the source's {float(duration):.3f} s"
            )
    audio_duration = expected.get("audio_duration")
    if audio_duration is not None:
        if found.audio is None:
            problems.append("the output has no audio stream")
        else:
            bound = max(tolerance, AUDIO_PACKET_SECONDS) * 1.5
            if abs(found.audio.duration - float(audio_duration)) > bound:
                problems.append(
                    f"the output's audio lasts {found.audio.duration:.3f} s, "
                    f"the source's {float(audio_duration):.3f} s"
                )
    return problems


def decode_windows(
    duration: float, seams: Sequence[float], full: bool
) -> list[tuple[float, float]]:
    """Time windows (start, length) to decode: the start, and just after every seam.

    Each chunk starts on a keyframe at its seam, so a window that starts there decodes from
    that keyframe and costs only its own length; a window starting before a seam would
    decode from the previous chunk's last keyframe, seconds earlier. The frames before a
    seam are the encoder's own, copied bit for bit; a packet lost at the join shows in the
    frame count.
    """
    if full or duration <= 2 * SEAM_WINDOW_SECONDS:
        return [(0.0, duration + 1.0)]
    # Just after the seam: a seek to the seam's exact time could round to just before it.
    points = sorted({0.0, *(s + SEAM_NUDGE_SECONDS for s in seams if 0 < s < duration)})
    windows: list[tuple[float, float]] = []
    for start in points:
        end = start + SEAM_WINDOW_SECONDS
        if windows and start <= windows[-1][0] + windows[-1][1]:
            windows[-1] = (windows[-1][0], end - windows[-1][0])
        else:
            windows.append((start, SEAM_WINDOW_SECONDS))
    return windows


def decode_argv(ffmpeg: str, path: str, start: float, length: float) -> list[str]:
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-ss", f"{start:.6f}",
        "-i", path, "-t", f"{length:.6f}", "-map", "0", "-f", "null", "-",
    ]  # fmt: skip


def verify(
    path: str,
    expected: Mapping[str, Any],
    *,
    seams: Sequence[float],
    full: bool,
    decode: Callable[[list[str], Path], int],
    ffmpeg: str,
    error_log: Path,
) -> list[str]:
    """Every problem of the file at ``path``; empty when it may take its final name.

    ``decode(argv, log)`` runs an ffmpeg decode with its stderr in ``log`` and returns the
    exit code; a node passes its supervised runner so a cancel ends it.
    """
    found = probe(path)
    problems = compare(found, expected)
    if problems:
        return problems
    try:
        for start, length in decode_windows(found.duration, seams, full):
            error_log.unlink(missing_ok=True)
            code = decode(decode_argv(ffmpeg, path, start, length), error_log)
            errors = error_log.read_text(errors="replace").strip() if error_log.exists() else ""
            if code != 0 or errors:
                first = errors.splitlines()[0] if errors else f"exit code {code}"
                return [f"the output does not decode cleanly near {start:.2f} s: {first}"]
        return []
    finally:
        error_log.unlink(missing_ok=True)
