"""One-line messages from openjd-model's errors.

openjd-model reports a refused template as pydantic's multi-line text (``N validation errors
for JobTemplate``, then ``loc -> loc:`` and a tab-indented message per error). A usage error in
qfarm is one line that names the file and the field, so the text is turned into
``file: steps[0].script.actions.onRun.command: Field required`` items here. Only the library's
text is read: its pydantic models are an implementation detail we must not reach into.
"""

from __future__ import annotations

import re

from qfarm.domain.errors import InvalidRequest

_HEADER = re.compile(r"^\d+ validation errors? for \w+$")
# A discriminator tag that pydantic puts in a location (``parameterDefinitions[0] -> INT``):
# field names in OpenJD are camelCase, tags are upper case (``INT``, ``CHUNK[INT]``).
_TAG = re.compile(r"^[A-Z][A-Z0-9_]*(\[[A-Z\[\]]+\])?$")


def _field_path(loc: str) -> str:
    parts = [p.strip() for p in loc.split("->")]
    kept = [p for p in parts if p and not _TAG.match(p)]
    return ".".join(kept) if kept else loc.strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def problems_from_text(source: str, text: str) -> list[str]:
    """Each error in openjd-model's text as ``source: field: message``, one line each."""
    lines = text.strip().splitlines()
    if lines and _HEADER.match(lines[0].strip()):
        lines = lines[1:]
    problems: list[str] = []
    field: str | None = None
    detail: list[str] = []

    def flush() -> None:
        if field is not None:
            message = _one_line(" ".join(detail)) or "invalid"
            problems.append(f"{source}: {field}: {message}" if field else f"{source}: {message}")

    for line in lines:
        if line.startswith(("\t", " ")) and field is not None:
            detail.append(line)
        elif line.rstrip().endswith(":") and not line.startswith(("\t", " ")):
            flush()
            field, detail = _field_path(line.rstrip()[:-1]), []
        else:
            # A root-level message (``JobTemplate: ...``) or plain text from a ValueError.
            flush()
            field, detail = "", [_strip_model_name(line)]
    flush()
    if not problems:
        problems.append(f"{source}: {_one_line(text) or 'invalid'}")
    return problems


def _strip_model_name(line: str) -> str:
    for model in ("JobTemplate: ", "EnvironmentTemplate: "):
        if line.startswith(model):
            return line[len(model) :]
    return line


def problems_from_crash(source: str, exc: BaseException) -> list[str]:
    """Problems when openjd-model failed while wording its own errors.

    Seen with openjd-model 0.14: a step dependency cycle is found by a validator of the whole
    template, whose error has an empty location, and the library's formatter then raises
    IndexError. The pydantic error it was wording is the exception's context; word it here.
    """
    context = exc.__context__
    errors = getattr(context, "errors", None)
    if context is None or not callable(errors):
        return [f"{source}: {_one_line(str(exc)) or type(exc).__name__}"]
    problems = []
    for error in errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.get("loc", ()))
        field = _field_path(loc.lstrip(".").replace(".", " -> ")) if loc else ""
        ctx = error.get("ctx") or {}
        message = str(ctx["error"]) if "error" in ctx else str(error.get("msg", "invalid"))
        message = _one_line(message)
        problems.append(f"{source}: {field}: {message}" if field else f"{source}: {message}")
    return problems


def invalid(problems: list[str]) -> InvalidRequest:
    """One InvalidRequest whose one-line message holds every problem, ``; `` between them."""
    return InvalidRequest("; ".join(problems))
