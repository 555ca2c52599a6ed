"""POV-Ray 3.7: animation frames through Initial_Frame/Final_Frame (the job's whole frame
range, so the scene's ``clock`` runs over the whole animation) and Subset_Start_Frame/
Subset_End_Frame (the segment's frames).

POV-Ray's I/O security (Debian's default is ``restricted``) lets it write only in its working
directory and /tmp, and read the scene's own folder when it runs there. So it runs in the
scene's folder and renders into a staging folder under the temporary directory; qfarm moves
the frames to the output folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm.errors import InvalidRequest
from qfarm.renderers.base import executable, version_of


class PovrayRenderer:
    name = "povray"
    extensions: tuple[str, ...] = (".pov",)
    options = frozenset({"antialias"})
    stages_in_tmp = True

    def version(self) -> str:
        return version_of("povray", "QFARM_POVRAY", r"POV-Ray (\d+\.\d+(?:\.\d+)*)")

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
        return {"antialias": antialias, "format": "png"}

    def extension(self, job: Mapping[str, Any]) -> str:
        return ".png"

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
        first, last = job["first_frame"], job["last_frame"]
        argv = [
            executable("povray", "QFARM_POVRAY"), f"+I{scene}", f"+O{staging / 'f.png'}",
            "+FN", f"+KFI{first}", f"+KFF{last}", f"+SF{start}", f"+EF{end}", "-D", "-V", "-P",
        ]  # fmt: skip
        if step != 1:
            raise ValueError("POV-Ray renders whole subsets: call it once per frame for steps")
        if job.get("width"):
            argv.append(f"+W{int(job['width'])}")
        if job.get("height"):
            argv.append(f"+H{int(job['height'])}")
        if job.get("antialias"):
            argv.append(f"+A{float(job['antialias'])}")
        if threads:
            argv.append(f"+WT{int(threads)}")
        return argv, str(Path(scene).parent)

    def staged_name(self, frame: int, job: Mapping[str, Any]) -> str:
        # POV-Ray pads the frame number to the digits of Final_Frame.
        digits = len(str(job["last_frame"]))
        return f"f{frame:0{digits}d}.png"


POVRAY = PovrayRenderer()
