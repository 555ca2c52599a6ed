"""Webhooks: a JSON POST per delivery, signed so the receiver knows it came from this
controller and was not changed on the way.

The signature is HMAC-SHA256 of the exact body bytes, keyed by the controller's webhook
secret, sent as ``X-Qfarm-Signature: sha256=HEX``; ``X-Qfarm-Event`` names the event
(``batch.done``, ``batch.failed``, ``batch.canceled``) and ``X-Qfarm-Delivery`` the
delivery's id, which is the same on every retry of one delivery (a receiver can drop a
repeat). Only a 2xx answer counts as delivered; redirects are not followed.

The secret is ``--webhook-secret`` (or ``QFARM_WEBHOOK_SECRET``), else one made at the
controller's first start and kept in its data dir's ``cluster/`` folder, readable by its
owner only (``qfarm webhook-secret`` prints it).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from qfarm import __version__
from qfarm.domain.notify import DeliveryFailed

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-Qfarm-Signature"
EVENT_HEADER = "X-Qfarm-Event"
DELIVERY_HEADER = "X-Qfarm-Delivery"
SECRET_ENV = "QFARM_WEBHOOK_SECRET"
SECRET_FILE = "webhook-secret"
# A receiver that has not answered in this long is retried later: a webhook is a short call.
WEBHOOK_TIMEOUT = 10.0


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the HMAC's hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` (what a receiver checks), compared in
    constant time."""
    return hmac.compare_digest(sign(secret, body), header.strip())


def secret_path(data_dir: Path) -> Path:
    return data_dir / "cluster" / SECRET_FILE


def stored_secret(data_dir: Path) -> str | None:
    """The secret kept in the data dir, if one was made."""
    path = secret_path(data_dir)
    return path.read_text().strip() if path.is_file() else None


def webhook_secret(data_dir: Path, given: str | None = None) -> str:
    """The secret webhooks are signed with: ``given``, else the data dir's, made (0600, in a
    0700 folder) if this is its first use."""
    if given:
        return given
    found = stored_secret(data_dir)
    if found:
        return found
    path = secret_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    made = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(made + "\n")
    os.replace(tmp, path)
    return made


class WebhookSender:
    """POSTs signed bodies, one client (and its connection pool) for the controller's life."""

    def __init__(self, secret: str, timeout: float = WEBHOOK_TIMEOUT) -> None:
        # httpx is imported here, not with the module: every controller imports this one,
        # and an embedded `qfarm run` that sends no webhook need not pay for loading it.
        import httpx

        self.secret = secret
        self._http: httpx.AsyncClient = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": f"qfarm/{__version__}"},
        )

    async def post(self, url: str, body: bytes, event: str, delivery_id: int) -> None:
        """Send ``body`` to ``url``; DeliveryFailed unless the answer is a 2xx."""
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event,
            DELIVERY_HEADER: str(delivery_id),
            SIGNATURE_HEADER: sign(self.secret, body),
        }
        import httpx

        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if not 200 <= response.status_code < 300:
            said = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
            raise DeliveryFailed(
                f"HTTP {response.status_code} from {url}" + (f": {said}" if said else "")
            )

    async def close(self) -> None:
        await self._http.aclose()
