"""``qfarm run render`` and ``qfarm submit render``: frame ranges of a Blender or POV-Ray
scene, rendered in segments across the service nodes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from qfarm.cli.app import JobCommandLine, single_command_app
from qfarm.cli.common import err, fail_usage, out, print_json
from qfarm.cli.embedded import run_request
from qfarm.cli.options import (
    Connection,
    DataDirOpt,
    DbOpt,
    FramesOpt,
    JobOptions,
    JsonOpt,
    NodesOpt,
    OptionSet,
    QuietOpt,
    Schedule,
    with_option_sets,
)
from qfarm.controller.planning import plan_batch
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun, format_run
from qfarm.domain.model import BatchRequest, JobRequest, parse_priority
from qfarm.jobtypes.render import RENDER, frame_pattern
from qfarm.media import presets
from qfarm.renderers.blender import missing_features

SceneArg = Annotated[
    Path,
    typer.Argument(metavar="SCENE", help="The scene: a .blend, .pov or POV-Ray .ini file."),
]


@dataclasses.dataclass(frozen=True)
class RenderOptions(OptionSet):
    """What to render and how: the options of ``qfarm run render`` and ``submit render``."""

    frames: FramesOpt = None
    segment_size: Annotated[
        int, typer.Option("--segment-size", "-s", help="Frames per segment.")
    ] = 10
    renderer: Annotated[
        str | None,
        typer.Option("--renderer", "-r", help="blender or povray [default: from the extension]."),
    ] = None
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for the frames [default: the scene's name]."),
    ] = None
    frame_name: Annotated[
        str | None,
        typer.Option("--frame-name", help="Frames are NAME_0001.png [default: the scene's name]."),
    ] = None
    width: Annotated[int | None, typer.Option("--width", help="Frame width in pixels.")] = None
    height: Annotated[int | None, typer.Option("--height", help="Frame height in pixels.")] = None
    engine: Annotated[
        str | None, typer.Option("--engine", help="Blender: cycles, eevee or workbench.")
    ] = None
    samples: Annotated[
        int | None,
        typer.Option("--samples", help="Blender: render samples."),
    ] = None
    percentage: Annotated[
        int | None, typer.Option("--percentage", help="Blender: resolution percentage.")
    ] = None
    image_format: Annotated[
        str | None, typer.Option("--format", help="Blender: png (default), jpeg or exr.")
    ] = None
    antialias: Annotated[
        float | None,
        typer.Option("--antialias", help="POV-Ray: antialiasing threshold, e.g. 0.3."),
    ] = None
    animation: Annotated[
        str | None,
        typer.Option(
            "--animation",
            help="POV-Ray .pov: the whole animation's frames, e.g. 1-240 (the clock runs 0-1 "
            "over them); --frames then picks frames of it.",
        ),
    ] = None
    blend_scene: Annotated[
        str | None,
        typer.Option(
            "--scene",
            help="Blender: the scene of the file to render (Blender's -S) [default: the "
            "file's active scene].",
        ),
    ] = None
    allow_missing: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-missing",
            help="Blender: render without a feature the scene uses and nodes may lack, on "
            "every node alike: denoiser, optix or gpu.",
        ),
    ] = None
    movie: Annotated[
        str | None,
        typer.Option(
            "--movie",
            help="Also encode the frames into a movie with this preset, once they are all "
            "rendered: e.g. h264, prores-422.",
        ),
    ] = None
    rate: Annotated[str, typer.Option("--rate", help="The movie's frame rate.")] = "24"

    def renderer_options(self) -> dict[str, Any]:
        """The options of the renderer, by their names in the job's spec (None: not given)."""
        return {
            "engine": self.engine,
            "samples": self.samples,
            "percentage": self.percentage,
            "format": self.image_format,
            "antialias": self.antialias,
            "animation": self.animation,
            "scene_name": self.blend_scene,
            "allow_missing": self.allow_missing or None,
        }


RUN_EPILOG = """
**Examples**

    qfarm run render shot.blend --frames 1-240 --segment-size 10 -o frames/

    qfarm run render orbit.pov --frames 1-120 --width 640 --height 360 --antialias 0.3

    qfarm run render shot.blend --frames 1-48 --engine cycles --samples 32 --percentage 50

    qfarm run render shot.blend --frames 1-240 -o frames/ --movie h264 --rate 24
"""

SUBMIT_EPILOG = """
**Examples**

    qfarm submit render /mnt/shared/shot.blend --frames 1-240 -o /mnt/shared/frames

    qfarm submit render orbit.pov --frames 1-1000 --segment-size 25 --priority high
"""


def render_batch(
    scene: Path,
    render: RenderOptions,
    job: JobOptions,
    *,
    hold: bool = False,
    start_at: float | None = None,
) -> BatchRequest:
    """A batch of one render job, and with ``--movie`` a movie job of its frames that starts
    when the render is done. Raises InvalidRequest."""
    cwd = Path.cwd()
    spec: dict[str, Any] = {
        "scene": str((cwd / scene).resolve()),
        "frames": render.frames,
        "segment_size": render.segment_size,
        "cwd": str(cwd),
    }
    if render.output is not None:
        spec["output"] = str((cwd / render.output).resolve())
    given = {
        "renderer": render.renderer,
        "name": render.frame_name,
        "width": render.width,
        "height": render.height,
        **render.renderer_options(),
    }
    spec.update({k: v for k, v in given.items() if v is not None})
    try:
        level = parse_priority(job.priority)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    # Read the scene here, once: its own frames, output and needs (and a bad job is refused
    # before anything starts).
    spec.update(job.spec_options())
    rendered = RENDER.validate(spec)
    if rendered.get("blend"):
        spec["blend"] = rendered["blend"]  # read here, where Blender is; not again
    retries = job.retries
    jobs = [JobRequest("render", spec, name="render", retries=retries, timeout=job.timeout)]
    if render.movie:
        # The render job's own planning says where its frames land and how they are named.
        pattern = os.path.join(rendered["output"], frame_pattern(rendered))
        preset = presets.for_request(render.movie)
        preset_name = preset if isinstance(preset, str) else preset["name"]
        movie_name = f"{rendered['name']}-{preset_name}{presets.resolve(preset).extension}"
        movie_spec = {
            "input": pattern,
            "frames": ",".join(format_run(FrameRun(*run)) for run in rendered["frames"]),
            "rate": render.rate,
            "preset": preset,
            "output": str(Path(rendered["output"]).parent / movie_name),
            "cwd": str(cwd),
        }
        jobs.append(
            JobRequest("movie", movie_spec, name="movie", retries=retries, depends_on=("render",))
        )
    return BatchRequest(
        jobs=tuple(jobs),
        name=job.name or f"render {scene.name}",
        priority=level,
        hold=hold,
        start_at=start_at,
    )


run_app = single_command_app()
submit_app = single_command_app()


@run_app.command(epilog=RUN_EPILOG)
@with_option_sets
def run_render(
    scene: SceneArg,
    render: RenderOptions,
    job: JobOptions,
    nodes: NodesOpt = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Render frames of a scene on an embedded cluster, and wait.

    The frame list is cut into segments of --segment-size frames that render in parallel;
    each frame lands as NAME_0001.png in the output folder once its segment has written every
    frame it was given.
    """
    try:
        request = render_batch(scene, render, job)
        plan_batch(request)  # the whole batch is refused before a word about the scene
        check_features(request, lambda: [local_fingerprint()], "this machine's")
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if not (quiet or as_json):
        say_what_was_read(request)
    code = run_request(
        request,
        nodes=nodes,
        instances=None,
        data_dir=data_dir,
        db=db,
        as_json=as_json,
        quiet=quiet,
    )
    raise typer.Exit(code)


@submit_app.command(epilog=SUBMIT_EPILOG)
@with_option_sets
def submit_render(
    *,
    scene: SceneArg,
    render: RenderOptions,
    job: JobOptions,
    schedule: Schedule,
    remote: Connection,
    as_json: JsonOpt = False,
) -> None:
    """Submit a render job to a controller and print the new batch's id. The scene and the
    output folder must be on storage the nodes share."""
    try:
        request = render_batch(
            scene, render, job, hold=schedule.hold, start_at=schedule.start_time()
        )
        request = schedule.with_notify(request)
        client = remote.client()
        check_features(request, lambda: farm_fingerprints(client.nodes()), "any online node's")
        handle = client.submit(request)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if as_json:
        print_json({"batch": handle.id})
    else:
        say_what_was_read(request)
        out.print(handle.id)


def check_features(
    request: BatchRequest, fingerprints: Callable[[], list[dict[str, Any]]], whose: str
) -> None:
    """Refuse a render whose scene needs renderer features (the Cycles denoiser, a GPU) that
    no node given has, naming them and the way out, instead of a job that waits forever.
    Nothing is refused where no node has the renderer at all: that wait says so itself."""
    rendered = RENDER.validate(request.jobs[0].spec)
    needs = list(rendered.get("features") or ())
    renderer = rendered["renderer"]
    if not needs:
        return
    having = [f for f in fingerprints() if f.get(renderer)]
    if not having:
        return
    tools = RENDER.required_tools(rendered)
    if any(all(f.get(tool) for tool in tools) for f in having):
        return
    words = missing_features(needs, [])
    raise InvalidRequest(
        f"{Path(rendered['scene']).name} needs {' and '.join(words)}, which "
        f"{whose} {renderer} lacks: render where it is, or pass "
        + " ".join(f"--allow-missing {f}" for f in needs)
        + " to render without it"
    )


def local_fingerprint() -> dict[str, Any]:
    from qfarm import renderers

    return renderers.fingerprint()


def farm_fingerprints(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(n.get("fingerprint") or {}) for n in nodes if n.get("state") == "online"]


def say_what_was_read(request: BatchRequest) -> None:
    """One line on stderr with what qfarm read from the scene file (its animation, its
    frames and output), so a user sees what will be rendered before it is."""
    description = RENDER.validate(request.jobs[0].spec).get("description")
    if description:
        err.print(f"read {description}", highlight=False)


COMMAND_LINE = JobCommandLine(run=run_app, submit=submit_app)
