"""Checks an assembled output against its source before it takes the final name.

What is checked, and why each one:

* frame count: a seam that duplicates or drops a frame changes it. Exact for sources of
  constant frame rate (and for any source when frames pass through one to one);
* duration, within one frame: a seam at the wrong time stretches or shortens the output;
* audio duration, within one frame or two audio packets: audio encoded once must cover the
  whole source;
* audio samples, per track: never fewer than the source presents (a lost AAC frame is 1024
  short, which a duration within a frame cannot see), and no more than one frame of the
  output's codec more (AAC, MP3 and Opus code whole frames, so the encoder pads the last
  one), plus one of the source's codec (ffmpeg decodes a source's last frame whole, padding
  included). PCM from PCM is exact. The priming ahead of the start is at most a frame: a
  track whose priming was counted twice starts a frame late in its samples;
* the audio-to-video offset, within 1 ms of the source's: a split output's audio and video
  are made apart and joined, so their start times are set there;
* the H.264 level, where planning predicted the one plain ffmpeg gives;
* the subtitle streams kept, the timecode and the chapters, as the source has them;
* decoding: the first half second, and half a second from every seam, are decoded by ffmpeg,
  whose error log must stay empty. With ``full`` the whole file is decoded (slower: about a
  tenth of an encode's time at 1080p).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qfarm.media.probe import AudioFacts, MediaInfo, probe

SEAM_WINDOW_SECONDS = 0.5
SEAM_NUDGE_SECONDS = 0.001
AUDIO_PACKET_SECONDS = 2048 / 44100  # two AAC packets at a low common sample rate
SYNC_TOLERANCE_SECONDS = 0.001
# Samples one frame of each codec holds: how far past the source's end its encoder pads,
# and the most priming (encoder delay) it writes ahead of the start. Others: exact.
CODEC_FRAME_SAMPLES = {"aac": 1024, "mp3": 1152, "opus": 960, "vorbis": 2048, "ac3": 1536,
                       "eac3": 1536, "alac": 4096, "flac": 4608}  # fmt: skip
# Samples of priming each of ffmpeg's encoders puts ahead of the first one: signalled in MP4
# and MOV (an edit list) and in WebM (Opus's CodecDelay), not for AAC in Matroska, whose
# decoder then plays them as the stream's first samples.
ENCODER_DELAY = {"aac": 1024, "libopus": 312, "libmp3lame": 1105, "libvorbis": 0}


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
    problems += _compare_tracks(found, expected.get("audio_tracks"))
    problems += _compare_offset(found, expected.get("av_offset"), expected.get("audio_tracks"))
    problems += _compare_level(found, expected.get("level"))
    problems += _compare_carried(found, expected)
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


def _compare_tracks(found: MediaInfo, tracks: Any) -> list[str]:
    """Each expected track (``channels``, ``layout``, ``samples`` at ``sample_rate``) against
    the output's tracks in order."""
    if tracks is None:
        return []
    got = found.tracks
    if len(got) != len(tracks):
        return [f"the output has {len(got)} audio tracks, {len(tracks)} expected"]
    problems: list[str] = []
    for number, (track, want) in enumerate(zip(got, tracks, strict=True), start=1):
        problems += _compare_track(number, track, want)
    return problems


def _compare_track(number: int, track: AudioFacts, want: Mapping[str, Any]) -> list[str]:
    what = f"audio track {number}"
    if int(want["channels"]) != track.channels:
        return [f"{what} has {track.channels} channels, {want['channels']} expected"]
    layout = str(want.get("layout") or "")
    if layout and track.layout and layout != track.layout:
        return [f"{what} is {track.layout}, {layout} expected"]
    frame = CODEC_FRAME_SAMPLES.get(track.codec, 0)
    if track.priming > frame and not want.get("copied"):
        return [f"{what} has {track.priming} samples of priming, its encoder writes {frame}"]
    samples = want.get("samples")
    if samples is None:
        return []
    # The source's count at the output's rate (a preset may resample).
    needed = round(int(samples) * track.sample_rate / int(want["sample_rate"]))
    if track.samples < needed:
        return [f"{what} has {track.samples} samples, {needed - track.samples} fewer than "
                f"the source's {needed}"]  # fmt: skip
    padding = frame + round(int(want.get("source_padding") or 0) * track.sample_rate
                            / int(want["sample_rate"]))  # fmt: skip
    if track.samples > needed + padding:
        return [f"{what} has {track.samples} samples, {track.samples - needed} more than the "
                f"source's {needed}"]  # fmt: skip
    return []


def av_offset(info: MediaInfo, delay: int = 0) -> float | None:
    """When the first audio track's first sound starts against the video, in seconds
    (negative: before). ``delay`` is the priming its encoder wrote: what the container does
    not mark of it is played, so the sound itself starts that much later."""
    if info.video is None or info.audio is None:
        return None
    audio = info.audio
    unmarked = max(0, delay - audio.priming) / audio.sample_rate if audio.sample_rate else 0.0
    return audio.start_seconds + unmarked - info.video.start_seconds


def _compare_offset(found: MediaInfo, wanted: Any, tracks: Any) -> list[str]:
    if wanted is None:
        return []
    delay = int((tracks or [{}])[0].get("delay") or 0)
    offset = av_offset(found, delay)
    if offset is None:
        return []
    if abs(offset - float(wanted)) > SYNC_TOLERANCE_SECONDS:
        return [f"the output's audio starts {offset * 1000:+.1f} ms from its video, the "
                f"source's {float(wanted) * 1000:+.1f} ms"]  # fmt: skip
    return []


def _compare_carried(found: MediaInfo, expected: Mapping[str, Any]) -> list[str]:
    """Subtitles, timecode and chapters: what a split output used to lose."""
    problems: list[str] = []
    subtitles = expected.get("subtitles")
    if subtitles is not None:
        got = sum(1 for s in found.streams if s.kind == "subtitle")
        if got != int(subtitles):
            problems.append(f"the output has {got} subtitle streams, {subtitles} expected")
    timecode = expected.get("timecode")
    if timecode and found.tags.get("timecode") != timecode:
        problems.append(
            f"the output's timecode is {found.tags.get('timecode') or 'missing'}, the "
            f"source's {timecode}"
        )
    chapters = expected.get("chapters")
    if chapters and found.chapters != int(chapters):
        problems.append(f"the output has {found.chapters} chapters, the source {chapters}")
    return problems


def _compare_level(found: MediaInfo, wanted: Any) -> list[str]:
    if wanted is None or found.video is None:
        return []
    if found.video.level != int(wanted):
        return [f"the output is labelled level_idc {found.video.level}, plain ffmpeg gives "
                f"{int(wanted)}"]  # fmt: skip
    return []


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
        "-i", path, "-t", f"{length:.6f}", "-map", "0:v?", "-map", "0:a?", "-f", "null", "-",
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
