"""Path mapping: a node that sees the shared storage under another path.

A studio's controller and clients may know a volume as ``/Volumes/media`` while a Linux node
mounts it at ``/mnt/media``. ``qfarm node --path-map /Volumes/media=/mnt/media`` rewrites
every path of the segments it runs: a string that starts with a mapped prefix, or an option
whose value does (``--out=/Volumes/media/x``). The longest matching prefix wins, and a prefix
matches only whole folder names (``/Volumes/media2`` is not under ``/Volumes/media``).
"""

from __future__ import annotations

from typing import Any

from qfarm.domain.errors import InvalidRequest


def parse(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.startswith("/") or not target.startswith("/"):
            raise InvalidRequest(
                f"--path-map {pair!r} is not FROM=TO with two absolute paths, "
                "e.g. /Volumes/media=/mnt/media"
            )
        mapping[source.rstrip("/") or "/"] = target.rstrip("/") or "/"
    return mapping


def map_path(text: str, mapping: dict[str, str]) -> str:
    """``text`` with a mapped prefix replaced (at its start, or after an ``=``)."""
    name, sep, value = text.partition("=")
    if sep and not text.startswith("/"):
        return f"{name}={map_path(value, mapping)}"
    for source in sorted(mapping, key=len, reverse=True):
        if text == source or text.startswith(source + "/"):
            return mapping[source] + text[len(source) :]
    return text


def map_all(value: Any, mapping: dict[str, str]) -> Any:
    """Every string inside ``value`` (dicts, lists, strings) mapped."""
    if not mapping:
        return value
    if isinstance(value, str):
        return map_path(value, mapping)
    if isinstance(value, list):
        return [map_all(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: map_all(v, mapping) for k, v in value.items()}
    return value
