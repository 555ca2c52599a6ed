"""The options that several commands take, each declared once, and the sets of them that
commands take together.

An option set is a frozen dataclass whose fields are Typer options. A command declares one
parameter of that type and decorates itself with :func:`with_option_sets`: Typer then sees
the set's fields as the command's own options, in the place of that parameter, and the
command gets them back as one object. So ``qfarm run`` and ``qfarm submit`` (or ``run
render`` and ``submit render``) take the same options by construction, shown in the same
order in their help.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from qfarm.cli.common import FLAG
from qfarm.domain.errors import InvalidRequest

if TYPE_CHECKING:
    from qfarm.client import Client
    from qfarm.domain.model import BatchRequest

R = TypeVar("R")


class OptionSet:
    """The base of an option set: a frozen dataclass whose fields are Typer options, which
    :func:`with_option_sets` spreads into a command's options."""


def _is_option_set(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, OptionSet) and dataclasses.is_dataclass(hint)


def with_option_sets(func: Callable[..., R]) -> Callable[..., R]:
    """``func`` with each parameter typed by an :class:`OptionSet` replaced, for Typer, by
    that set's fields; the call gathers them back into the set. Two options of one name
    are refused here, at import, rather than left for Typer to confuse.

    A set's parameter has no default (the set's fields have theirs): where one follows
    options with defaults, the command's parameters are keyword-only (``*, ...``), which
    is how Typer passes them anyway."""
    hints = typing.get_type_hints(func, include_extras=True)
    parameters: list[inspect.Parameter] = []
    sets: dict[str, tuple[type[Any], list[str]]] = {}
    for param in inspect.signature(func).parameters.values():
        hint = hints.get(param.name, param.annotation)
        if not _is_option_set(hint):
            parameters.append(param.replace(annotation=hint, kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        field_hints = typing.get_type_hints(hint, include_extras=True)
        names = []
        for field in dataclasses.fields(hint):
            required = field.default is dataclasses.MISSING  # an argument: INPUT...
            parameters.append(
                inspect.Parameter(
                    field.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=inspect.Parameter.empty if required else field.default,
                    annotation=field_hints[field.name],
                )
            )
            names.append(field.name)
        sets[param.name] = (hint, names)
    seen = [p.name for p in parameters]
    twice = sorted({name for name in seen if seen.count(name) > 1})
    if twice:
        raise TypeError(f"{func.__qualname__}: options given twice: {', '.join(twice)}")

    @functools.wraps(func)
    def command(**given: Any) -> R:
        for name, (kind, fields) in sets.items():
            given[name] = kind(**{field: given.pop(field) for field in fields})
        return func(**given)

    # What Typer reads: the spread signature, its annotations already resolved.
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    del command.__wrapped__  # inspect.signature must not see through to func
    return command


# ------------------------------------------------------------------- one option each

FramesOpt = Annotated[
    str | None,
    typer.Option("--frames", "-f", help="Frame list: 1-240, 1-240x2 (step 2), 1,5,10-20."),
]
SegmentSizeOpt = Annotated[int, typer.Option("--segment-size", "-s", help="Frames per segment.")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Seconds one segment attempt may run before it is killed."),
]
StallTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--stall-timeout",
        help="Seconds a segment may show no progress (no new output, no progress report) "
        "before it is ended and tried on another node; 0: never. [default: 600 for renders, "
        "120 for transcodes, never for commands]",
    ),
]
RetriesOpt = Annotated[int, typer.Option("--retries", help="Retries of a failed segment.")]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="A name for the batch.")]
PriorityOpt = Annotated[
    str, typer.Option("--priority", help="high, medium (the default), low, or 0-100.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.", metavar=FLAG)]
JoinTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--join-token",
        envvar="QFARM_JOIN_TOKEN",
        help="The cluster's join token (qfarm join-token on the controller's machine).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.", metavar=FLAG)]
# Options of the embedded cluster of `qfarm run` and the job types' `run` commands.
NodesOpt = Annotated[
    int | None,
    typer.Option("--nodes", help="Local service nodes to start [default: 2 on 2+ cores]."),
]
InstancesOpt = Annotated[
    int | None,
    typer.Option(
        "--instances",
        help="Instances of each service per node [default: command cores / nodes, transcode 1].",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the store and logs live [env: QFARM_DATA_DIR]."),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy database URL [default: SQLite in the data dir]."),
]
FollowOpt = Annotated[
    bool,
    typer.Option(
        "--follow",
        "-v",
        metavar=FLAG,
        help="Print each segment's output on stdout as it comes, each line prefixed with its "
        "segment: [3] ... (off with --json).",
    ),
]
FreshOpt = Annotated[
    bool,
    typer.Option(
        "--fresh",
        metavar=FLAG,
        help="Start over: a new batch, even when an interrupted run of the same command "
        "left one to resume.",
    ),
]
# The user's own transcode presets: `qfarm presets` and the transcode commands.
PresetFileOpt = Annotated[
    list[Path] | None,
    typer.Option("--presets", help="A TOML file of presets of your own. Repeatable."),
]
# The controller a client command speaks to.
ControllerOpt = Annotated[
    str | None,
    typer.Option("--controller", "-c", envvar="QFARM_CONTROLLER", help="The controller's URL."),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="QFARM_TOKEN", help="The controller's token.")
]
BatchArg = Annotated[int, typer.Argument(metavar="BATCH", help="The batch id.", show_default=False)]


RequireOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--require", help="A tag its nodes must carry: gpu, or a list gpu,fast-disk. Repeatable."
    ),
]
GpusOpt = Annotated[
    int | None, typer.Option("--gpus", help="GPUs each segment holds while it runs.")
]
LimitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--limit", help="A farm-wide limit each segment holds one of (qfarm limit). Repeatable."
    ),
]
ResourceOpt = Annotated[
    list[str] | None,
    typer.Option("--resource", help="NAME=N: a counted resource each segment holds. Repeatable."),
]


NotifyOnOpt = Annotated[
    str,
    typer.Option("--notify-on", metavar="done|failed|ended", help="Which ends --notify tells of."),
]


def connect(controller: str | None, token: str | None) -> Client:
    """The client of ``--controller`` (or $QFARM_CONTROLLER) with ``--token``. The client
    module is loaded here, by the commands that use it, not by every ``qfarm run``."""
    from qfarm.client import Client

    return Client(controller, token=token)


# -------------------------------------------------------------------- option sets


@dataclasses.dataclass(frozen=True)
class JobOptions(OptionSet):
    """What every job type's ``run`` and ``submit`` take about the batch and its retries."""

    name: NameOpt = ""
    priority: PriorityOpt = "medium"
    retries: RetriesOpt = 2
    timeout: TimeoutOpt = None
    stall_timeout: StallTimeoutOpt = None

    def spec_options(self) -> dict[str, Any]:
        """The farm's own options of these (``stall_timeout``), for the job's spec."""
        return {} if self.stall_timeout is None else {"stall_timeout": self.stall_timeout}


@dataclasses.dataclass(frozen=True)
class Schedule(OptionSet):
    """When a submitted batch may run: ``qfarm submit`` and its job-type forms."""

    hold: Annotated[
        bool,
        typer.Option("--hold", help="Submit on hold: nothing runs until resumed.", metavar=FLAG),
    ] = False
    start_at: Annotated[
        str | None, typer.Option("--start-at", help="Run no earlier than: 22:00, an ISO time.")
    ] = None

    # Who hears of the batch's end (qfarm.domain.notify): here, so that every command that
    # submits takes them.
    notify: Annotated[
        list[str] | None,
        typer.Option(
            "--notify",
            metavar="TARGET",
            help="Tell of the batch's end: mailto:ADDRESS or a webhook's http(s):// URL. "
            "Repeatable.",
        ),
    ] = None
    notify_on: NotifyOnOpt = "ended"

    def start_time(self) -> float | None:
        """``--start-at`` as epoch seconds. Raises InvalidRequest."""
        return parse_start_at(self.start_at)

    def with_notify(self, request: BatchRequest) -> BatchRequest:
        """``request`` with the ``--notify`` targets added to its own (a batch file's).
        Raises InvalidRequest naming a bad target."""
        from qfarm.domain.notify import checked, notifications

        if not self.notify:
            return request
        given = notifications(self.notify, self.notify_on)
        return dataclasses.replace(request, notify=checked((*request.notify, *given)))


@dataclasses.dataclass(frozen=True)
class Connection(OptionSet):
    """The controller that a client command speaks to, and its token."""

    controller: ControllerOpt = None
    token: TokenOpt = None

    def client(self) -> Client:
        return connect(self.controller, self.token)


def parse_start_at(text: str | None) -> float | None:
    """``2026-11-25T22:00``, ``22:00`` (the next such time) or epoch seconds."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    now = datetime.datetime.now()
    try:
        if len(text) <= 5 and ":" in text:
            at = datetime.datetime.combine(now.date(), datetime.time.fromisoformat(text))
            if at <= now:
                at += datetime.timedelta(days=1)
        else:
            at = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"--start-at {text!r} is not a time like 22:00 or 2026-11-25T22:00"
        ) from None
    return at.timestamp()
