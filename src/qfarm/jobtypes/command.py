"""The ``command`` job type: any command-line program, once, per frame range or per input file.

The command is an argument vector. Placeholders are substituted inside each argument on its
own and never pasted into a shell string, so a file name with spaces or quotes stays one
argument; users who want a shell write ``sh -c '...'`` themselves.

Placeholders (Python format fields, so ``{frame:04d}`` pads; write ``{{`` for a literal brace):

``{start}`` ``{end}`` ``{step}``
    the first and last frame of the segment and the step between its frames;
``{frame}``
    one frame: a command that uses it runs once per frame of its segment, in order;
``{segment}``
    the segment's number within its job, from 1;
``{input}`` ``{stem}``
    with ``--each``: the segment's input file, and its name without directory or extension;
``{output}``
    the ``--output`` pattern filled in for the segment. The command writes to a temporary name
    beside it and qfarm renames it when the command succeeds, so a half-written file never sits
    at the final path.
"""

from __future__ import annotations

import glob
import os
import shlex
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun, chunk_runs, format_run, parse_frames
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes.base import (
    SegmentContext,
    SegmentOutcome,
    describe_process_failure,
    refuse_unknown,
    segment_size,
)
from qfarm.jobtypes.outputs import discard, temporary_name

PLACEHOLDERS = frozenset({"start", "end", "step", "frame", "segment", "input", "stem", "output"})
FRAME_PLACEHOLDERS = frozenset({"start", "end", "step", "frame"})
INPUT_PLACEHOLDERS = frozenset({"input", "stem"})


# Values of the right types to try every argument with at validation, so a bad format spec
# is refused before anything is queued rather than on a node.
_SAMPLE: dict[str, Any] = {
    "start": 1,
    "end": 1,
    "step": 1,
    "frame": 1,
    "segment": 1,
    "input": "input",
    "stem": "stem",
    "output": "output",
}


def placeholders_in(text: str, where: str) -> set[str]:
    """The placeholder names used in ``text``; raise on unknown or malformed ones."""
    names = _fields(text, where)
    fill(text, _SAMPLE, where)
    return names


def _fields(text: str, where: str) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InvalidRequest(
            f"malformed placeholder in {where} {text!r}: {exc} (write {{{{ for a literal brace)"
        ) from None
    for _literal, field_name, spec, _conversion in parsed:
        if field_name is None:
            continue
        if field_name not in PLACEHOLDERS:
            known = " ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            shown = "{" + field_name + "}" if field_name else "{}"
            raise InvalidRequest(
                f"unknown placeholder {shown} in {where} {text!r}: known are {known}"
            )
        names.add(field_name)
        if spec:  # a format spec may hold placeholders of its own: {frame:0{step}d}
            names |= _fields(spec, where)
    return names


def _list_of(value: Any, name: str, types: tuple[type, ...]) -> list[Any]:
    """``value`` as a list whose items are all of ``types``, or InvalidRequest."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, types) and not isinstance(v, bool) for v in value
    ):
        kinds = " or ".join(t.__name__ for t in types)
        raise InvalidRequest(f"{name} must be a list of {kinds} values, not {value!r}")
    return list(value)


def fill(text: str, values: Mapping[str, Any], where: str = "argument") -> str:
    try:
        return text.format_map(values)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InvalidRequest(f"cannot fill placeholders in {where} {text!r}: {exc}") from None


class CommandJobType:
    name = "command"
    service = "command"
    keeps_sessions = False
    maps_paths = False
    stall_timeout: float | None = None  # a command may well be silent for hours

    options = frozenset(
        {"command", "frames", "segment_size", "each", "output", "cwd", "env", "ok_exit",
         "preflight"}
    )  # fmt: skip

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        return ()

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        refuse_unknown(spec, self.options, "command job")
        raw_command = spec.get("command") or []
        if isinstance(raw_command, str):
            raise InvalidRequest(
                "the command must be a list of arguments, not one string: "
                "write ['sh', '-c', '...'] to use a shell"
            )
        command = [str(arg) for arg in _list_of(raw_command, "command", (str, int, float))]
        if not command or not command[0].strip():
            raise InvalidRequest(
                "no command given (on the command line it goes after --: qfarm run -- echo hi)"
            )
        cwd = os.path.abspath(str(spec.get("cwd") or os.getcwd()))
        if not os.path.isdir(cwd):
            raise InvalidRequest(f"working directory {cwd} does not exist")

        used: set[str] = set()
        for arg in command:
            used |= placeholders_in(arg, "command argument")
        raw_preflight = spec.get("preflight") or []
        if isinstance(raw_preflight, str):
            try:
                raw_preflight = shlex.split(raw_preflight)
            except ValueError as exc:
                raise InvalidRequest(f"preflight {raw_preflight!r}: {exc}") from None
        preflight = [str(arg) for arg in _list_of(raw_preflight, "preflight", (str,))]
        for arg in preflight:
            if placeholders_in(arg, "preflight argument"):
                raise InvalidRequest(f"preflight argument {arg!r} cannot use placeholders")
        output = spec.get("output")
        output_used: set[str] = set()
        if output:
            output_used = placeholders_in(str(output), "output pattern")
            if "output" in output_used:
                raise InvalidRequest("the output pattern cannot contain {output}")
            if "output" not in used:
                raise InvalidRequest(
                    "--output is given but the command never uses {output}: put {output} "
                    "where the program takes its output file"
                )
        elif "output" in used:
            raise InvalidRequest("the command uses {output} but no --output pattern is given")

        frames = spec.get("frames")
        each = spec.get("each")
        if frames and each:
            raise InvalidRequest("use --frames or --each, not both")
        size = segment_size(spec, default=1)

        runs: list[FrameRun] = []
        inputs: list[str] = []
        if frames:
            runs = parse_frames(str(frames))
        elif each:
            patterns = [each] if isinstance(each, str) else _list_of(each, "each", (str,))
            for pattern in patterns:
                # Relative patterns are matched under cwd without being joined to it, so a
                # folder named like a glob ("shot[v1]") is taken literally.
                expanded = os.path.expanduser(str(pattern))
                matched = sorted(
                    path
                    for path in (os.path.join(cwd, p) for p in glob.glob(expanded, root_dir=cwd))
                    if os.path.isfile(path)
                )
                if not matched:
                    raise InvalidRequest(f"--each {pattern!r} matches no file in {cwd}")
                inputs.extend(os.path.abspath(p) for p in matched)

        all_used = used | output_used
        if not runs and all_used & FRAME_PLACEHOLDERS:
            names = " ".join("{" + n + "}" for n in sorted(all_used & FRAME_PLACEHOLDERS))
            raise InvalidRequest(f"the command uses {names} but no --frames range is given")
        if not inputs and all_used & INPUT_PLACEHOLDERS:
            names = " ".join("{" + n + "}" for n in sorted(all_used & INPUT_PLACEHOLDERS))
            raise InvalidRequest(f"the command uses {names} but no --each files are given")
        if "frame" in output_used and "frame" not in used:
            raise InvalidRequest(
                "the output pattern uses {frame} but the command does not, so one run "
                "would write several frames to one {output}"
            )

        raw_env = spec.get("env") or {}
        if not isinstance(raw_env, dict):
            raise InvalidRequest("env must be a table of NAME = VALUE")
        env = {str(k): str(v) for k, v in raw_env.items()}
        ok_exit = sorted({int(c) for c in _list_of(spec.get("ok_exit") or [0], "ok_exit", (int,))})
        return {
            "command": command,
            "cwd": cwd,
            "env": env,
            "frames": [[r.start, r.end, r.step] for r in runs],
            "segment_size": size,
            "inputs": inputs,
            "output": str(output) if output else None,
            "ok_exit": ok_exit,
            "preflight": preflight,
            "per_frame": "frame" in used,
        }

    def describe(self, spec: Mapping[str, Any]) -> list[str]:
        """What a validated job does, in a line or two for ``qfarm show`` and the run
        summary: how it is cut, and the command it runs."""
        size = spec["segment_size"]
        if spec["frames"]:
            runs = [FrameRun(*r) for r in spec["frames"]]
            chunks = chunk_runs(runs, size)
            most = max(len(c) for c in chunks)
            upto = "up to " if any(len(c) != most for c in chunks) else ""
            frames = sum(len(r) for r in runs)
            shown = ",".join(format_run(r) for r in runs)
            cut = f"{plural(len(chunks), 'segment')} of {upto}{plural(most, 'frame')}"
            lines = [f"{cut} ({frames} frames: {shown})"]
        elif spec["inputs"]:
            lines = [f"{plural(len(spec['inputs']), 'segment')}, one per input file"]
        else:
            lines = ["1 segment: the whole job"]
        lines.append(f"runs: {shlex.join(spec['command'])}")
        if spec.get("output"):
            lines.append(f"writes: {spec['output']}")
        return lines

    def plan(self, spec: Mapping[str, Any]) -> list[SegmentPlan]:
        plans: list[SegmentPlan] = []
        output = spec.get("output")
        cwd = spec["cwd"]

        def out_path(values: Mapping[str, Any]) -> str:
            assert output is not None
            return os.path.join(cwd, os.path.expanduser(fill(output, values, "output pattern")))

        if spec["frames"]:
            runs = [FrameRun(*r) for r in spec["frames"]]
            for index, chunk in enumerate(chunk_runs(runs, spec["segment_size"]), start=1):
                seg: dict[str, Any] = {
                    "segment": index,
                    "start": chunk.start,
                    "end": chunk.end,
                    "step": chunk.step,
                }
                outputs: list[str] = []
                if output and spec["per_frame"]:
                    outputs = [out_path({**seg, "frame": f}) for f in chunk.frames]
                elif output:
                    outputs = [out_path(seg)]
                plans.append(
                    SegmentPlan(
                        index=index,
                        spec=seg,
                        label=f"frames {format_run(chunk)}",
                        frames=len(chunk),
                        outputs=tuple(outputs),
                    )
                )
        elif spec["inputs"]:
            for index, path in enumerate(spec["inputs"], start=1):
                seg = {"segment": index, "input": path, "stem": Path(path).stem}
                outputs = [out_path(seg)] if output else []
                plans.append(
                    SegmentPlan(
                        index=index,
                        spec=seg,
                        label=os.path.relpath(path, cwd),
                        outputs=tuple(outputs),
                    )
                )
        else:
            seg = {"segment": 1}
            outputs = [out_path(seg)] if output else []
            plans.append(SegmentPlan(index=1, spec=seg, label="whole job", outputs=tuple(outputs)))
        return plans

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        base = {k: v for k, v in segment.items() if k in PLACEHOLDERS}
        if job["per_frame"]:
            step = int(segment["step"])
            frames = list(range(int(segment["start"]), int(segment["end"]) + 1, step))
            calls = [{**base, "frame": f} for f in frames]
        else:
            calls = [base]
        outputs: list[str] = list(segment.get("outputs") or [])
        ok_exit = set(job["ok_exit"])
        for number, values in enumerate(calls):
            final = outputs[number] if outputs else None
            temp = None
            if final is not None:
                temp = temporary_name(final, ctx.key)
                Path(final).parent.mkdir(parents=True, exist_ok=True)
                values = {**values, "output": temp}
            argv = [fill(arg, values) for arg in job["command"]]
            result = ctx.run(argv, cwd=job["cwd"], env=job["env"])
            if not result.succeeded(ok_exit):
                discard(temp)
                return describe_process_failure(result, f"command {argv[0]}")
            if final is not None and temp is not None:
                if not os.path.exists(temp):
                    return SegmentOutcome(
                        ok=False,
                        exit_code=result.exit_code,
                        error=f"command exited {result.exit_code} but did not write {final}",
                    )
                os.replace(temp, final)
            ctx.on_progress((number + 1) / len(calls))
        return SegmentOutcome(ok=True, exit_code=0 if not calls else result.exit_code)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


COMMAND = CommandJobType()
