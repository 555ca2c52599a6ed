"""Client tokens: made on the controller, shown once, kept only as a digest.

A token is a random secret (``qf_`` and 43 URL-safe characters, 256 bits). The store keeps
its SHA-256 digest, so a copy of the database does not give access; a request's token is
hashed and looked up. A shared secret given with ``--token`` / ``QFARM_TOKEN`` is accepted
too (compared in constant time), for clusters set up that way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qfarm.domain.errors import InvalidRequest

if TYPE_CHECKING:  # the store (SQLAlchemy) is the controller's: client commands need it not
    from qfarm.store import Store

PREFIX = "qf_"
# What a token opens: a client token the whole API (and /metrics); a metrics token only
# GET /metrics, for a Prometheus server's scrape config.
CLIENT_SCOPE = "client"
METRICS_SCOPE = "metrics"
SCOPES = (CLIENT_SCOPE, METRICS_SCOPE)
# last_used_at is written at most this often per token: a busy client must not turn every
# request into a database write.
TOUCH_SECONDS = 60.0
# The actor of a request made with the shared --token secret, which names no one.
SHARED_ACTOR = "shared token"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(store: Store, name: str, scope: str = CLIENT_SCOPE) -> tuple[int, str]:
    """A new token named ``name`` that opens ``scope``: its id, and the secret (which
    nothing keeps)."""
    if scope not in SCOPES:
        raise InvalidRequest(f"unknown token scope {scope!r}: use one of {', '.join(SCOPES)}")
    secret = new_secret()
    return store.add_token(name, digest(secret), scope), secret


@dataclass(frozen=True)
class Admitted:
    """Who a request's token says it comes from: the token's name (what the audit log
    names as the actor) and id; the shared secret has no id."""

    actor: str
    token_id: int | None


class Gate:
    """Decides whether a request's bearer token lets it in."""

    def __init__(self, store: Store, shared: str | None = None) -> None:
        self.store = store
        self.shared = shared
        self._touched: dict[int, float] = {}
        self._required: tuple[float, bool] = (0.0, False)

    def required(self) -> bool:
        """Tokens are needed once the cluster has any (or a shared one is set). Asked of
        the store at most once a second."""
        if self.shared:
            return True
        checked, answer = self._required
        now = time.monotonic()
        if now - checked >= 1.0:
            answer = self.store.has_active_tokens()
            self._required = (now, answer)
        return answer

    def allows(self, secret: str, scope: str = CLIENT_SCOPE) -> bool:
        """Whether ``secret`` opens ``scope``: a client token (or the shared secret) opens
        every scope, a metrics token only its own."""
        return self.admit(secret, scope) is not None

    def admit(self, secret: str, scope: str = CLIENT_SCOPE) -> Admitted | None:
        """Who ``secret`` is, if it opens ``scope`` (see :meth:`allows`); None otherwise."""
        if not secret:
            return None
        if self.shared and hmac.compare_digest(secret.encode(), self.shared.encode()):
            return Admitted(SHARED_ACTOR, None)
        token = self.store.token_for(digest(secret))
        if token is None or token.scope not in (CLIENT_SCOPE, scope):
            return None
        now = time.time()
        if now - self._touched.get(token.id, 0.0) >= TOUCH_SECONDS:
            self._touched[token.id] = now
            self.store.token_used(token.id, now)
        return Admitted(token.name, token.id)
