"""What a .blend file says about its own render, and what this machine's Blender can do, both
asked of Blender itself (``blender -b FILE --python-expr ...`` printing JSON): the file format
changes with every Blender release, and only Blender reads it right.

A read costs a Blender start (about 2 s), so reads are cached: a file by its path, size and
modification time, in this process; the build's features by the program's path, size and
modification time, in this process and in a small file under the user's cache folder, since
every node process asks at its start.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfarm.renderers.base import RendererMissing, executable

MARK = "QFARM-JSON "

# Runs inside Blender: every scene's render settings. Only names Blender defines go in.
READ_FILE = """
import bpy, json
def cycles(s):
    c = getattr(s, "cycles", None)
    if c is None:
        return {"denoise": False, "denoiser": "", "device": "CPU"}
    return {"denoise": bool(c.use_denoising), "denoiser": str(c.denoiser),
            "device": str(c.device)}
scenes = {}
for s in bpy.data.scenes:
    r = s.render
    scenes[s.name] = dict(
        frame_start=s.frame_start, frame_end=s.frame_end, frame_step=s.frame_step,
        file_format=r.image_settings.file_format, filepath=r.filepath, engine=r.engine,
        width=r.resolution_x, height=r.resolution_y, percentage=r.resolution_percentage,
        **cycles(s))
print("QFARM-JSON " + json.dumps({"active": bpy.context.scene.name, "scenes": scenes}))
"""

# Runs inside Blender: the optional features of this build.
READ_FEATURES = """
import json
found = []
try:
    import _cycles
    if getattr(_cycles, "with_openimagedenoise", False):
        found.append("denoiser")
    kinds = set()
    for kind in ("CUDA", "OPTIX", "HIP", "METAL", "ONEAPI"):
        try:
            kinds |= {d[1] for d in _cycles.available_devices(kind) if d[1] != "CPU"}
        except Exception:
            pass
    if kinds:
        found.append("gpu")
    if "OPTIX" in kinds:
        found.append("optix")
except ImportError:
    pass
print("QFARM-JSON " + json.dumps(found))
"""


@dataclass(frozen=True)
class BlendScene:
    """One scene's render settings, as saved in the file."""

    name: str
    frame_start: int
    frame_end: int
    frame_step: int
    file_format: str  # Blender's identifier: PNG, JPEG, OPEN_EXR, FFMPEG, ...
    filepath: str  # as saved: "//render/shot_####"
    engine: str
    width: int
    height: int
    percentage: int
    denoise: bool = False
    denoiser: str = ""  # OPENIMAGEDENOISE or OPTIX
    device: str = "CPU"  # CPU or GPU


@dataclass(frozen=True)
class BlendFile:
    path: str
    active: str
    scenes: dict[str, BlendScene] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Plain data, for a job spec read elsewhere (the submitting machine's reading)."""
        return {
            "active": self.active,
            "scenes": {name: vars(scene) for name, scene in self.scenes.items()},
        }

    @classmethod
    def from_json(cls, path: str, data: dict[str, Any]) -> BlendFile:
        scenes = {
            name: BlendScene(**{**values, "name": name}) for name, values in data["scenes"].items()
        }
        return cls(path=path, active=str(data["active"]), scenes=scenes)


def read_blend(path: str) -> BlendFile:
    """The render settings of every scene of a .blend file; RendererMissing without blender."""
    stat = os.stat(path)
    return _read_blend(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_blend(path: str, size: int, mtime_ns: int) -> BlendFile:
    data = _run_python(["-b", "--factory-startup", path], READ_FILE)
    return BlendFile.from_json(path, data)


def blender_features() -> tuple[str, ...]:
    """This machine's Blender's optional features; RendererMissing without blender."""
    program = os.path.realpath(executable("blender", "QFARM_BLENDER"))
    stat = os.stat(program)
    return _features(program, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _features(program: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    key = hashlib.sha256(f"{program}\0{size}\0{mtime_ns}".encode()).hexdigest()[:16]
    cached = _cache_dir() / f"blender-features-{key}.json"
    try:
        return tuple(json.loads(cached.read_text()))
    except (OSError, ValueError):
        pass
    found = tuple(_run_python(["-b", "--factory-startup"], READ_FEATURES))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temp = cached.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(list(found)))
        os.replace(temp, cached)
    except OSError:
        pass  # an unwritable cache only costs the next process a Blender start
    return found


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qfarm"


def _run_python(args: list[str], script: str) -> Any:
    """Run ``script`` in background Blender; what it printed after MARK, as JSON."""
    argv = [executable("blender", "QFARM_BLENDER"), *args, "--python-expr", script]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RendererMissing(f"blender does not run: {exc}") from None
    for line in result.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
    raise BlendUnreadable(" / ".join(tail) or f"blender exited {result.returncode}")


class BlendUnreadable(Exception):
    """Blender ran but could not read the file (not a .blend, or damaged)."""
