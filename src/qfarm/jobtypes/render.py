"""The ``render`` job type: frame ranges of a 3-D scene rendered by Blender or POV-Ray.

A job renders a frame list of one scene; segments are runs of ``segment_size`` frames, as for
command jobs. Each segment's renderer writes into a staging folder; when it exits, every frame
of the segment must be there and not empty, or the segment fails (and is retried, on another
node where there is one). The frames are then moved to their final names,
``NAME_0001.png`` (padded to at least four digits), so no half-written frame sits at a final
path. Progress is the share of the segment's frames already written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm import renderers
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun, chunk_runs, format_run, parse_frames
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes.base import (
    SegmentContext,
    SegmentOutcome,
    describe_process_failure,
    job_path,
    refuse_unknown,
    segment_size,
)
from qfarm.jobtypes.frames import frame_path
from qfarm.jobtypes.frames import frame_pattern as frame_pattern  # for qfarm render --movie
from qfarm.jobtypes.outputs import place
from qfarm.media.progress import reporting_progress
from qfarm.renderers.base import RendererMissing

MAX_SIZE = 16384


class RenderJobType:
    name = "render"
    service = "render"
    keeps_sessions = False
    maps_paths = False
    stall_timeout: float | None = 600.0  # a frame of a heavy scene writes nothing for minutes

    common = frozenset(
        {"scene", "renderer", "frames", "segment_size", "width", "height", "output", "name",
         "cwd"}
    )  # fmt: skip

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        """The renderer, and each renderer feature the scene needs as its own fingerprint
        entry (``blender+denoiser``), so only nodes whose build has it get the segments."""
        renderer = str(spec["renderer"])
        return (renderer, *(feature_tool(renderer, f) for f in spec.get("features") or ()))

    def describe(self, spec: Mapping[str, Any]) -> list[str]:
        """What people should know of a planned render (``qfarm show``, the run summary):
        what was read from the scene, which frames, and where they land."""
        runs = [FrameRun(*r) for r in spec.get("frames") or ()]
        lines = [str(spec["description"])] if spec.get("description") else []
        frames = ",".join(format_run(r) for r in runs)
        lines.append(
            f"{spec['renderer']}: frames {frames}, {spec['segment_size']} a segment, "
            f"into {spec['output']}"
        )
        needs = list(spec.get("features") or ())
        if needs:
            lines.append("needs nodes whose renderer has: " + ", ".join(needs))
        return lines

    # ------------------------------------------------------------ controller side

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        cwd = os.path.abspath(str(spec.get("cwd") or os.getcwd()))
        raw_scene = spec.get("scene")
        if not isinstance(raw_scene, str) or not raw_scene:
            raise InvalidRequest("a render job needs a scene file")
        scene = job_path(cwd, raw_scene)
        scene_file = renderers.scene_file(scene)  # anim.ini of anim.ini[Section]
        if not os.path.isfile(scene_file):
            raise InvalidRequest(f"scene {scene_file} does not exist")
        raw_renderer = spec.get("renderer")
        renderer = (
            renderers.get(str(raw_renderer)) if raw_renderer else renderers.for_scene(scene_file)
        )
        allowed = self.common | renderer.options
        refuse_unknown(spec, allowed, f"{renderer.name} render job")
        options = renderer.check_options(spec)
        given = spec.get("frames")
        runs = parse_frames(str(given)) if given else None
        scene_settings = renderer.read_scene(scene, spec, runs)
        if runs is None:
            if not scene_settings.frames:
                raise InvalidRequest(scene_settings.no_frames)
            runs = parse_frames(scene_settings.frames)
        _check_bounds(runs, scene_settings.bounds, Path(scene).name)
        size = segment_size(spec, default=10)
        dims = {}
        for key in ("width", "height"):
            value = spec.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
                raise InvalidRequest(f"{key} must be a whole number from 1 to {MAX_SIZE}")
            dims[key] = value
        raw_name = spec.get("name")
        name = str(raw_name or Path(scene_file).stem)
        if not name or os.sep in name:
            raise InvalidRequest(f"frame name {name!r} must be a plain file name")
        raw_output = spec.get("output") or scene_settings.output or Path(scene_file).stem
        output = os.path.normpath(os.path.join(cwd, os.path.expanduser(str(raw_output))))
        # The scene's own naming holds where its own output folder does.
        own_names = not spec.get("output") and not raw_name and scene_settings.output
        last = max(run.end for run in runs)
        job = {
            "scene": scene,
            "renderer": renderer.name,
            "frames": [[r.start, r.end, r.step] for r in runs],
            "segment_size": size,
            "output": output,
            "name": name,
            "padding": max(4, len(str(last))),
            "cwd": cwd,
            **dims,
            **options,
            **scene_settings.job,
        }
        if own_names and scene_settings.frame_prefix is not None:
            job["frame_prefix"] = scene_settings.frame_prefix
            job["frame_suffix"] = scene_settings.frame_suffix
            job["padding"] = scene_settings.padding or job["padding"]
        if scene_settings.features:
            job["features"] = list(scene_settings.features)
        if scene_settings.description:
            job["description"] = scene_settings.description
        job["extension"] = scene_settings.extension or renderer.extension(job)
        return job

    def plan(self, spec: Mapping[str, Any]) -> list[SegmentPlan]:
        runs = [FrameRun(*r) for r in spec["frames"]]
        plans = []
        for index, chunk in enumerate(chunk_runs(runs, spec["segment_size"]), start=1):
            outputs = tuple(frame_path(spec, f) for f in chunk.frames)
            plans.append(
                SegmentPlan(
                    index=index,
                    spec={"segment": index, "start": chunk.start, "end": chunk.end,
                          "step": chunk.step},
                    label=f"frames {format_run(chunk)}",
                    frames=len(chunk),
                    outputs=outputs,
                )
            )  # fmt: skip
        return plans

    # ------------------------------------------------------------------ node side

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        renderer = renderers.get(job["renderer"])
        start, end, step = int(segment["start"]), int(segment["end"]), int(segment["step"])
        frames = list(range(start, end + 1, step))
        output = Path(job["output"])
        output.mkdir(parents=True, exist_ok=True)
        if renderer.stages_in_tmp:
            staging = Path(tempfile.mkdtemp(prefix=f"qfarm-{ctx.key}-"))
        else:
            staging = output / f".qfarm-{ctx.key}"
            staging.mkdir(parents=True, exist_ok=True)
        staged = {f: staging / renderer.staged_name(f, job) for f in frames}
        try:
            paths = list(staged.values())

            def written() -> float:
                return sum(1 for path in paths if path.exists()) / len(paths)

            with reporting_progress(written, ctx.on_progress):
                try:
                    argv, cwd = renderer.argv(
                        job["scene"], start, end, step, staging, job, ctx.threads
                    )
                except RendererMissing as exc:
                    return SegmentOutcome(ok=False, error=str(exc))
                result = ctx.run(argv, cwd=cwd)
                if not result.succeeded():
                    return describe_process_failure(result, renderer.name)
            for frame, path in staged.items():
                if not path.is_file() or path.stat().st_size == 0:
                    what = "is empty" if path.is_file() else "was not written"
                    return SegmentOutcome(
                        ok=False,
                        exit_code=0,
                        error=f"{renderer.name} exited 0 but frame {frame} {what}",
                    )
            for frame, path in staged.items():
                place(path, Path(frame_path(job, frame)))
            return SegmentOutcome(ok=True, exit_code=0)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def feature_tool(renderer: str, feature: str) -> str:
    """The fingerprint entry of a renderer feature: ``blender+denoiser``."""
    return f"{renderer}+{feature}"


def _check_bounds(runs: list[FrameRun], bounds: tuple[int, int] | None, scene: str) -> None:
    """Frames must be frames of the scene's animation: POV-Ray renders no subset outside."""
    if bounds is None:
        return
    low, high = bounds
    for run in runs:
        if run.start < low or run.end > high:
            outside = run.start if run.start < low else run.end
            raise InvalidRequest(
                f"frame {outside} is not a frame of {scene}'s animation ({low}-{high})"
            )


RENDER = RenderJobType()
