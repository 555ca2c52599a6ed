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
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qfarm.cli.app import JobCommandLine, single_command_app
from qfarm.cli.common import FLAG, err, fail_usage, out, print_json
from qfarm.cli.embedded import run_request
from qfarm.cli.options import (
    Connection,
    DataDirOpt,
    DbOpt,
    FreshOpt,
    JobOptions,
    JsonOpt,
    NodesOpt,
    OptionSet,
    PresetFileOpt,
    QuietOpt,
    Schedule,
    with_option_sets,
)
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, JobRequest, parse_priority
from qfarm.media import presets as presets_mod
from qfarm.media import sources as sources_mod
from qfarm.media.sources import Expansion

if TYPE_CHECKING:
    from qfarm.client import Client


@dataclasses.dataclass(frozen=True)
class TranscodeOptions(OptionSet):
    """The sources, presets and checks: the options of ``qfarm run transcode`` and ``submit
    transcode``."""

    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Source files, globs like 'clips/*.mov', folders, or image sequences: "
            "'shot_%04d.png', 'shot_####.exr', a folder or glob of frames (one movie at --rate).",
            show_default=False,
            metavar="INPUT...",
        ),
    ]
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset", "-p", help="A preset name (qfarm presets). Repeatable.", show_default=False
        ),
    ] = None
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder for the outputs [default: here]. Each is named SOURCE-PRESET.EXT.",
        ),
    ] = None
    segment_seconds: Annotated[
        float | None,
        typer.Option(
            "--segment-seconds",
            help="Seconds of video per segment [default: from the source's length and the "
            "free instances; short sources are not split].",
        ),
    ] = None
    preset_files: PresetFileOpt = None
    verify: Annotated[
        str,
        typer.Option(
            "--verify",
            help="Check outputs: seams (decode around every seam), full (decode everything), "
            "or none.",
        ),
    ] = "seams"
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            help="Frames per second of image sequence sources (24, 25, 30000/1001) [default: "
            "24]. Movies keep their own.",
            show_default=False,
        ),
    ] = None

    def batch(
        self, job: JobOptions, *, hold: bool = False, start_at: float | None = None
    ) -> BatchRequest:
        """The batch of these sources and presets (:func:`transcode_batch`)."""
        return transcode_batch(
            inputs=self.inputs,
            presets=self.preset or [],
            output=self.output,
            segment_seconds=self.segment_seconds,
            preset_files=self.preset_files,
            verify=self.verify,
            name=job.name,
            priority=job.priority,
            retries=job.retries,
            timeout=job.timeout,
            stall_timeout=job.stall_timeout,
            hold=hold,
            start_at=start_at,
            rate=self.rate,
        )


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
    stall_timeout: float | None = None,
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
        skipped = ", ".join(expansion.skipped)
        err.print(f"skipped {len(expansion.skipped)} files that are not media: {skipped}")
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
            if stall_timeout is not None:
                spec["stall_timeout"] = stall_timeout
            job = JobRequest("transcode", spec, name=job_name, retries=retries, timeout=timeout)
            jobs.append(job)
    label = name or (jobs[0].name if len(jobs) == 1 else f"transcode {len(jobs)} jobs")
    return BatchRequest(jobs=tuple(jobs), name=label, priority=level, hold=hold, start_at=start_at)


run_app = single_command_app()
submit_app = single_command_app()


@run_app.command(epilog=RUN_EPILOG)
@with_option_sets
def run_transcode(
    media: TranscodeOptions,
    job: JobOptions,
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
        request = media.batch(job)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    code = run_request(
        request,
        nodes=nodes,
        instances=instances,
        data_dir=data_dir,
        db=db,
        as_json=as_json,
        quiet=quiet,
        fresh=fresh,
    )
    raise typer.Exit(code)


@submit_app.command(epilog=SUBMIT_EPILOG)
@with_option_sets
def submit_transcode(
    *,
    media: TranscodeOptions,
    job: JobOptions,
    schedule: Schedule,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload",
            metavar=FLAG,
            help="Send the sources to the controller, for nodes without shared storage; get "
            "the outputs with qfarm fetch.",
        ),
    ] = False,
    remote: Connection,
    as_json: JsonOpt = False,
) -> None:
    """Submit transcode jobs to a controller and print the new batch's id.

    Sources and output folder must be on storage the nodes share (see --path-map on
    qfarm node), or sent with --upload.
    """
    try:
        if upload and media.output is not None:
            raise InvalidRequest(
                "--upload keeps outputs on the controller: fetch them with qfarm fetch -o DIR "
                "instead of giving --output"
            )
        request = media.batch(job, hold=schedule.hold, start_at=schedule.start_time())
        request = schedule.with_notify(request)
        client = remote.client()
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


COMMAND_LINE = JobCommandLine(run=run_app, submit=submit_app)
