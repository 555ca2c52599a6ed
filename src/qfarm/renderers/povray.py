"""POV-Ray 3.7: a ``.pov`` scene, or an ``.ini`` file that drives one (how POV-Ray animations
are usually set up, every shipped example included).

The animation (Initial/Final_Frame, Initial/Final_Clock, Cyclic_Animation) is the scene's,
never the job's: ``--frames`` picks frames of it, and each segment renders its frames as
Subset_Start/End_Frame (with Frame_Step) of that same animation, so ``clock`` in every frame
is the clock of the same frame in a full, direct render.

* An ``.ini`` file sets the animation itself, or a section of one (``anim.ini[Low]``: the
  lines before its first label, then section ``[Low]``'s). It is handed to POV-Ray as it is
  (``anim.ini[Low]`` again for a section), and qfarm adds
  only what it must on the command line, after it (POV-Ray lets later options win): the
  subset, the staging output name, no display and no pause, and the options the job gives
  (``--width``, ``--height``, ``--antialias``, the cores). Everything else in the file
  (declares, library paths, antialiasing, bit depth) reaches POV-Ray unchanged.
* A ``.pov`` file has no animation of its own: ``--animation FIRST-LAST`` gives it (POV-Ray's
  +KFI/+KFF, the clock 0 to 1 over it). Without it, ``--frames`` must be a plain range from
  frame 1 (``1-120``), which is then taken as the whole animation, as a first full render of
  a shot is. A pick-up (``10-12``), a stepped preview (``1-240x10``) or a frame list are
  frames of a longer animation that only the user knows, so they need ``--animation``: taking
  their span as the animation would silently give every frame another clock.

POV-Ray's I/O security (Debian's default is ``restricted``) lets it write only in its working
directory and /tmp, and read the scene's own folder when it runs there. So it runs in the
scene's folder and renders into a staging folder under the temporary directory; qfarm moves
the frames to the output folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun, parse_frames
from qfarm.renderers.base import SceneSettings, executable, version_of
from qfarm.renderers.povray_ini import (
    EXTENSIONS,
    PovAnimation,
    PovIni,
    animation_of,
    read_ini,
    split_section,
)


class PovrayRenderer:
    name = "povray"
    extensions: tuple[str, ...] = (".pov", ".ini")
    options = frozenset({"antialias", "animation"})
    stages_in_tmp = True

    def version(self) -> str:
        return version_of("povray", "QFARM_POVRAY", r"POV-Ray (\d+\.\d+(?:\.\d+)*)")

    def features(self) -> tuple[str, ...]:
        return ()

    def check_options(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        antialias = spec.get("antialias")
        if antialias is not None:
            try:
                antialias = float(antialias)
            except (TypeError, ValueError):
                raise InvalidRequest(
                    f"antialias must be a threshold like 0.3, not {antialias!r}"
                ) from None
            if not 0 < antialias <= 3:
                raise InvalidRequest(f"antialias threshold {antialias} is out of range (0-3]")
        return {"antialias": antialias}

    def read_scene(
        self, scene: str, spec: Mapping[str, Any], runs: Sequence[FrameRun] | None
    ) -> SceneSettings:
        path, section = split_section(scene)
        if path.lower().endswith(".ini"):
            if spec.get("animation"):
                raise InvalidRequest(
                    f"{os.path.basename(scene)} sets its own animation: leave out --animation"
                )
            return _ini_settings(path, section)
        return _pov_settings(scene, spec.get("animation"), runs)

    def extension(self, job: Mapping[str, Any]) -> str:
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
        animation = PovAnimation(**job["animation"])
        output = staging / f"f{self.extension(job)}"
        if job.get("ini"):
            argv = [executable("povray", "QFARM_POVRAY"), job["ini"], f"+O{output}"]
            argv.append(f"+F{job.get('output_type') or 'N'}")
        else:
            argv = [executable("povray", "QFARM_POVRAY"), f"+I{scene}", f"+O{output}", "+FN"]
            argv += [f"+KFI{animation.initial_frame}", f"+KFF{animation.final_frame}"]
        if animation.animated:
            argv += [f"+SF{start}", f"+EF{end}", f"+STP{step}"]
        argv += ["-D", "-V", "-P"]
        if job.get("width"):
            argv.append(f"+W{int(job['width'])}")
        if job.get("height"):
            argv.append(f"+H{int(job['height'])}")
        if job.get("antialias"):
            argv.append(f"+A{float(job['antialias'])}")
        if threads:
            argv.append(f"+WT{int(threads)}")
        return argv, str(Path(split_section(scene)[0]).parent)

    def staged_name(self, frame: int, job: Mapping[str, Any]) -> str:
        animation = PovAnimation(**job["animation"])
        if not animation.animated:
            return f"f{self.extension(job)}"  # a still: POV-Ray adds no frame number
        # POV-Ray pads the frame number to the digits of Final_Frame.
        return f"f{frame:0{animation.digits}d}{self.extension(job)}"


def _pov_settings(scene: str, given: object, runs: Sequence[FrameRun] | None) -> SceneSettings:
    """A .pov file's animation: --animation's, or a plain run of --frames from frame 1."""
    if given:
        animation = _parse_animation(str(given))
    elif runs is None:
        return SceneSettings(
            no_frames=f"{os.path.basename(scene)} has no animation of its own: give --frames "
            "(e.g. 1-120) or --animation FIRST-LAST"
        )
    elif len(runs) == 1 and runs[0].start == 1 and runs[0].step == 1:
        animation = PovAnimation(initial_frame=1, final_frame=runs[0].end)
    else:
        raise InvalidRequest(
            f"which animation are these frames of? {os.path.basename(scene)} has none of its "
            "own: give --animation FIRST-LAST (the frames of the full render, e.g. "
            "--animation 1-240), so each frame gets the clock it has there"
        )
    frames = f"{animation.initial_frame}-{animation.final_frame}"
    return SceneSettings(
        frames=frames,
        bounds=(animation.initial_frame, animation.final_frame),
        job={"animation": asdict(animation)},
        description=f"{os.path.basename(scene)}: {animation.describe()}",
    )


def _parse_animation(text: str) -> PovAnimation:
    runs = parse_frames(text)
    if len(runs) != 1 or runs[0].step != 1:
        raise InvalidRequest(f"--animation is FIRST-LAST, e.g. 1-240, not {text!r}")
    return PovAnimation(initial_frame=runs[0].start, final_frame=runs[0].end)


def _ini_settings(path: str, section: str | None) -> SceneSettings:
    """An INI file's (or one section's) scene, animation and output, checked, for planning
    and naming."""
    ini = read_ini(path, section)
    folder = os.path.dirname(path)
    input_name = ini.get("input_file_name")
    if not input_name:
        raise InvalidRequest(f"{ini.where()} names no scene (Input_File_Name=...)")
    scene = os.path.normpath(os.path.join(folder, input_name))
    if not os.path.isfile(scene):
        raise InvalidRequest(f"{ini.where()} renders {input_name}, which does not exist")
    animation = animation_of(ini)
    output_type = ini.get("output_file_type")
    extension = EXTENSIONS.get((output_type or "n")[:1].lower())
    if extension is None:
        raise InvalidRequest(f"{ini.where()}: unknown Output_File_Type {output_type!r}")
    # POV-Ray reads the section itself from the same argument: anim.ini[Low].
    ini_argument = f"{path}[{section}]" if section else path
    job: dict[str, Any] = {
        "ini": ini_argument, "animation": asdict(animation), "extension": extension,
    }  # fmt: skip
    if output_type:
        job["output_type"] = output_type
    output, prefix = _ini_output(ini, folder, Path(scene).stem)
    return SceneSettings(
        frames=animation.default_frames() if animation.animated else "1",
        bounds=(animation.initial_frame, animation.final_frame),
        output=output,
        frame_prefix=prefix,
        padding=animation.digits if prefix is not None else None,
        extension=extension,
        job=job,
        description=_describe_ini(ini, input_name, animation),
    )


def _ini_output(ini: PovIni, folder: str, scene_stem: str) -> tuple[str | None, str | None]:
    """Where a direct render of the INI file writes its frames, and their name before the
    number: Output_File_Name is a folder (ending in /) or a path and name."""
    name = ini.get("output_file_name")
    if not name:
        return None, None
    path = os.path.normpath(os.path.join(folder, name))
    if name.endswith(("/", os.sep)) or os.path.isdir(path):
        return path, scene_stem
    return os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]


def _describe_ini(ini: PovIni, input_name: str, animation: PovAnimation) -> str:
    parts = [f"{ini.where()}: {input_name}", animation.describe()]
    width, height = ini.get("width"), ini.get("height")
    if width or height:
        parts.append(f"{width or '?'}x{height or '?'}")
    if ini.flag("antialias") or ini.get("antialias_threshold"):
        parts.append(f"antialias {ini.get('antialias_threshold') or 'on'}")
    if ini.declares:
        parts.append("declares " + " ".join(ini.declares))
    if ini.library_paths:
        parts.append("library paths " + " ".join(ini.library_paths))
    if ini.get("output_file_name") or ini.get("output_file_type"):
        parts.append(
            f"output {ini.get('output_file_name') or '(scene name)'}"
            f" ({ini.get('output_file_type') or 'N'})"
        )
    return ", ".join(parts)


POVRAY = PovrayRenderer()
