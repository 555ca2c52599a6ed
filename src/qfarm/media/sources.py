"""What a transcode source is: a media file, or an image sequence read as one movie.

Artists hand a farm rendered frames as often as movies: ``shot_%04d.png`` (printf, as ffmpeg
names them), ``shot_####.exr`` (hash padding, as Nuke and Blender name them), a folder of
frames, or a glob of them. Each is one source of ``count`` frames at ``rate``, numbered from
``first`` (renders often start at 1001), read by ffmpeg's image2 demuxer. A folder of movies
is one source per media file instead. Resolving happens twice: on the client (the CLI turns
arguments into sources, one job each) and in the job type (its input may come from a batch
file or the API), and both use :func:`expand` so they cannot disagree.

Files are told apart by their extension, not by probing: a folder of 10,000 EXR frames is
listed, never opened, until its first frame is read for its size.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.media.probe import MediaInfo, StreamFacts, probe

DEFAULT_RATE = Fraction(24)
IMAGE_EXTENSIONS = frozenset(
    {".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff", ".dpx", ".bmp", ".tga", ".webp"}
)
MEDIA_EXTENSIONS = frozenset(
    {".mov", ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mxf", ".ts", ".mts", ".m2ts", ".mpg",
     ".mpeg", ".dv", ".flv", ".wmv", ".3gp", ".ogv", ".wav", ".m4a", ".mp3", ".aac", ".flac",
     ".ogg", ".opus", ".aif", ".aiff"}
)  # fmt: skip
_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+")
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<suffix>\.[^.]+)$")


@dataclass(frozen=True)
class MediaSource:
    """One transcode source. ``path`` is a file, or for a sequence an image2 pattern (one
    printf ``%0Nd``, the folder's own ``%`` doubled nowhere: ffmpeg reads the pattern as
    given); ``first`` is the sequence's first frame number, ``frames`` its frame count."""

    path: str
    first: int | None = None
    frames: int = 0
    rate: Fraction = field(default=DEFAULT_RATE)

    @property
    def is_sequence(self) -> bool:
        return self.first is not None

    @property
    def last(self) -> int:
        return int(self.first or 0) + self.frames - 1

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def stem(self) -> str:
        """What outputs are named after: ``shot`` for ``shot_%04d.png``, the folder's name
        for frames named by number alone."""
        if not self.is_sequence:
            return Path(self.path).stem
        prefix = self.name.split("%", 1)[0].rstrip("._- ")
        return prefix or Path(self.path).parent.name or "frames"

    def frame_path(self, number: int) -> str:
        return os.path.join(os.path.dirname(self.path), _format(self.name, number))

    def input_args(self, skip: int = 0) -> list[str]:
        """ffmpeg's input options for this source, from its ``skip``-th frame: a sequence
        starts at a frame number (no seek: image2 reads exactly the files asked for)."""
        if not self.is_sequence:
            return ["-i", self.path]
        return [
            "-framerate", str(self.rate), "-start_number", str(int(self.first or 0) + skip),
            "-f", "image2", "-i", self.path,
        ]  # fmt: skip

    def describe(self) -> str:
        """``f_%04d.png, frames 1001-1048 at 24 fps``."""
        return f"{self.name}, frames {self.first}-{self.last} at {rate_text(self.rate)} fps"

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.path, "first": self.first, "frames": self.frames,
                "rate": str(self.rate)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaSource:
        return cls(str(data["pattern"]), int(data["first"]), int(data["frames"]),
                   Fraction(str(data["rate"])))  # fmt: skip


@dataclass(frozen=True)
class Expansion:
    """Sources found for some arguments, and the files a folder held that are not media."""

    sources: list[MediaSource]
    skipped: list[str]


def parse_rate(value: Any) -> Fraction:
    """A frame rate: ``24``, ``25``, ``23.976`` or ``24000/1001``; None for the default."""
    if value is None or value == "":
        return DEFAULT_RATE
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise InvalidRequest(f"rate {value!r} is not a frame rate (24, 25, 30000/1001)") from None
    if rate <= 0:
        raise InvalidRequest(f"rate must be more than 0, not {value!r}")
    return rate


def expand(arguments: Iterable[str], cwd: Path, rate: Fraction = DEFAULT_RATE) -> Expansion:
    """The sources that ``arguments`` name, in order, each once. Raises InvalidRequest for an
    argument that names nothing, or a sequence with a gap."""
    sources: list[MediaSource] = []
    skipped: list[str] = []
    for argument in arguments:
        found, left = _expand_one(argument, cwd, rate)
        sources += [s for s in found if s not in sources]
        skipped += left
    return Expansion(sources, skipped)


def resolve(argument: str, cwd: Path, rate: Fraction = DEFAULT_RATE) -> MediaSource:
    """The one source a job's ``input`` names (a file, pattern, folder of frames or glob of
    frames). Raises InvalidRequest when it names several, or none."""
    found = expand([argument], cwd, rate).sources
    if len(found) != 1:
        raise InvalidRequest(
            f"{argument!r} names {len(found)} media files: a transcode job takes one source "
            "(qfarm run transcode makes a job of each)"
        )
    return found[0]


def _expand_one(argument: str, cwd: Path, rate: Fraction) -> tuple[list[MediaSource], list[str]]:
    expanded = os.path.expanduser(argument)
    literal = Path(os.path.normpath(cwd / expanded))
    if literal.is_file():
        return [MediaSource(str(literal))], []
    name = literal.name
    if _PRINTF.search(name) or _HASHES.search(name):
        return [_scan_pattern(literal, rate)], []
    if literal.is_dir():
        return _folder(literal, rate)
    if glob.has_magic(expanded):
        matches = sorted(
            Path(os.path.normpath(cwd / p))
            for p in glob.glob(expanded, root_dir=cwd)
            if (cwd / p).is_file()
        )
        if not matches:
            raise InvalidRequest(f"{argument!r} matches no file in {cwd}")
        return _files(matches, rate, argument), []
    raise InvalidRequest(f"{literal} does not exist")


def _files(files: list[Path], rate: Fraction, what: str) -> list[MediaSource]:
    """Matches of a glob: one sequence when they are all frames of one numbered sequence,
    else each file a source of its own (as a glob of movies is)."""
    if all(f.suffix.lower() in IMAGE_EXTENSIONS for f in files):
        sequence = _as_sequence(files, rate, what)
        if sequence is not None:
            return [sequence]
    return [MediaSource(str(f)) for f in files]


def _folder(folder: Path, rate: Fraction) -> tuple[list[MediaSource], list[str]]:
    """A folder of frames is one sequence; a folder of movies one source per media file,
    every other file skipped (and named, so the user sees what was left out)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    media = [f for f in files if f.suffix.lower() in MEDIA_EXTENSIONS]
    if images and not media:
        sequence = _as_sequence(images, rate, str(folder))
        if sequence is None:
            raise InvalidRequest(
                f"{folder} holds images that are not one numbered sequence (name them like "
                "shot_0001.png, or give a pattern such as shot_%04d.png)"
            )
        return [sequence], [f.name for f in files if f not in images]
    if not media:
        raise InvalidRequest(f"{folder} holds no media files or image frames")
    return [MediaSource(str(f)) for f in media], [f.name for f in files if f not in media]


def _as_sequence(files: list[Path], rate: Fraction, what: str) -> MediaSource | None:
    """The numbered sequence ``files`` make (one folder, prefix and extension), or None
    when they make none. A gap is refused, naming the first missing frame."""
    parts = [(f.parent, _NUMBERED.match(f.name)) for f in files]
    if any(m is None for _, m in parts):
        return None
    shapes = {(folder, m["prefix"], m["suffix"]) for folder, m in parts if m}
    if len(shapes) != 1:
        return None
    folder, prefix, suffix = shapes.pop()
    if "%" in prefix + suffix:  # image2 would read it as a pattern
        return None
    digits = [m["digits"] for _, m in parts if m]
    numbers = [int(d) for d in digits]
    width = min(len(d) for d in digits)
    for spec in ([f"%0{width}d"] if width > 1 else []) + ["%d"]:
        if all(_format(spec, n) == d for n, d in zip(numbers, digits, strict=True)):
            break
    else:
        return None  # mixed paddings: not one sequence
    pattern = folder / (prefix + spec + suffix)
    return _sequence(pattern, sorted(numbers), rate, what)


def _scan_pattern(pattern: Path, rate: Fraction) -> MediaSource:
    """The frames on disk that a printf or hash pattern names."""
    name = pattern.name
    if not _PRINTF.search(name):
        hashes = max(_HASHES.findall(name), key=len)
        name = name.replace(hashes, f"%0{len(hashes)}d" if len(hashes) > 1 else "%d", 1)
    match = _PRINTF.search(name)
    assert match is not None
    head, tail = name[: match.start()], name[match.end() :]
    folder = pattern.parent
    if not folder.is_dir():
        raise InvalidRequest(f"{folder} does not exist")
    numbered = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
    numbers = sorted(
        int(m[1])
        for entry in os.scandir(folder)
        if (m := numbered.match(entry.name)) and _format(name, int(m[1])) == entry.name
    )
    return _sequence(folder / name, numbers, rate, str(pattern))


def _sequence(pattern: Path, numbers: list[int], rate: Fraction, what: str) -> MediaSource:
    if not numbers:
        raise InvalidRequest(f"{what} matches no frame")
    missing = next((n for n, m in zip(range(numbers[0], numbers[-1] + 1), numbers,
                                      strict=False) if n != m), None)  # fmt: skip
    if missing is not None:
        source = MediaSource(str(pattern), numbers[0], len(numbers), rate)
        raise InvalidRequest(
            f"{what}: frame {missing} ({os.path.basename(source.frame_path(missing))}) is "
            f"missing from frames {numbers[0]}-{numbers[-1]}; a sequence must have no gaps"
        )
    return MediaSource(str(pattern), numbers[0], len(numbers), rate)


def _format(name: str, number: int) -> str:
    """``name``'s frame ``number``: its printf field filled in."""
    match = _PRINTF.search(name)
    assert match is not None
    width = int(match[2] or 0)
    digits = f"{number:0{width}d}" if match[1] else f"{number:{width}d}"
    return name[: match.start()] + digits + name[match.end() :]


def rate_text(rate: Fraction) -> str:
    """A frame rate as people write it: 24, 25, 29.97, 23.976."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def probe_source(source: MediaSource) -> MediaInfo:
    """What planning knows of ``source``: a movie's probe, or a sequence's facts by
    construction (frame *i* at *i*/rate), its picture read off the first frame only."""
    if not source.is_sequence:
        return probe(source.path)
    first = probe(source.frame_path(int(source.first or 0)))
    picture = first.video
    if picture is None:
        raise InvalidRequest(f"{source.frame_path(int(source.first or 0))} holds no picture")
    time_base = 1 / source.rate
    video = dataclasses.replace(
        picture, time_base=time_base, frame_rate=source.rate, guessed_rate=source.rate,
        pts=tuple(range(source.frames)), keyframes=tuple(range(source.frames)),
        end=source.frames, interlaced=False, level=0,
    )  # fmt: skip
    return MediaInfo(
        path=source.path, container="image2", duration=video.duration, start=0.0,
        video=video, audio=None, streams=(StreamFacts(0, "video", picture.codec),),
    )  # fmt: skip
