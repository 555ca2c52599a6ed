"""The ``render`` job type: frame ranges of a 3-D scene rendered by Blender or POV-Ray.

A job renders a frame list of one scene; segments are runs of ``segment_size`` frames, as for
command jobs. Each segment's renderer writes into a staging folder; when it exits, every frame
of the segment must be there and not empty, or the segment fails (and is retried, on another
node where there is one). The frames are then moved to their final names,
``NAME_0001.png`` (padded to at least four digits), so no half-written frame sits at a final
path. Progress is the share of the segment's frames already written.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm import renderers
from qfarm.errors import InvalidRequest
from qfarm.frames import FrameRun, chunk_runs, format_run, parse_frames
from qfarm.jobtypes.base import (
    SegmentContext,
    SegmentOutcome,
    describe_process_failure,
    job_path,
    refuse_unknown,
    segment_size,
)
from qfarm.media.progress import reporting_progress
from qfarm.model import SegmentPlan
from qfarm.renderers.base import RendererMissing

MAX_SIZE = 16384


class RenderJobType:
    name = "render"
    service = "render"

    common = frozenset(
        {"scene", "renderer", "frames", "segment_size", "width", "height", "output", "name",
         "cwd", "storage"}
    )  # fmt: skip

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        return (str(spec["renderer"]),)

    # ------------------------------------------------------------ controller side

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        cwd = os.path.abspath(str(spec.get("cwd") or os.getcwd()))
        raw_scene = spec.get("scene")
        if not isinstance(raw_scene, str) or not raw_scene:
            raise InvalidRequest("a render job needs a scene file")
        scene = job_path(cwd, raw_scene)
        if not os.path.isfile(scene):
            raise InvalidRequest(f"scene {scene} does not exist")
        raw_renderer = spec.get("renderer")
        renderer = renderers.get(str(raw_renderer)) if raw_renderer else renderers.for_scene(scene)
        allowed = self.common | renderer.options
        refuse_unknown(spec, allowed, f"{renderer.name} render job")
        frames = spec.get("frames")
        if not frames:
            raise InvalidRequest("a render job needs --frames, e.g. 1-240")
        runs = parse_frames(str(frames))
        size = segment_size(spec, default=10)
        dims = {}
        for key in ("width", "height"):
            value = spec.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
                raise InvalidRequest(f"{key} must be a whole number from 1 to {MAX_SIZE}")
            dims[key] = value
        name = str(spec.get("name") or Path(scene).stem)
        if not name or os.sep in name:
            raise InvalidRequest(f"frame name {name!r} must be a plain file name")
        output = os.path.normpath(
            os.path.join(cwd, os.path.expanduser(str(spec.get("output") or Path(scene).stem)))
        )
        all_frames = [f for run in runs for f in (run.start, run.end)]
        last = max(all_frames)
        options = renderer.check_options(spec)
        job = {
            "scene": scene,
            "renderer": renderer.name,
            "frames": [[r.start, r.end, r.step] for r in runs],
            "segment_size": size,
            "output": output,
            "name": name,
            "padding": max(4, len(str(last))),
            "first_frame": min(all_frames),
            "last_frame": last,
            "cwd": cwd,
            "storage": spec.get("storage"),
            **dims,
            **options,
        }
        job["extension"] = renderer.extension(job)
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
            # POV-Ray renders whole subsets: with a step, each frame is a run of its own.
            calls = [(start, end, step)]
            if step != 1 and renderer.name == "povray":
                calls = [(f, f, 1) for f in frames]
            paths = list(staged.values())

            def written() -> float:
                return sum(1 for path in paths if path.exists()) / len(paths)

            with reporting_progress(written, ctx.on_progress):
                for first, last, by in calls:
                    try:
                        argv, cwd = renderer.argv(
                            job["scene"], first, last, by, staging, job, ctx.threads
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


def frame_path(job: Mapping[str, Any], frame: int) -> str:
    """Where frame ``frame`` of a render job ends up: OUTPUT/NAME_0001.png."""
    return os.path.join(
        job["output"], f"{job['name']}_{frame:0{job['padding']}d}{job['extension']}"
    )


def place(staged: Path, final: Path) -> None:
    """Move a finished file to its final name in one step, across file systems too (there it
    is copied beside the final name first)."""
    try:
        os.replace(staged, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temp = final.with_name(f".qfarm-part-{final.name}")
        shutil.copyfile(staged, temp)
        os.replace(temp, final)


RENDER = RenderJobType()
