"""Blender, in background mode: ``blender -b SCENE [-S NAME] -o PATTERN -s START -e END -a``.

The file is the artist's statement of what to render, read once at submit time with Blender's
own Python (:mod:`qfarm.renderers.blendinfo`): without ``--frames`` the scene's frame range and
step, without ``--format`` its output format (and every image setting with it: Blender is given
no ``-F``), without ``-o`` its output path (``//`` relative to the .blend, ``#`` the padding).
``--scene NAME`` picks another scene of the file (Blender's ``-S``).

A scene that needs a feature of the build (Cycles' OpenImageDenoise denoiser, a GPU device)
makes the job need it: the feature is a fingerprint entry of the nodes whose Blender has it
(``blender+denoiser``), so the job's segments go only there. Nothing is turned off silently;
``--allow-missing denoiser`` (or ``gpu``) renders without it, on every node alike, so the
frames of one job never mix denoised and noisy ones.

Options are applied by a short Python expression run before the render (Blender runs its
arguments in order): resolution, percentage, samples, device; the cores by ``-t``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun
from qfarm.renderers.base import RendererMissing, SceneSettings, executable, version_of
from qfarm.renderers.blendinfo import (
    BlendFile,
    BlendScene,
    BlendUnreadable,
    blender_features,
    read_blend,
)

# What users type -> Blender's engine identifier.
ENGINES = {
    "cycles": "CYCLES",
    "eevee": "BLENDER_EEVEE",
    "eevee-next": "BLENDER_EEVEE_NEXT",
    "workbench": "BLENDER_WORKBENCH",
}
FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg"), "exr": ("OPEN_EXR", ".exr")}
# Blender's still-image formats -> the extension it gives their files.
FILE_FORMATS = {
    "PNG": ".png", "JPEG": ".jpg", "OPEN_EXR": ".exr", "OPEN_EXR_MULTILAYER": ".exr",
    "TIFF": ".tif", "BMP": ".bmp", "TARGA": ".tga", "TARGA_RAW": ".tga", "JPEG2000": ".jp2",
    "HDR": ".hdr", "DPX": ".dpx", "CINEON": ".cin", "WEBP": ".webp", "IRIS": ".rgb",
}  # fmt: skip
# Features a scene can need, and the options that render without them.
FEATURES = {
    "denoiser": "Cycles' OpenImageDenoise denoiser",
    "optix": "Cycles' OptiX denoiser (an NVIDIA GPU)",
    "gpu": "a Cycles GPU device",
}


class BlenderRenderer:
    name = "blender"
    extensions: tuple[str, ...] = (".blend",)
    options = frozenset(
        {"engine", "samples", "percentage", "format", "scene_name", "allow_missing", "blend"}
    )
    stages_in_tmp = False

    def version(self) -> str:
        return version_of("blender", "QFARM_BLENDER", r"Blender (\d+\.\d+(?:\.\d+)?)")

    def features(self) -> tuple[str, ...]:
        try:
            return blender_features()
        except BlendUnreadable:
            return ()

    def read_scene(
        self, scene: str, spec: Mapping[str, Any], runs: Sequence[FrameRun] | None
    ) -> SceneSettings:
        blend = _blend_file(scene, spec, runs)
        if blend is None:
            return SceneSettings(job={"allow_missing": _allowed(spec)})
        chosen = _pick_scene(blend, spec.get("scene_name"))
        allowed = _allowed(spec)
        job: dict[str, Any] = {"blend": blend.as_json(), "allow_missing": allowed}
        if spec.get("scene_name"):
            job["scene_name"] = chosen.name
        settings: dict[str, Any] = {}
        if not spec.get("format"):
            settings["extension"] = _file_extension(chosen, scene)
        output = _file_output(chosen.filepath, scene)
        if output is not None:
            settings["output"], settings["frame_prefix"], padding, settings["frame_suffix"] = output
            settings["padding"] = padding
        needs = tuple(f for f in needed_features(chosen) if f not in allowed)
        return SceneSettings(
            frames=_file_frames(chosen),
            job=job,
            features=needs,
            description=_describe(scene, chosen, needs, allowed),
            **settings,
        )

    def check_options(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        engine = spec.get("engine")
        if engine is not None:
            key = str(engine).lower().replace("_", "-").removeprefix("blender-")
            if key not in ENGINES:
                raise InvalidRequest(f"unknown Blender engine {engine!r}: use {', '.join(ENGINES)}")
            engine = ENGINES[key]
        samples = _whole(spec.get("samples"), "samples", 1, 1_000_000)
        percentage = _whole(spec.get("percentage"), "resolution percentage", 1, 1000)
        fmt = spec.get("format")
        if fmt is not None:
            fmt = str(fmt).lower()
            if fmt not in FORMATS:
                raise InvalidRequest(f"unknown output format {fmt!r}: use {', '.join(FORMATS)}")
        return {"engine": engine, "samples": samples, "percentage": percentage, "format": fmt}

    def extension(self, job: Mapping[str, Any]) -> str:
        if job.get("format"):
            return FORMATS[job["format"]][1]
        return str(job.get("extension") or ".png")

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
        if job.get("scene_name"):
            argv += ["-S", str(job["scene_name"])]
        if job.get("engine"):
            argv += ["-E", job["engine"]]
        argv += ["-o", str(staging / "f_######")]
        if job.get("format") or not job.get("blend"):
            # The job's format, or PNG where the file could not be read: otherwise the
            # file's own format and image settings stand.
            argv += ["-F", FORMATS[job.get("format") or "png"][0]]
        argv += ["-x", "1"]
        if threads:
            argv += ["-t", str(int(threads))]
        argv += ["--python-expr", _settings(job)]
        argv += ["-s", str(start), "-e", str(end), "-j", str(step), "-a"]
        return argv, str(Path(scene).parent)

    def staged_name(self, frame: int, job: Mapping[str, Any]) -> str:
        return f"f_{frame:06d}{self.extension(job)}"


def needed_features(scene: BlendScene) -> tuple[str, ...]:
    """The build features a scene's render needs."""
    if scene.engine != "CYCLES":
        return ()
    needs = []
    if scene.denoise:
        needs.append("optix" if scene.denoiser == "OPTIX" else "denoiser")
    if scene.device == "GPU":
        needs.append("gpu")
    return tuple(needs)


def missing_features(needs: Sequence[str], have: Sequence[str]) -> list[str]:
    """People's words for the features in ``needs`` that ``have`` lacks."""
    return [FEATURES.get(f, f) for f in needs if f not in have]


def _blend_file(
    scene: str, spec: Mapping[str, Any], runs: Sequence[FrameRun] | None
) -> BlendFile | None:
    """The file's settings: as the submitting machine read them, else read here. None when
    no Blender is here to read them, which a job with its own --frames can do without."""
    if isinstance(spec.get("blend"), dict):
        try:
            return BlendFile.from_json(scene, spec["blend"])
        except (KeyError, TypeError) as exc:
            raise InvalidRequest(f"the job's reading of {scene} is malformed: {exc}") from None
    try:
        return read_blend(scene)
    except RendererMissing:
        if runs is None:
            raise InvalidRequest(
                f"reading {os.path.basename(scene)}'s frame range needs Blender on this "
                "machine, and there is none: give --frames (and --format, else PNG)"
            ) from None
        return None
    except BlendUnreadable as exc:
        raise InvalidRequest(f"Blender cannot read {os.path.basename(scene)}: {exc}") from None


def _pick_scene(blend: BlendFile, name: object) -> BlendScene:
    wanted = str(name) if name else blend.active
    if wanted not in blend.scenes:
        known = ", ".join(sorted(blend.scenes))
        raise InvalidRequest(
            f"{os.path.basename(blend.path)} has no scene {wanted!r}: it has {known}"
        )
    return blend.scenes[wanted]


def _allowed(spec: Mapping[str, Any]) -> list[str]:
    raw = spec.get("allow_missing") or []
    items = [raw] if isinstance(raw, str) else list(raw)
    allowed = []
    for item in items:
        for word in str(item).split(","):
            word = word.strip().lower()
            if word not in FEATURES:
                raise InvalidRequest(f"--allow-missing takes {', '.join(FEATURES)}, not {word!r}")
            allowed.append(word)
    return sorted(set(allowed))


def _file_frames(scene: BlendScene) -> str:
    if scene.frame_end < scene.frame_start:
        raise InvalidRequest(
            f"scene {scene.name!r} ends (frame {scene.frame_end}) before it starts "
            f"(frame {scene.frame_start})"
        )
    step = f"x{scene.frame_step}" if scene.frame_step > 1 else ""
    return f"{scene.frame_start}-{scene.frame_end}{step}"


def _file_extension(scene: BlendScene, path: str) -> str:
    extension = FILE_FORMATS.get(scene.file_format)
    if extension is None:
        raise InvalidRequest(
            f"scene {scene.name!r} of {os.path.basename(path)} renders to {scene.file_format}, "
            "not to frames: give --format png (and --movie PRESET for a movie of them)"
        )
    return extension


def _file_output(filepath: str, blend: str) -> tuple[str, str, int, str] | None:
    """Where Blender writes the scene's frames: (folder, name before the number, digits,
    text after it), from its output path. None when the path is empty or Blender's
    default temporary folder, which is no place for a farm's frames."""
    if not filepath or filepath.startswith(("/tmp", "\\tmp")):
        return None
    if filepath.startswith("//"):
        path = os.path.join(os.path.dirname(blend), filepath[2:])
    else:
        path = os.path.join(os.path.dirname(blend), os.path.expanduser(filepath))
    folder, base = os.path.split(os.path.normpath(path) + ("/" if path.endswith("/") else ""))
    if "#" not in base:
        return folder, base, 4, ""  # Blender adds four digits to a name without #
    first = base.index("#")
    last = first
    while last < len(base) and base[last] == "#":
        last += 1
    return folder, base[:first], last - first, base[last:]


def _describe(path: str, scene: BlendScene, needs: Sequence[str], allowed: Sequence[str]) -> str:
    parts = [
        f"{os.path.basename(path)} scene {scene.name!r}: frames {_file_frames(scene)}",
        f"{scene.file_format} to {scene.filepath or '(no path)'}",
        f"{scene.engine.lower()} {scene.width}x{scene.height} at {scene.percentage} %",
    ]
    if needs:
        parts.append("needs " + " and ".join(FEATURES[f] for f in needs))
    if allowed:
        parts.append("rendered without " + " and ".join(FEATURES[f] for f in allowed))
    return ", ".join(parts)


def _settings(job: Mapping[str, Any]) -> str:
    """The Python run before the render: only numbers and names validated above go in."""
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
    allowed = set(job.get("allow_missing") or ())
    needs = set(job.get("features") or ())
    lines.append("if r.engine == 'CYCLES':")
    if "gpu" in needs:
        lines += [
            "    p = bpy.context.preferences.addons['cycles'].preferences",
            "    for kind in ('OPTIX', 'CUDA', 'HIP', 'METAL', 'ONEAPI'):",
            "        try:",
            "            p.compute_device_type = kind",
            "        except TypeError:",
            "            continue",
            "        if [d for d in p.get_devices_for_type(kind) if d.type != 'CPU']:",
            "            break",
            "    for d in p.devices:",
            "        d.use = True",
            "    s.cycles.device = 'GPU'",
        ]
    else:
        lines.append("    s.cycles.device = 'CPU'")
    if allowed & {"denoiser", "optix"}:
        lines.append("    s.cycles.use_denoising = False")
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
