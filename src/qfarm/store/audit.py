"""The audit log: every action taken on the cluster, who took it and when.

Rows are only ever added; reading filters by time, actor and action, newest first. What an
action is called and who its actor is are the API's to say (:mod:`qfarm.api.audit`); the
store keeps what it is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from qfarm.store.base import StoreBase
from qfarm.store.rows import Row
from qfarm.store.tables import audit

# At most this many entries in one answer: the log of a busy farm grows without end.
MOST_ENTRIES = 10_000


@dataclass(frozen=True)
class AuditEntry:
    """One action: ``actor`` (a client token's name, ``local USER`` for commands run on
    the controller's machine), ``action`` (``batch.cancel``), ``target`` (``batch 12``) and
    ``outcome`` (the HTTP status it was answered with: 2xx done, 4xx refused)."""

    actor: str
    action: str
    target: str
    outcome: int
    at: float = field(default_factory=time.time)
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0


class Auditing(StoreBase):
    def record_action(self, entry: AuditEntry) -> None:
        with self._tx() as conn:
            conn.execute(
                audit.insert().values(
                    at=entry.at,
                    actor=entry.actor,
                    action=entry.action,
                    target=entry.target,
                    outcome=entry.outcome,
                    detail=entry.detail or None,
                )
            )

    def audit_entries(
        self,
        *,
        since: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Newest first. ``action`` matches a whole name (``batch.cancel``) or a family
        (``batch``: every ``batch.*``)."""
        query = select(audit).order_by(audit.c.at.desc(), audit.c.id.desc())
        if since is not None:
            query = query.where(audit.c.at >= since)
        if actor:
            query = query.where(audit.c.actor == actor)
        if action:
            query = query.where(
                (audit.c.action == action) | audit.c.action.startswith(f"{action}.")
            )
        query = query.limit(max(1, min(limit, MOST_ENTRIES)))
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def prune_audit(self, before: float) -> int:
        """Forget entries older than ``before`` (epoch seconds); how many went."""
        with self._tx() as conn:
            return conn.execute(delete(audit).where(audit.c.at < before)).rowcount


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        at=row.at,
        detail=row.detail or {},
        id=row.id,
    )
