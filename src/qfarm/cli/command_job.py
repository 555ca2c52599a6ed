"""A command job from the command line: the options ``qfarm run`` and ``qfarm submit`` share,
as one set, and the batch they make."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from qfarm.cli.options import (
    FramesOpt,
    GpusOpt,
    LimitOpt,
    NameOpt,
    OptionSet,
    PriorityOpt,
    RequireOpt,
    ResourceOpt,
    RetriesOpt,
    SegmentSizeOpt,
    StallTimeoutOpt,
    TimeoutOpt,
)
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, JobRequest, parse_priority
from qfarm.domain.requirements import Requirements, job_requirements, parse_amounts


@dataclasses.dataclass(frozen=True)
class CommandJob(OptionSet):
    """The command and the options of a command job (a batch file takes the command's place:
    see :mod:`qfarm.cli.batchfile`)."""

    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMMAND...",
            help="The command and its arguments, after --.",
            show_default=False,
        ),
    ] = None
    frames: FramesOpt = None
    segment_size: SegmentSizeOpt = 1
    each: Annotated[
        list[str] | None,
        typer.Option("--each", "-e", help="Glob of input files: one segment per file. Repeatable."),
    ] = None
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output path pattern, e.g. 'out/{stem}.mp4'."),
    ] = None
    cwd: Annotated[
        Path | None, typer.Option("--cwd", help="Working directory of the command [default: here].")
    ] = None
    env: Annotated[
        list[str] | None, typer.Option("--env", help="NAME=VALUE for the command. Repeatable.")
    ] = None
    timeout: TimeoutOpt = None
    stall_timeout: StallTimeoutOpt = None
    retries: RetriesOpt = 2
    ok_exit: Annotated[
        str, typer.Option("--ok-exit", help="Exit codes that mean success, e.g. 0,1.")
    ] = "0"
    preflight: Annotated[
        str | None,
        typer.Option("--preflight", help="Command run once on each node before its first segment."),
    ] = None
    name: NameOpt = ""
    priority: PriorityOpt = "medium"
    require: RequireOpt = None
    gpus: GpusOpt = None
    resource: ResourceOpt = None
    limit: LimitOpt = None

    def requirements(self) -> Requirements:
        """``--require``, ``--gpus``, ``--resource`` and ``--limit``. Raises InvalidRequest."""
        return job_requirements(
            self.require or [],
            self.gpus,
            parse_amounts(self.resource or [], "--resource"),
            self.limit or [],
        )

    def batch(self, *, hold: bool = False, start_at: float | None = None) -> BatchRequest:
        """A one-job batch of this command. Raises InvalidRequest."""
        spec: dict[str, Any] = {
            "command": self.command or [],
            "frames": self.frames,
            "segment_size": self.segment_size,
            "each": self.each or None,
            "output": self.output,
            # Resolved here: a controller elsewhere must get the client's working directory.
            "cwd": str((self.cwd or Path.cwd()).resolve()),
            "env": self.environment(),
            "ok_exit": parse_exit_codes(self.ok_exit),
            "preflight": split_command(self.preflight, "--preflight") if self.preflight else [],
        }
        if self.stall_timeout is not None:
            spec["stall_timeout"] = self.stall_timeout
        try:
            level = parse_priority(self.priority)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        job = JobRequest(
            job_type="command",
            spec=spec,
            name=self.name,
            retries=self.retries,
            timeout=self.timeout,
            requirements=self.requirements(),
        )
        return BatchRequest(
            jobs=(job,),
            name=self.name or " ".join(self.command or [])[:80],
            priority=level,
            hold=hold,
            start_at=start_at,
        )

    def environment(self) -> dict[str, str]:
        """The ``--env`` pairs. Raises InvalidRequest."""
        return parse_env(self.env or [])


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidRequest(f"--env {pair!r} is not NAME=VALUE")
        env[name] = value
    return env


def split_command(text: str, option: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidRequest(f"{option} {text!r} cannot be split into arguments: {exc}") from None


def parse_exit_codes(text: str) -> list[int]:
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise InvalidRequest(f"--ok-exit {text!r} is not a list of numbers like 0,1") from None
