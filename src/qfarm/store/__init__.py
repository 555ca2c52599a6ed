"""The store: the only code that speaks SQL, and the source of truth for every state.

Every state change happens in one transaction and is checked against the model's tables
first, so a crash leaves either the old state or the new one, never half of each. What a
state becomes is the domain's to decide (:mod:`qfarm.domain.lifecycle`,
:mod:`qfarm.domain.steering`); the store persists it. The dispatcher calls in with lists
(all results of a tick, all dispatches of a tick) so a busy farm costs a few transactions
per tick rather than a few per segment.

SQLite runs in WAL mode, so readers (a progress bar, the API) never block the dispatcher.

:class:`Store` is assembled from one part per concern: :mod:`~qfarm.store.queries`
(reading), :mod:`~qfarm.store.dispatch`, :mod:`~qfarm.store.reports`,
:mod:`~qfarm.store.batches` (adding and steering), :mod:`~qfarm.store.chosen`
(chosen segments canceled), :mod:`~qfarm.store.estimates` (what
ETAs read), :mod:`~qfarm.store.limits`, :mod:`~qfarm.store.resizing` (adaptive chunks),
:mod:`~qfarm.store.failures` (the Failures view), :mod:`~qfarm.store.stats` (the charts),
:mod:`~qfarm.store.nodes`, :mod:`~qfarm.store.thumbnails` (pictures of what segments made),
:mod:`~qfarm.store.tokens` and :mod:`~qfarm.store.audit`, on one
engine (:mod:`~qfarm.store.base`).
"""

from __future__ import annotations

from qfarm.store.audit import AuditEntry, Auditing
from qfarm.store.batches import Batches
from qfarm.store.chosen import ChosenSegments
from qfarm.store.deliveries import Deliveries
from qfarm.store.dispatch import Dispatching
from qfarm.store.estimates import Estimating
from qfarm.store.failures import Failures
from qfarm.store.limits import Limits
from qfarm.store.nodes import Nodes
from qfarm.store.records import (
    Canceled,
    Candidate,
    Change,
    Dispatch,
    Page,
    PlannedJob,
    Progress,
    Result,
    Started,
    TokenInfo,
)
from qfarm.store.resizing import ResizeFacts, Resizing
from qfarm.store.settings import Settings
from qfarm.store.stats import Stats
from qfarm.store.tables import SCHEMA_VERSION, attempts
from qfarm.store.thumbnails import Thumbnails
from qfarm.store.tokens import Tokens
from qfarm.store.watched import Watched

__all__ = [
    "SCHEMA_VERSION",
    "AuditEntry",
    "Canceled",
    "Candidate",
    "Change",
    "Dispatch",
    "Page",
    "PlannedJob",
    "Progress",
    "ResizeFacts",
    "Result",
    "Started",
    "Store",
    "TokenInfo",
    "attempts",
]


class Store(
    Auditing,
    Batches,
    ChosenSegments,
    Deliveries,
    Dispatching,
    Estimating,
    Failures,
    Limits,
    Nodes,
    Resizing,
    Settings,
    Stats,
    Thumbnails,
    Tokens,
    Watched,
):
    """The store on one database URL (SQLite or PostgreSQL); see the module's docstring."""
