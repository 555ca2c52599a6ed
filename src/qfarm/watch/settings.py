"""A watch's settings, as ``qfarm watch`` takes them on its command line and ``qfarm
controller --watch CONFIG.toml`` reads them, one ``[[watch]]`` table per folder:

    [[watch]]
    folder = "/mnt/drop/web"        # relative paths are taken from the config file's folder
    name = "web"                    # default: the folder's absolute path
    preset = ["h264-720p", "aac"]   # a transcode per preset (or one name) ...
    output = "/mnt/out/web"
    presets = ["studio.toml"]       # preset files of your own (optional)
    # batch = "template.toml"       # ... or a batch file, {source} being the new file
    priority = "medium"
    settle = 5                      # seconds a file must stay unchanged
    scan = 30                       # seconds between full scans (events or not)
    events = true                   # false: scans only (network mounts)
    mark = "move"                   # or "sidecar"

Both read into the same two records, so the two ways of running a watcher cannot drift.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest

MARKS = ("move", "sidecar")
DEFAULT_SETTLE = 5.0
DEFAULT_SCAN = 30.0
NAME_LIMIT = 200  # the store's watched_files.watch column
DONE_DIR = "done"
FAILED_DIR = "failed"


@dataclass(frozen=True)
class WatchSettings:
    """How one folder is watched. ``name`` is what its files are claimed under: watchers
    of one folder on two machines share it (give the same ``--name``) to share the work."""

    folder: Path
    name: str
    settle: float = DEFAULT_SETTLE
    scan: float = DEFAULT_SCAN
    events: bool = True
    mark: str = "move"  # move: to done/ and failed/; sidecar: NAME.qfarm.json beside it
    poll: float = 1.0  # seconds between looks at the batches it submitted


@dataclass(frozen=True)
class TemplateChoice:
    """What each new file becomes: a transcode with ``presets`` into ``output``, or the
    batch file ``batch`` with the file filled in."""

    presets: tuple[str, ...] = ()
    output: Path | None = None
    preset_files: tuple[Path, ...] = ()
    batch: Path | None = None
    priority: str = "medium"


@dataclass(frozen=True)
class WatchConfig:
    settings: WatchSettings
    template: TemplateChoice


def watch_settings(
    folder: Path,
    *,
    name: str | None = None,
    settle: float = DEFAULT_SETTLE,
    scan: float = DEFAULT_SCAN,
    events: bool = True,
    mark: str = "move",
    poll: float = 1.0,
) -> WatchSettings:
    """Checked settings (InvalidRequest naming the problem)."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise InvalidRequest(f"watch folder {folder} {what}")
    folder = folder.resolve()
    chosen = name or str(folder)
    if len(chosen) > NAME_LIMIT:
        raise InvalidRequest(
            f"the watch's name is longer than {NAME_LIMIT} characters (a deep folder's path "
            "is its default name): give a shorter one with --name"
        )
    for value, option in ((settle, "settle"), (scan, "scan"), (poll, "poll")):
        if not value > 0:
            raise InvalidRequest(f"{option} must be more than 0 seconds, not {value}")
    if mark not in MARKS:
        raise InvalidRequest(f"mark must be one of {', '.join(MARKS)}, not {mark!r}")
    return WatchSettings(folder, chosen, settle, scan, events, mark, poll)


def check_template(choice: TemplateChoice, folder: Path) -> None:
    """Refuse a template that is neither or both kinds, and outputs written into the
    watched folder itself (each would be taken as a new file: a loop)."""
    if bool(choice.presets) == (choice.batch is not None):
        raise InvalidRequest("give either --preset (a transcode) or --batch TEMPLATE, not both")
    if choice.batch is not None and not choice.batch.is_file():
        raise InvalidRequest(f"batch template {choice.batch} does not exist")
    output = (choice.output or Path.cwd()).resolve()
    if choice.presets and output == folder.resolve():
        raise InvalidRequest(
            f"the output folder {output} is the watched folder: every output would be taken "
            "as a new file; give -o another folder (done/ inside it will do)"
        )


WATCH_KEYS = frozenset(
    {"folder", "name", "preset", "presets", "output", "batch", "priority", "settle", "scan",
     "events", "mark"}
)  # fmt: skip


def load_config(path: Path) -> list[WatchConfig]:
    """The watches of a config file (see the module's docstring). Raises InvalidRequest
    naming the file, the table and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequest(f"watch config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read watch config {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"watch config {path} is not valid TOML: {exc}") from None
    tables = data.get("watch")
    if set(data) - {"watch"} or not isinstance(tables, list) or not tables:
        raise InvalidRequest(f"watch config {path}: write one [[watch]] table per folder")
    base = path.resolve().parent
    configs = []
    for index, table in enumerate(tables, start=1):
        try:
            configs.append(_watch(table, base))
        except InvalidRequest as exc:
            raise InvalidRequest(f"watch config {path}, watch {index}: {exc}") from None
    names = [c.settings.name for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidRequest(f"watch config {path}: two watches named {twice[0]}")
    return configs


def _watch(table: Any, base: Path) -> WatchConfig:
    if not isinstance(table, dict):
        raise InvalidRequest("not a table")
    unknown = sorted(set(table) - WATCH_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown key {unknown[0]!r}; a watch has {sorted(WATCH_KEYS)}")
    if not isinstance(table.get("folder"), str):
        raise InvalidRequest("folder must name the folder to watch")

    def path_of(key: str) -> Path | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidRequest(f"{key} must be a path")
        return base / Path(value).expanduser()

    folder = path_of("folder")
    assert folder is not None
    settings = watch_settings(
        folder,
        name=_text(table, "name"),
        settle=_seconds(table, "settle", DEFAULT_SETTLE),
        scan=_seconds(table, "scan", DEFAULT_SCAN),
        events=_flag(table, "events"),
        mark=_text(table, "mark") or "move",
    )
    choice = TemplateChoice(
        presets=tuple(_texts(table, "preset")),
        output=path_of("output"),
        preset_files=tuple(base / p for p in _texts(table, "presets")),
        batch=path_of("batch"),
        priority=_text(table, "priority") or "medium",
    )
    check_template(choice, settings.folder)
    return WatchConfig(settings, choice)


def _text(table: dict[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{key} must be text")
    return value


def _texts(table: dict[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{key} must be a name or a list of names")
    return value


def _seconds(table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{key} must be a number of seconds")
    return float(value)


def _flag(table: dict[str, Any], key: str) -> bool:
    value = table.get(key, True)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{key} must be true or false")
    return value
