"""Pictures of a segment's output for people to look at: a small one for lists and a
display-size one for a click, both JPEG, made by the node's ffmpeg.

One ffmpeg run decodes the output once and writes both sizes (``split``): decoding is
the dear part (a 1080p EXR is 25 MB of floats). A picture over its byte budget is made
again at a lower quality, step by step, so a noisy frame still fits.

Display needs 8-bit sRGB. A 16-bit PNG is display-referred already and only loses its
low bits. An EXR holds linear light: the EXR decoder applies the sRGB curve to it
(``-apply_trc iec61966_2_1``), which is what Blender's "Standard" view shows an artist;
values above 1.0 clip. (A Reinhard curve through ``tonemap`` and ``zscale`` was tried: it
flattened ordinary renders, whose light is mostly below 1.0, to grey.) A video (a
transcode's chunk or output) gives a poster frame: ffmpeg's ``thumbnail`` filter picks the
most typical of its first frames, rather than a black or faded first one.

Nothing here starts a process itself: the caller's ``run`` does (on a node, under the
segment's supervisor, so a cancel ends it too), as for :mod:`qfarm.media.verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SMALL_BOX = (320, 180)  # a list's preview, fitted inside, never enlarged
SMALL_BYTES = 50_000
FULL_BOX = (1920, 1080)  # the click's picture
FULL_BYTES = 300_000
# Where even the poorest quality is over budget (noise, film grain), smaller boxes.
SMALLER = {SMALL_BOX: ((240, 135), (160, 90)), FULL_BOX: ((1280, 720), (960, 540), (640, 360))}
# mjpeg's -q:v from good to poor: the first that fits its budget is kept.
QUALITIES = (3, 5, 8, 12, 18, 25, 31)
POSTER_FRAMES = 24  # frames of a video the thumbnail filter chooses among

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".bmp", ".webp", ".tga", ".dpx",
     ".ppm", ".pgm", ".hdr", ".jp2"}
)  # fmt: skip
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".m4v", ".ts", ".mpg", ".mpeg",
     ".y4m", ".gif", ".ogv", ".flv", ".wmv"}
)  # fmt: skip

# Runs an ffmpeg command line; returns None when it succeeded, else why not (one line).
Run = Callable[[Sequence[str]], str | None]


class ThumbnailFailed(Exception):
    """No picture could be made of an output: the reason is one line."""


@dataclass(frozen=True)
class Encoded:
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class Pictures:
    small: Encoded
    full: Encoded


def source_kind(path: str) -> str | None:
    """``image``, ``video``, or None for a file no picture is made of (audio, data)."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _fit(box: tuple[int, int]) -> str:
    """A scale filter that fits inside ``box``, keeps the aspect ratio and never enlarges
    (even sizes: the 4:2:0 JPEG needs them)."""
    w, h = box
    return (
        f"scale=w='min({w},iw)':h='min({h},ih)':force_original_aspect_ratio=decrease"
        ":force_divisible_by=2,format=yuvj420p"
    )


def _display(source: str) -> tuple[list[str], str]:
    """The input options and the filters before scaling that make ``source`` displayable."""
    if Path(source).suffix.lower() == ".exr":
        return ["-apply_trc", "iec61966_2_1"], ""
    if source_kind(source) == "video":
        return [], f"thumbnail=n={POSTER_FRAMES},"
    return [], ""


def argv(
    ffmpeg: str,
    source: str,
    outputs: Sequence[tuple[Path, tuple[int, int], int]],
) -> list[str]:
    """One ffmpeg run writing ``source``'s picture once per (file, box, quality)."""
    inputs, display = _display(source)
    labels = [f"p{i}" for i in range(len(outputs))]
    split = f"split={len(outputs)}" + "".join(f"[s{i}]" for i in range(len(outputs)))
    graph = f"[0:v:0]{display}{split}"
    for i, (_, box, _) in enumerate(outputs):
        graph += f";[s{i}]{_fit(box)}[{labels[i]}]"
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    args += [*inputs, "-i", source, "-filter_complex", graph]
    for label, (path, _, quality) in zip(labels, outputs, strict=True):
        args += ["-map", f"[{label}]", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", str(quality)]
        args += ["-f", "image2", "-update", "1", str(path)]
    return args


def make(ffmpeg: str, source: str, folder: Path, run: Run) -> Pictures:
    """The small and the full picture of ``source``, each within its byte budget; made in
    ``folder`` (the caller's, and its to remove). Raises :class:`ThumbnailFailed`."""
    if source_kind(source) is None:
        raise ThumbnailFailed(f"{Path(source).name} is neither an image nor a video")
    small_path, full_path = folder / "small.jpg", folder / "full.jpg"
    first = QUALITIES[1]
    wanted = [(small_path, SMALL_BOX, first), (full_path, FULL_BOX, first)]
    why = run(argv(ffmpeg, source, wanted))
    if why is not None:
        raise ThumbnailFailed(why)
    small = _within(ffmpeg, source, small_path, SMALL_BOX, SMALL_BYTES, run)
    full = _within(ffmpeg, source, full_path, FULL_BOX, FULL_BYTES, run)
    return Pictures(small, full)


def _within(
    ffmpeg: str,
    source: str,
    path: Path,
    box: tuple[int, int],
    budget: int,
    run: Run,
) -> Encoded:
    """The picture at ``path``, made again at lower qualities, then in smaller boxes,
    until it fits ``budget``."""
    tries = [(box, q) for q in QUALITIES[2:]]
    tries += [(smaller, q) for smaller in SMALLER.get(box, ()) for q in QUALITIES[2::2]]
    for each_box, quality in tries:
        if _size(path) <= budget:
            break
        why = run(argv(ffmpeg, source, [(path, each_box, quality)]))
        if why is not None:
            raise ThumbnailFailed(why)
    data = path.read_bytes()
    if len(data) > budget:
        raise ThumbnailFailed(
            f"the {box[0]}x{box[1]} picture is {len(data)} bytes even at the lowest quality "
            f"(at most {budget})"
        )
    width, height = jpeg_size(data)
    return Encoded(width, height, data)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise ThumbnailFailed("ffmpeg wrote no picture") from None


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from a JPEG's frame header (SOF), without decoding it."""
    if data[:2] != b"\xff\xd8":
        raise ThumbnailFailed("ffmpeg's picture is not a JPEG")
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            at += 1
            continue
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            at += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            return width, height
        at += 2 + length
    raise ThumbnailFailed("ffmpeg's picture has no JPEG frame header")
