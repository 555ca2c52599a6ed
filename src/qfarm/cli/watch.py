"""``qfarm watch``: a watch folder (a droplet) as a client on any machine, and what each new
file becomes (the template), which ``qfarm controller --watch`` uses as well.

The watching itself is :mod:`qfarm.watch`; this module turns the command line (or a
``[[watch]]`` table) into a template and a submitter, and prints what happens.

A batch template is a batch file (see :mod:`qfarm.cli.batchfile`) in which ``{source}``
is the new file's absolute path, ``{source_name}`` its name and ``{source_stem}`` its name
without the extension. (Not ``{stem}``: a command job's ``{stem}`` is its ``--each``
input's.) They are filled in before the file is read as a batch file, in every string; in
a job's ``command``, ``preflight`` and ``output``, which the command job fills in again
with its own placeholders, the braces of a file name are doubled so they stay literal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import tomllib
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qfarm.cli import batchfile
from qfarm.cli.app import app
from qfarm.cli.common import FLAG, ExitCode, err, fail_usage, out, print_error
from qfarm.cli.options import Connection, JsonOpt, with_option_sets
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest
from qfarm.watch.report import Happening, WatchReport
from qfarm.watch.settings import (
    DEFAULT_SCAN,
    DEFAULT_SETTLE,
    TemplateChoice,
    WatchConfig,
    check_template,
    load_config,
    watch_settings,
)
from qfarm.watch.submitter import SubmitterUnavailable, Template

if TYPE_CHECKING:
    from qfarm.controller.service import Controller
    from qfarm.watch.watcher import FolderWatcher

PLACEHOLDER = re.compile(r"(?<!\{)\{(source|source_name|source_stem)\}(?!\})")
# A command job's fields that it fills in with placeholders of its own.
FORMATTED_KEYS = frozenset({"command", "preflight", "output"})

EPILOG = """
**Examples**

    qfarm watch /mnt/drop/web --preset h264-720p -o /mnt/out/web

    qfarm watch incoming/ --batch checksum.toml --mark sidecar

    qfarm watch /mnt/nfs/drop -p prores-422 -o /mnt/nfs/out --no-events --scan 10

    qfarm watch drop/ -p h264-480p -o out/ --once --json    # what is there now, then exit

A batch template is a batch file in which {source} is the new file ({source_name},
{source_stem}: its name, without the extension):

    [[jobs]]
    command = ["sh", "-c", "sha256sum \\"$1\\" > \\"$1.sha256\\"", "sh", "{source}"]
"""


# ------------------------------------------------------------------- templates


def template_for(choice: TemplateChoice) -> Template:
    """What each new file becomes, checked now on a made-up file (InvalidRequest), so a
    bad template is a usage error at the start rather than a refusal per file."""
    if choice.batch is not None:
        return batch_template(choice.batch, choice.priority)
    return transcode_template(choice)


def transcode_template(choice: TemplateChoice) -> Template:
    """A transcode of the file with each preset into the output folder, as ``qfarm
    submit transcode FILE -p ... -o ...`` makes it."""
    from qfarm.cli.transcode import transcode_batch
    from qfarm.media import presets

    for name in choice.presets:  # an unknown preset is a usage error now
        presets.for_request(name, choice.preset_files)

    def make(source: Path) -> BatchRequest:
        return transcode_batch(
            inputs=[str(source)],
            presets=list(choice.presets),
            output=choice.output,
            segment_seconds=None,
            preset_files=list(choice.preset_files),
            verify="seams",
            name=source.name,
            priority=choice.priority,
            retries=2,
            timeout=None,
        )

    return make


def batch_template(path: Path, priority: str = "medium") -> Template:
    """The batch file at ``path`` with the new file filled in (see the module's
    docstring). Raises InvalidRequest for a file that is not a batch file, or one that
    never names ``{source}`` (every file would make the same batch)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read batch template {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"batch template {path} is not valid TOML: {exc}") from None
    base = path.resolve().parent
    if "{source" not in json.dumps(data):
        raise InvalidRequest(
            f"batch template {path} never names {{source}}: every file would make the same batch"
        )
    if "priority" not in data and priority != "medium":
        data = {**data, "priority": priority}

    def make(source: Path) -> BatchRequest:
        filled = fill_source(data, source)
        try:
            request = batchfile.parse(filled, base=base)
        except InvalidRequest as exc:
            raise InvalidRequest(f"batch template {path}: {exc}") from None
        return request if request.name else dataclasses.replace(request, name=source.name)

    make(base / "example.mov")  # refuses a template that is no batch file, now
    return make


def fill_source(value: Any, source: Path, formatted: bool = False) -> Any:
    """``value`` (a batch file's data) with the source's placeholders filled in."""
    if isinstance(value, dict):
        return {
            k: fill_source(v, source, formatted or k in FORMATTED_KEYS) for k, v in value.items()
        }
    if isinstance(value, list):
        return [fill_source(item, source, formatted) for item in value]
    if not isinstance(value, str):
        return value
    values = {"source": str(source), "source_name": source.name, "source_stem": source.stem}

    def one(match: re.Match[str]) -> str:
        text = values[match.group(1)]
        return text.replace("{", "{{").replace("}", "}}") if formatted else text

    return PLACEHOLDER.sub(one, value)


# ----------------------------------------------------------------- telling


def teller(as_json: bool) -> Callable[[WatchReport], None]:
    """How a watcher's reports are shown: a line each (problems on stderr), or one JSON
    object per line on stdout for scripts."""

    def tell(report: WatchReport) -> None:
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict()) + "\n")
            sys.stdout.flush()
        elif report.happening is Happening.PROBLEM:
            err.print(report.line(), highlight=False, soft_wrap=True)
        else:
            out.print(report.line(), highlight=False, soft_wrap=True)

    return tell


# ------------------------------------------------------------ in the controller


def controller_watches(
    configs: Sequence[WatchConfig],
) -> Callable[[Controller], Coroutine[Any, Any, None]]:
    """The watchers of ``qfarm controller --watch``, templates checked now (InvalidRequest),
    as what the served controller runs beside itself: they call it directly, no HTTP."""
    prepared = [(config.settings, template_for(config.template)) for config in configs]

    async def run(controller: Controller) -> None:
        from qfarm.controller.watched import InControllerSubmitter
        from qfarm.watch.watcher import FolderWatcher

        submitter = InControllerSubmitter(controller)
        tell = teller(as_json=False)
        for settings, _ in prepared:
            out.print(f"watching {settings.folder} as {settings.name}", highlight=False)
        watchers = [FolderWatcher(s, t, submitter, tell) for s, t in prepared]
        await asyncio.gather(*(_telling_its_end(watcher) for watcher in watchers))

    async def _telling_its_end(watcher: FolderWatcher) -> None:
        """A watcher that stops on an error it cannot ride out says so, on one line; the
        controller and the other watchers go on."""
        try:
            await watcher.run()
        except Exception as exc:
            print_error(f"watch {watcher.settings.name} stopped: {exc}")

    return run


def watch_folders(config: Path | None) -> list[Callable[[Controller], Coroutine[Any, Any, None]]]:
    """What ``qfarm controller --watch CONFIG`` runs beside the controller: nothing without
    a config. Raises InvalidRequest for a bad config or template."""
    if config is None:
        return []
    return [controller_watches(load_config(config))]


# ------------------------------------------------------------------- command


@app.command(epilog=EPILOG)
@with_option_sets
def watch(
    *,
    folder: Annotated[
        Path,
        typer.Argument(metavar="FOLDER", help="The folder to watch.", show_default=False),
    ],
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            "-p",
            metavar="PRESET",
            help="Transcode each file with this preset (qfarm presets). Repeatable.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FOLDER",
            help="Folder for the transcodes' outputs [default: here; not the watched folder].",
        ),
    ] = None,
    preset_files: Annotated[
        list[Path] | None,
        typer.Option("--presets", metavar="FILE", help="A TOML file of presets of your own."),
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            metavar="TEMPLATE",
            help="A batch file in which {source} is the new file: any job type.",
        ),
    ] = None,
    priority: Annotated[
        str,
        typer.Option("--priority", metavar="LEVEL", help="high, medium, low, or 0-100."),
    ] = "medium",
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="What its files are claimed under [default: the folder's path]; watchers of "
            "one folder on several machines share the work under one name.",
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            metavar="SECONDS",
            help="A file is taken once its size and mtime stayed the same this long.",
        ),
    ] = DEFAULT_SETTLE,
    scan: Annotated[
        float,
        typer.Option(
            "--scan",
            metavar="SECONDS",
            help="Seconds between full scans of the folder, besides its file events (the "
            "fallback for network mounts that send none).",
        ),
    ] = DEFAULT_SCAN,
    events: Annotated[
        bool,
        typer.Option(
            "--events/--no-events",
            metavar=FLAG,
            help="Follow the folder's file events (watchdog); --no-events: scans only.",
        ),
    ] = True,
    mark: Annotated[
        str,
        typer.Option(
            "--mark",
            metavar="MODE",
            help="move: sources go to done/ and failed/ in the folder; sidecar: they stay, "
            "with NAME.qfarm.json beside them.",
        ),
    ] = "move",
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            metavar=FLAG,
            help="Take what is stable now, wait for those batches, move them, and exit "
            "(1 if any failed).",
        ),
    ] = False,
    remote: Connection,
    as_json: JsonOpt = False,
) -> None:
    """Submit one batch per new file in a folder, once the file has stopped growing.

    Each file is claimed in the controller's store before its batch is submitted, so a
    restarted watcher (or a second one under the same --name) never submits it twice; a
    file written again (new size or mtime) is a new file. When its batch ends the source is
    moved to done/ or failed/ (or marked with a sidecar); a file the controller refuses goes
    to failed/ with the error in a sidecar, and the watcher goes on. Stop it with Ctrl-C:
    batches still going are followed by its next start.
    """
    from qfarm.watch.remote import HttpSubmitter
    from qfarm.watch.watcher import FolderWatcher

    try:
        settings = watch_settings(
            folder, name=name, settle=settle, scan=scan, events=events, mark=mark
        )
        choice = TemplateChoice(
            presets=tuple(preset or ()),
            output=output,
            preset_files=tuple(preset_files or ()),
            batch=batch,
            priority=priority,
        )
        check_template(choice, settings.folder)
        template = template_for(choice)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    client = remote.client()
    watcher = FolderWatcher(settings, template, HttpSubmitter(client), teller(as_json))
    err.print(
        f"watching {settings.folder} as {settings.name} for {client.url}"
        + (" (once)" if once else "; Ctrl-C stops"),
        highlight=False,
        soft_wrap=True,
    )
    try:
        asyncio.run(watcher.run(once=once))
    except KeyboardInterrupt:
        err.print(f"stopped; {len(watcher.out)} batches still going", highlight=False)
        raise typer.Exit(ExitCode.DONE) from None
    except SubmitterUnavailable as exc:
        print_error(exc)
        raise typer.Exit(ExitCode.UNREACHABLE) from None
    finally:
        client.close()
    raise typer.Exit(ExitCode.FAILED if watcher.failures else ExitCode.DONE)
