"""Where a client keeps what ``qfarm login`` learned of a controller: its URL, a client
token and the cluster CA that its HTTPS certificate must chain to.

A client that has never seen a controller learns its CA over the connection itself, and
trusts it only if its fingerprint is the one the connection string carries (which the user
got from the controller's operator, out of band): no one installs a CA by hand, and a
machine in the middle that shows another CA is refused. The file is the user's alone
(0600), since it holds a token.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import platformdirs

from qfarm.domain.errors import InvalidRequest, JoinRefused
from qfarm.files import atomic_file
from qfarm.security.pki import fingerprint

# Where the saved logins are: this file, else login.json in the user's config dir.
LOGIN_FILE_ENV = "QFARM_LOGIN_FILE"
# A CA (PEM file) to trust for the controller's certificate besides the saved one.
CA_FILE_ENV = "QFARM_CA_FILE"
CA_PATH = "/api/v1/ca"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class SavedLogin:
    url: str
    token: str | None
    ca: str | None  # PEM of the cluster CA; None: the machine's own trusted CAs


def login_file() -> Path:
    chosen = os.environ.get(LOGIN_FILE_ENV)
    return Path(chosen) if chosen else Path(platformdirs.user_config_dir("qfarm")) / "login.json"


def saved_logins() -> tuple[str | None, dict[str, SavedLogin]]:
    """The URL logged in to last, and every saved login by URL."""
    try:
        data = json.loads(login_file().read_text())
    except (OSError, ValueError):
        return None, {}
    logins = {url: SavedLogin(**entry) for url, entry in data.get("logins", {}).items()}
    return data.get("current"), logins


def saved_for(url: str | None) -> SavedLogin | None:
    """The saved login of ``url``; with no URL, that of the controller logged in to last."""
    current, logins = saved_logins()
    return logins.get((url or current or "").rstrip("/"))


def save(login: SavedLogin) -> Path:
    """Keep ``login`` (replacing one of the same URL) and make it the current one."""
    _, logins = saved_logins()
    logins[login.url] = login
    path = login_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"current": login.url, "logins": {u: asdict(s) for u, s in logins.items()}}
    with atomic_file(path) as fh:
        os.fchmod(fh.fileno(), 0o600)  # before the token is in it
        fh.write(json.dumps(body, indent=2).encode())
    return path


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def pinned_ca(url: str, expected: str, timeout: float = 30.0) -> str:
    """The cluster CA that the controller at ``url`` shows, if its fingerprint is
    ``expected``; JoinRefused otherwise. Asked without checking the certificate, since
    the CA is what is not known yet: the fingerprint is the check, and nothing secret is
    sent."""
    try:
        answer = httpx.get(url.rstrip("/") + CA_PATH, verify=False, timeout=timeout)
        answer.raise_for_status()
        pem = answer.json()["ca"]
        shown = fingerprint(pem)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"cannot read the cluster CA of {url}: {exc}") from None
    if not hmac.compare_digest(shown.encode(), expected.encode()):
        raise JoinRefused(
            f"the controller at {url} shows a CA other than the one your token names: the "
            "token is for another cluster, or something between here and it is not it"
        )
    return str(pem)


def ca_file_text() -> str | None:
    """The CA of $QFARM_CA_FILE, if it is set."""
    chosen = os.environ.get(CA_FILE_ENV)
    if not chosen:
        return None
    try:
        return Path(chosen).read_text()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {CA_FILE_ENV} {chosen}: {exc.strerror}") from None
