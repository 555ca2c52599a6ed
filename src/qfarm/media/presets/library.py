"""Presets by name, as clients and the controller find them: the built-in ones, then users'
TOML files (the config folder's ``presets/*.toml``, ``QFARM_PRESETS``, files given on the
command line), how a client sends a preset so nodes never need the file, and whether the
cluster's ffmpeg has a preset's encoders.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.media.presets.builtin import BUILTIN
from qfarm.media.presets.definition import Preset, parse
from qfarm.media.tool import ToolMissing, ffmpeg, has_encoder

PRESETS_ENV = "QFARM_PRESETS"  # extra preset files, separated like PATH


def load_file(path: str | Path) -> dict[str, Preset]:
    """The presets of one TOML file. Raises InvalidRequest naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequest(f"preset file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"preset file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"preset file {path} is not valid TOML: {exc}") from None
    table = data.get("preset")
    if not isinstance(table, dict) or set(data) - {"preset"}:
        raise InvalidRequest(f"preset file {path}: write each preset as [preset.NAME]")
    found: dict[str, Preset] = {}
    for name, body in table.items():
        if not isinstance(body, dict):
            raise InvalidRequest(f"preset file {path}: preset.{name} must be a table")
        found[name] = parse(name, body, f"preset file {path}, preset {name!r}", str(path))
    return found


def user_preset_files(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Preset files to read: the config dir's ``presets/*.toml``, ``QFARM_PRESETS``, then
    ``extra`` (later files win on equal names)."""
    from platformdirs import user_config_dir

    files = sorted((Path(user_config_dir("qfarm")) / "presets").glob("*.toml"))
    files += [Path(p) for p in os.environ.get(PRESETS_ENV, "").split(os.pathsep) if p]
    files += [Path(p) for p in extra]
    return files


def available(extra: Iterable[str | Path] = ()) -> dict[str, Preset]:
    """Every preset by name: built in, then users' (which may replace a built-in one)."""
    presets = dict(BUILTIN)
    for path in user_preset_files(extra):
        presets.update(load_file(path))
    return presets


def resolve(value: str | Mapping[str, Any], known: Mapping[str, Preset] | None = None) -> Preset:
    """A preset from a name or a full definition (a table in a batch file, or what a
    client resolved from its own files)."""
    if isinstance(value, Mapping):
        name = str(value.get("name") or "custom")
        return parse(name, value, f"preset {name!r}", str(value.get("source") or "inline"))
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"preset must be a name or a table, not {value!r}")
    presets = BUILTIN if known is None else known
    if value not in presets:
        raise InvalidRequest(
            f"unknown preset {value!r}: known are {', '.join(sorted(presets))} "
            "(qfarm presets lists them)"
        )
    return presets[value]


def for_request(value: Any, extra: Iterable[str | Path] = ()) -> str | dict[str, Any]:
    """A preset as a client sends it: a built-in one by name, a user's (or an inline
    table) as its whole definition, so the controller and nodes never need the file."""
    if isinstance(value, str):
        preset = resolve(value, available(extra))
        return value if preset.source == "built in" else preset.to_dict()
    return resolve(value).to_dict()


def presets_for_listing(extra: Iterable[str | Path] = ()) -> list[dict[str, Any]]:
    """Rows for ``qfarm presets``: each preset, and whether this machine's ffmpeg has its
    encoders."""
    rows = []
    for preset in available(extra).values():
        missing = [e for e in preset.encoders() if not has_encoder(e)]
        rows.append(
            {
                **preset.to_dict(),
                "kind": preset.kind,
                "extension": preset.extension,
                "available": not missing,
                "missing_encoders": missing,
            }
        )
    return rows


def check_encoders(preset: Preset) -> None:
    """Refuse a preset whose encoders this cluster's ffmpeg lacks (every node runs the same
    one). A controller without a working ffmpeg leaves the check to the nodes."""
    try:
        tool = ffmpeg()
    except ToolMissing:
        return
    missing = [e for e in preset.encoders() if e not in tool.encoders]
    if missing:
        raise InvalidRequest(
            f"preset {preset.name!r} needs the {missing[0]} encoder, which ffmpeg "
            f"{tool.version} does not have"
        )
