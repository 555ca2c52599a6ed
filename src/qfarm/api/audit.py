"""What the audit log calls each action taken through the API, and how an answered request
becomes an entry.

Every request that changes something (a method other than GET, HEAD and OPTIONS) on a
route named in :data:`ACTIONS` is recorded once answered, refused ones included (their
outcome is the 4xx status), with the actor the token gate found. A route that changes
something must be named here or in :data:`UNRECORDED` (tests/api/test_audit.py checks every
route), so a new one cannot slip past the log.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from starlette.convertors import Convertor
from starlette.routing import compile_path

from qfarm.api.common import API
from qfarm.store import AuditEntry

# Method and route path -> the action's name in the log, ``family.verb``.
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", f"{API}/batches"): "batch.submit",
    ("POST", f"{API}/openjd"): "batch.submit",
    ("DELETE", f"{API}/batches/{{batch_id}}"): "batch.remove",
    ("POST", f"{API}/batches/{{batch_id}}/cancel"): "batch.cancel",
    ("POST", f"{API}/batches/{{batch_id}}/pause"): "batch.pause",
    ("POST", f"{API}/batches/{{batch_id}}/suspend"): "batch.suspend",
    ("POST", f"{API}/batches/{{batch_id}}/resume"): "batch.resume",
    ("POST", f"{API}/batches/{{batch_id}}/resubmit"): "batch.resubmit",
    ("POST", f"{API}/batches/{{batch_id}}/segments/resubmit"): "batch.resubmit_segments",
    ("POST", f"{API}/batches/{{batch_id}}/segments/cancel"): "batch.cancel_segments",
    ("PUT", f"{API}/batches/{{batch_id}}/priority"): "batch.priority",
    ("DELETE", f"{API}/batches"): "batch.remove",
    ("POST", f"{API}/nodes/{{name}}/disable"): "node.disable",
    ("POST", f"{API}/nodes/{{name}}/enable"): "node.enable",
    ("POST", f"{API}/nodes/{{name}}/revoke"): "node.revoke",
    ("POST", f"{API}/join"): "node.join",
    ("PUT", f"{API}/limits/{{name}}"): "limit.set",
    ("DELETE", f"{API}/limits/{{name}}"): "limit.remove",
    ("POST", f"{API}/uploads"): "upload.create",
    ("DELETE", f"{API}/batches/{{batch_id}}/outputs/{{rel:path}}"): "output.remove",
    ("PUT", f"{API}/settings/retention"): "setting.retention",
    ("PUT", f"{API}/settings/notify"): "setting.notify",
    ("POST", f"{API}/watched"): "watch.take",
    ("POST", f"{API}/watched/{{file_id}}"): "watch.record",
}

# Changes left out of the log on purpose: the bytes of each file of an upload or an output
# (one request per file, thousands for an image sequence). The upload itself is logged when
# it is made, and the batch that uses it when it is submitted. And the outline of an OpenJD
# template: a POST only because a template does not fit in a query; it changes nothing.
UNRECORDED: set[tuple[str, str]] = {
    ("PUT", f"{API}/uploads/{{upload}}/files/{{rel:path}}"),
    ("PUT", f"{API}/batches/{{batch_id}}/outputs/{{rel:path}}"),
    ("POST", f"{API}/openjd/outline"),
}

READING = frozenset({"GET", "HEAD", "OPTIONS"})

# The actor of a request to a cluster that has no client tokens (open on loopback).
ANONYMOUS = "anonymous"

# What a path parameter names, for the entry's target: ``batch 12``, ``node render-04``.
TARGETS = {"batch_id": "batch", "name": "{family}", "file_id": "watched file"}


def _compiled() -> list[tuple[str, str, re.Pattern[str], dict[str, Convertor[Any]]]]:
    return [
        (method, template, *compile_path(template)[::2])
        for method, template in (*ACTIONS, *UNRECORDED)
    ]


# Matched here rather than read from the routed request: a request the token gate refuses
# never reaches the router, and it is logged too.
_TEMPLATES = _compiled()


def matched_route(request: Request) -> tuple[str, dict[str, Any]] | None:
    """The path template of ACTIONS or UNRECORDED that takes the request, with its path
    parameters."""
    path = request.url.path
    for method, template, pattern, convertors in _TEMPLATES:
        if method == request.method and (found := pattern.match(path)):
            params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
            return template, params
    return None


def entry_for(request: Request, status: int) -> AuditEntry | None:
    """The log entry for an answered request, or None for one that changes nothing (a
    read, a path no route takes, a file's bytes)."""
    if request.method in READING:
        return None
    matched = matched_route(request)
    if matched is None:
        return None
    template, params = matched
    action = ACTIONS.get((request.method, template))
    if action is None:
        return None
    state = request.state
    family = action.split(".")[0]
    target = getattr(state, "audit_target", None) or " ".join(
        f"{TARGETS.get(key, key).format(family=family)} {value}"
        for key, value in params.items()
        if key in TARGETS
    )
    detail: dict[str, Any] = {"address": request.client.host if request.client else ""}
    detail.update(getattr(state, "audit_detail", None) or {})
    return AuditEntry(
        actor=getattr(state, "actor", None) or "unauthenticated",
        action=action,
        target=target,
        outcome=status,
        detail=detail,
    )
