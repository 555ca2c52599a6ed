"""``qfarm presets``: the transcode presets there are, built in and the user's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from qfarm.cli.app import app
from qfarm.cli.common import fail_usage, out, print_json
from qfarm.cli.options import JsonOpt, PresetFileOpt
from qfarm.domain.errors import InvalidRequest
from qfarm.media import presets as presets_mod


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
