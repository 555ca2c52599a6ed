"""Blender, in background mode: ``blender -b SCENE -o PATTERN -s START -e END -a``.

Options are applied by a short Python expression run before the render (Blender runs its
arguments in order): resolution, percentage, samples, threads. Cycles' denoiser is turned
off where the build has none (Debian's), instead of failing every frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qfarm.errors import InvalidRequest
from qfarm.frames import FrameRun
from qfarm.renderers.base import SceneSettings, executable, version_of

# What users type -> Blender's engine identifier.
ENGINES = {
    "cycles": "CYCLES",
    "eevee": "BLENDER_EEVEE",
    "eevee-next": "BLENDER_EEVEE_NEXT",
    "workbench": "BLENDER_WORKBENCH",
}
FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg"), "exr": ("OPEN_EXR", ".exr")}


class BlenderRenderer:
    name = "blender"
    extensions: tuple[str, ...] = (".blend",)
    options = frozenset({"engine", "samples", "percentage", "format"})
    stages_in_tmp = False

    def version(self) -> str:
        return version_of("blender", "QFARM_BLENDER", r"Blender (\d+\.\d+(?:\.\d+)?)")

    def features(self) -> tuple[str, ...]:
        return ()

    def read_scene(
        self, scene: str, spec: Mapping[str, Any], runs: Sequence[FrameRun] | None
    ) -> SceneSettings:
        return SceneSettings()

    def check_options(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        engine = spec.get("engine")
        if engine is not None:
            key = str(engine).lower().replace("_", "-").removeprefix("blender-")
            if key not in ENGINES:
                raise InvalidRequest(f"unknown Blender engine {engine!r}: use {', '.join(ENGINES)}")
            engine = ENGINES[key]
        samples = _whole(spec.get("samples"), "samples", 1, 1_000_000)
        percentage = _whole(spec.get("percentage"), "resolution percentage", 1, 1000)
        fmt = str(spec.get("format") or "png").lower()
        if fmt not in FORMATS:
            raise InvalidRequest(f"unknown output format {fmt!r}: use {', '.join(FORMATS)}")
        return {"engine": engine, "samples": samples, "percentage": percentage, "format": fmt}

    def extension(self, job: Mapping[str, Any]) -> str:
        return FORMATS[job["format"]][1]

    def argv(
        self,
        scene: str,
        start: int,
        end: int,
        step: int,
        staging: Path,
        job: Mapping[str, Any],
        threads: int | None,
    ) -> tuple[list[str], str]:
        argv = [executable("blender", "QFARM_BLENDER"), "-b", scene]
        if job.get("engine"):
            argv += ["-E", job["engine"]]
        argv += ["-o", str(staging / "f_######"), "-F", FORMATS[job["format"]][0], "-x", "1"]
        argv += ["--python-expr", _settings(job, threads)]
        argv += ["-s", str(start), "-e", str(end), "-j", str(step), "-a"]
        return argv, str(Path(scene).parent)

    def staged_name(self, frame: int, job: Mapping[str, Any]) -> str:
        return f"f_{frame:06d}{self.extension(job)}"


def _settings(job: Mapping[str, Any], threads: int | None) -> str:
    """The Python run before the render: only numbers validated above go into it."""
    lines = [
        "import bpy",
        "s = bpy.context.scene",
        "r = s.render",
    ]
    if job.get("width"):
        lines.append(f"r.resolution_x = {int(job['width'])}")
    if job.get("height"):
        lines.append(f"r.resolution_y = {int(job['height'])}")
    if job.get("percentage"):
        lines.append(f"r.resolution_percentage = {int(job['percentage'])}")
    if threads:
        lines += ["r.threads_mode = 'FIXED'", f"r.threads = {int(threads)}"]
    lines += [
        "if r.engine == 'CYCLES':",
        "    import _cycles",
        "    s.cycles.device = 'CPU'",
        "    s.cycles.use_denoising = s.cycles.use_denoising and _cycles.with_openimagedenoise",
    ]
    if job.get("samples"):
        lines += [
            f"    s.cycles.samples = {int(job['samples'])}",
            "elif r.engine.startswith('BLENDER_EEVEE'):",
            f"    s.eevee.taa_render_samples = {int(job['samples'])}",
        ]
    return "\n".join(lines)


def _whole(value: Any, what: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRequest(f"{what} must be a whole number, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"{what} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise InvalidRequest(f"{what} {number} is out of range ({low}-{high})")
    return number


BLENDER = BlenderRenderer()
