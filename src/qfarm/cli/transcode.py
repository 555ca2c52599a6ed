"""``qfarm run transcode``, ``qfarm submit transcode`` and ``qfarm presets``.

One job per (source, preset). Presets are resolved here, on the client: a user preset from a
file travels in the job as its full definition, so neither the controller nor the nodes
need the file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qfarm.cli.cluster import ControllerOpt, TokenOpt, connect, parse_start_at
from qfarm.cli.main import (
    DataDirOpt,
    DbOpt,
    FreshOpt,
    HoldOpt,
    JsonOpt,
    NameOpt,
    NodesOpt,
    PriorityOpt,
    QuietOpt,
    RetriesOpt,
    StartAtOpt,
    TimeoutOpt,
    app,
    err,
    fail_usage,
    invoke_single,
    out,
    print_json,
    run_request,
    single_command_app,
)
from qfarm.client import Client
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, JobRequest, parse_priority
from qfarm.media import presets as presets_mod
from qfarm.media import sources as sources_mod
from qfarm.media.sources import Expansion

InputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Source files, globs like 'clips/*.mov', folders, or image sequences: "
        "'shot_%04d.png', 'shot_####.exr', a folder or glob of frames (one movie at --rate).",
        show_default=False,
        metavar="INPUT",
    ),
]
PresetOpt = Annotated[
    list[str] | None,
    typer.Option("--preset", "-p", help="A preset name (qfarm presets). Repeatable.",
                 show_default=False),
]  # fmt: skip
OutputDirOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Folder for the outputs [default: here]. Each is "
                 "named SOURCE-PRESET.EXT."),
]  # fmt: skip
SegmentSecondsOpt = Annotated[
    float | None,
    typer.Option("--segment-seconds", help="Seconds of video per segment [default: from the "
                 "source's length and the free instances; short sources are not split]."),
]  # fmt: skip
PresetFileOpt = Annotated[
    list[Path] | None,
    typer.Option("--presets", help="A TOML file of presets of your own. Repeatable."),
]
RateOpt = Annotated[
    str | None,
    typer.Option("--rate", help="Frames per second of image sequence sources (24, 25, "
                 "30000/1001) [default: 24]. Movies keep their own.", show_default=False),
]  # fmt: skip
VerifyOpt = Annotated[
    str,
    typer.Option("--verify", help="Check outputs: seams (decode around every seam), full "
                 "(decode everything), or none."),
]  # fmt: skip

RUN_EPILOG = """
**Examples**

    qfarm run transcode interview.mov --preset h264-720p -o web/

    qfarm run transcode 'rushes/*.mxf' -p prores-422 -p h264-480p -o dailies/

    qfarm run transcode long.mov -p hevc --segment-seconds 30 --nodes 4
"""

SUBMIT_EPILOG = """
**Examples**

    qfarm submit transcode /mnt/shared/ep101.mov -p h264-1080p -p aac -o /mnt/shared/out

    qfarm submit transcode 'day2/*.mov' -p prores-422 --priority high --hold
"""


def expand_inputs(patterns: list[str], cwd: Path, rate: str | None = None) -> Expansion:
    """The sources that names, globs, folders and sequence patterns give, in order, each
    once (see :mod:`qfarm.media.sources`)."""
    return sources_mod.expand(patterns, cwd, sources_mod.parse_rate(rate))


def transcode_batch(
    *,
    inputs: list[str],
    presets: list[str],
    output: Path | None,
    segment_seconds: float | None,
    preset_files: list[Path] | None,
    verify: str,
    name: str,
    priority: str,
    retries: int,
    timeout: float | None,
    hold: bool = False,
    start_at: float | None = None,
    rate: str | None = None,
) -> BatchRequest:
    """A batch of one transcode job per (source, preset). Raises InvalidRequest."""
    if not inputs:
        raise InvalidRequest("no source files given")
    if not presets:
        raise InvalidRequest("no --preset given (qfarm presets lists them)")
    cwd = Path.cwd()
    chosen = [presets_mod.for_request(p, preset_files or []) for p in presets]
    expansion = expand_inputs(inputs, cwd, rate)
    if expansion.skipped:
        err.print(f"skipped {len(expansion.skipped)} files that are not media: "
                  + ", ".join(expansion.skipped))  # fmt: skip
    try:
        level = parse_priority(priority)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    out_dir = str((output or cwd).resolve())
    jobs: list[JobRequest] = []
    names: set[str] = set()
    for source in expansion.sources:
        for preset in chosen:
            preset_name = preset if isinstance(preset, str) else preset["name"]
            job_name = f"{source.stem} {preset_name}"
            if job_name in names:
                job_name = f"{job_name} ({len(jobs) + 1})"
            names.add(job_name)
            spec: dict[str, Any] = {
                "input": source.path,
                "preset": preset,
                "output_dir": out_dir,
                "cwd": str(cwd),
                "segment_seconds": segment_seconds,
                "verify": verify,
            }
            if source.is_sequence:
                spec["rate"] = str(source.rate)
            jobs.append(
                JobRequest(
                    job_type="transcode", spec=spec, name=job_name, retries=retries,
                    timeout=timeout,
                )
            )  # fmt: skip
    label = name or (jobs[0].name if len(jobs) == 1 else f"transcode {len(jobs)} jobs")
    return BatchRequest(jobs=tuple(jobs), name=label, priority=level, hold=hold, start_at=start_at)


run_app = single_command_app()
submit_app = single_command_app()


@run_app.command(epilog=RUN_EPILOG)
def run_transcode(
    inputs: InputsArg,
    preset: PresetOpt = None,
    output: OutputDirOpt = None,
    segment_seconds: SegmentSecondsOpt = None,
    preset_files: PresetFileOpt = None,
    verify: VerifyOpt = "seams",
    rate: RateOpt = None,
    name: NameOpt = "",
    priority: PriorityOpt = "medium",
    retries: RetriesOpt = 2,
    timeout: TimeoutOpt = None,
    nodes: NodesOpt = None,
    instances: Annotated[
        int | None, typer.Option("--instances", help="Transcode instances per node [default: 1].")
    ] = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fresh: FreshOpt = False,
) -> None:
    """Transcode sources with presets on an embedded cluster, and wait.

    Each (source, preset) is one job. Its video is cut into segments that encode in
    parallel; the audio is encoded once; the chunks are joined by stream copy and the output
    is checked against the source (frame count, duration, audio, decoding) before it takes
    its final name.
    """
    try:
        request = transcode_batch(
            inputs=inputs, presets=preset or [], output=output, segment_seconds=segment_seconds,
            preset_files=preset_files, verify=verify, name=name, priority=priority,
            retries=retries, timeout=timeout, rate=rate,
        )  # fmt: skip
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    raise typer.Exit(
        run_request(
            request, nodes=nodes, instances=instances, data_dir=data_dir, db=db,
            as_json=as_json, quiet=quiet, fresh=fresh,
        )
    )  # fmt: skip


@submit_app.command(epilog=SUBMIT_EPILOG)
def submit_transcode(
    inputs: InputsArg,
    preset: PresetOpt = None,
    output: OutputDirOpt = None,
    segment_seconds: SegmentSecondsOpt = None,
    preset_files: PresetFileOpt = None,
    verify: VerifyOpt = "seams",
    rate: RateOpt = None,
    name: NameOpt = "",
    priority: PriorityOpt = "medium",
    retries: RetriesOpt = 2,
    timeout: TimeoutOpt = None,
    hold: HoldOpt = False,
    start_at: StartAtOpt = None,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload",
            help="Send the sources to the controller, for nodes without shared storage; get "
            "the outputs with qfarm fetch.",
        ),
    ] = False,
    controller: ControllerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit transcode jobs to a controller and print the new batch's id.

    Sources and output folder must be on storage the nodes share (see --path-map on
    qfarm node), or sent with --upload.
    """
    try:
        if upload and output is not None:
            raise InvalidRequest("--upload keeps outputs on the controller: fetch them with "
                                 "qfarm fetch -o DIR instead of giving --output")  # fmt: skip
        request = transcode_batch(
            inputs=inputs, presets=preset or [], output=output, segment_seconds=segment_seconds,
            preset_files=preset_files, verify=verify, name=name, priority=priority,
            retries=retries, timeout=timeout, hold=hold, start_at=parse_start_at(start_at),
            rate=rate,
        )  # fmt: skip
        client = connect(controller, token)
        if upload:
            request = uploaded(client, request)
        handle = client.submit(request)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if as_json:
        print_json({"batch": handle.id})
    else:
        out.print(handle.id)


def describe_streams(job_spec: Mapping[str, Any]) -> list[str]:
    """What a validated transcode job does with each source stream, a line each, for
    ``qfarm show`` and the run summary: kept, converted, carried otherwise, or dropped and
    why. Empty for a job of another type, or one planned before streams were listed."""
    from qfarm.media.streams import describe_listed

    return describe_listed(job_spec.get("streams"))


def dropped_streams(job_spec: Mapping[str, Any]) -> list[str]:
    """The warnings of a validated transcode job: each source stream its output drops."""
    return [str(w) for w in job_spec.get("warnings") or []]


def uploaded(client: Client, request: BatchRequest) -> BatchRequest:
    """The request with its sources sent to cluster storage: every job then reads its source
    from the upload and writes its output beside it, on the controller's side."""
    sources = sorted({f for job in request.jobs for f in _files_of(job.spec)})
    base = Path(os.path.commonpath([str(s.parent) for s in sources]))
    upload_id, path = client.upload(sources, base)
    jobs = []
    for job in request.jobs:
        rel = Path(job.spec["input"]).relative_to(base).as_posix()
        spec = {
            **job.spec,
            "input": f"{path}/{rel}",
            "cwd": path,
            "output_dir": path,
            "storage": {"upload": upload_id, "path": path},
        }
        jobs.append(dataclasses.replace(job, spec=spec))
    return dataclasses.replace(request, jobs=tuple(jobs))


def _files_of(spec: Mapping[str, Any]) -> list[Path]:
    """The files a job's source is: its file, or every frame of its image sequence."""
    if "rate" not in spec:
        return [Path(spec["input"])]
    media = sources_mod.resolve(
        spec["input"], Path(spec["cwd"]), sources_mod.parse_rate(spec["rate"])
    )
    return [Path(media.frame_path(n)) for n in range(int(media.first or 0), media.last + 1)]


def invoke(mode: str, args: list[str]) -> int:
    """Run ``qfarm run transcode ARGS`` or ``qfarm submit transcode ARGS``; the exit code."""
    return invoke_single(run_app if mode == "run" else submit_app, args, f"qfarm {mode} transcode")


def _video_cell(row: dict[str, Any]) -> str:
    video = str(row["video_codec"] or "-")
    if row["crf"] is not None:
        video += f" crf {row['crf']}"
    if row["bitrate"]:
        video += f" {row['bitrate']}" + (" 2-pass" if row["two_pass"] else "")
    if row["height"] or row["width"]:
        video += f" {row['width'] or ''}x{row['height'] or ''}"
    return video


def _audio_cell(row: dict[str, Any]) -> str:
    audio = str(row["audio_codec"] or "-")
    if row["audio_bitrate"]:
        audio += f" {row['audio_bitrate']}"
    return audio


@app.command(
    epilog="""**Examples**

    qfarm presets

    qfarm presets --presets studio.toml --json
"""
)
def presets(
    preset_files: PresetFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the transcode presets: built in, and yours (from the config folder's
    presets/*.toml, QFARM_PRESETS, and --presets files)."""
    try:
        rows = presets_mod.presets_for_listing(preset_files or [])
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if as_json:
        print_json(rows)
        return
    # Readable at 80 columns: names never cut, the codec columns only where there is room
    # (the description says the same in words), the source only when a preset is yours.
    wide = out.width >= 110
    mine = any(row["source"] != "built in" for row in rows)
    table = Table(box=None, pad_edge=False)
    table.add_column("preset", no_wrap=True)
    table.add_column("container", no_wrap=True)
    if wide:
        table.add_column("video", no_wrap=True)
        table.add_column("audio", no_wrap=True)
    table.add_column("description", ratio=1, min_width=24)
    if mine:
        table.add_column("from", no_wrap=True)  # the file's name; --json gives its path
    for row in rows:
        note = row["description"]
        if not row["available"]:
            note += f" (unavailable: no {', '.join(row['missing_encoders'])})"
        cells = [row["name"], f"{row['container']} {row['kind']}"]
        if wide:
            cells += [_video_cell(row), _audio_cell(row)]
        cells.append(note)
        if mine:
            built_in = row["source"] == "built in"
            cells.append("" if built_in else Path(row["source"]).name)
        table.add_row(*cells)
    out.print(table)
