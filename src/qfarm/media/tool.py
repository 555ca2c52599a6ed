"""Which ffmpeg a node runs, its version and its encoders.

Every node of a cluster runs the same qfarm, and with it the same imageio-ffmpeg wheel, so
the ffmpeg is normally the same everywhere. ``QFARM_FFMPEG`` points a node at another build
(a hardware-encoder build, say); its version then shows in the node's fingerprint, and the
dispatcher keeps all segments of one job on nodes whose version is the same.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

FFMPEG_ENV = "QFARM_FFMPEG"


class ToolMissing(Exception):
    """ffmpeg cannot be found or does not run."""


@dataclass(frozen=True)
class Ffmpeg:
    path: str
    version: str  # the first word after "ffmpeg version": "7.0.2-static"
    encoders: frozenset[str]  # "libx264", "aac", ...


def ffmpeg_path() -> str:
    configured = os.environ.get(FFMPEG_ENV)
    if configured:
        return configured
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise ToolMissing("imageio-ffmpeg is not installed and QFARM_FFMPEG is not set") from None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise ToolMissing(f"no ffmpeg: {exc}") from None


@functools.cache
def _probe(path: str) -> Ffmpeg:
    try:
        version = subprocess.run(
            [path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
        )
        encoders = subprocess.run(
            [path, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolMissing(f"ffmpeg at {path} does not run: {exc}") from None
    if version.returncode != 0:
        raise ToolMissing(f"ffmpeg at {path} exited {version.returncode} on -version")
    match = re.search(r"ffmpeg version (\S+)", version.stdout)
    names = set()
    for line in encoders.stdout.splitlines():
        # " V....D libx264   libx264 H.264 ...": flags, then the name.
        parts = line.split()
        # The legend above the list (" V..... = Video") has "=" where a name would be.
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and parts[1] != "=":
            names.add(parts[1])
    return Ffmpeg(
        path=path, version=match.group(1) if match else "unknown", encoders=frozenset(names)
    )


def ffmpeg() -> Ffmpeg:
    """The ffmpeg of this process, probed once. Raises :class:`ToolMissing`."""
    return _probe(ffmpeg_path())


def has_encoder(name: str) -> bool:
    try:
        return name in ffmpeg().encoders
    except ToolMissing:
        return False


def image_pattern(folder: Path, name: str) -> str:
    """An image2 output pattern: ``name`` (holding the one ``%06d``) in ``folder``, whose own
    ``%`` signs are doubled so ffmpeg reads them as text."""
    return str(folder).replace("%", "%%") + os.sep + name
