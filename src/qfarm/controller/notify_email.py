"""Email over SMTP: the server ``qfarm controller --smtp`` names, and one message sent.

``smtp://USER@HOST:PORT`` speaks STARTTLS and refuses a server that does not offer it
(unless ``--smtp-insecure``: plain SMTP, for a relay on the controller's machine);
``smtps://`` is TLS from the first byte. The certificate is verified against the system's
CAs, or ``--smtp-ca FILE`` for a private one. The password comes from the environment
(``QFARM_SMTP_PASSWORD``), never from the command line, where ``ps`` would show it.

smtplib blocks: :func:`send_email` runs it in a thread, so the controller's event loop (the
dispatcher's) never waits on a mail server.
"""

from __future__ import annotations

import asyncio
import enum
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.notify import DeliveryFailed

PASSWORD_ENV = "QFARM_SMTP_PASSWORD"
# One conversation with the server, connect to QUIT.
SMTP_TIMEOUT = 30.0


class SmtpSecurity(enum.StrEnum):
    STARTTLS = "starttls"  # smtp://: plain first, then STARTTLS before anything else
    TLS = "tls"  # smtps://: TLS from the start
    NONE = "none"  # smtp:// with --smtp-insecure: in the clear


@dataclass(frozen=True)
class SmtpServer:
    """Where and how the controller sends its email."""

    host: str
    port: int
    security: SmtpSecurity
    sender: str
    user: str = ""
    password: str = ""
    ca_file: Path | None = None
    timeout: float = SMTP_TIMEOUT

    def describe(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{self.port} ({self.security.value})"


def parse_smtp(
    url: str,
    *,
    insecure: bool = False,
    sender: str | None = None,
    ca_file: Path | None = None,
    password: str | None = None,
) -> SmtpServer:
    """The server of ``--smtp URL`` (InvalidRequest naming what is wrong)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise InvalidRequest(f"--smtp {url!r} is not smtp://[USER@]HOST[:PORT] or smtps://...")
    if parts.password:
        raise InvalidRequest(
            f"--smtp {parts.hostname}: give the password in ${PASSWORD_ENV}, not in the URL"
        )
    try:
        port = parts.port or (465 if scheme == "smtps" else 587)
    except ValueError:
        raise InvalidRequest(f"--smtp {url!r}: the port is no number") from None
    if scheme == "smtps":
        security = SmtpSecurity.TLS
    else:
        security = SmtpSecurity.NONE if insecure else SmtpSecurity.STARTTLS
    user = unquote(parts.username or "")
    if user and not password:
        raise InvalidRequest(f"--smtp names the user {user!r}: set ${PASSWORD_ENV} to its password")
    if ca_file is not None and not ca_file.is_file():
        raise InvalidRequest(f"--smtp-ca {ca_file}: no such file")
    if not sender:
        sender = user if "@" in user else f"qfarm@{socket.gethostname()}"
    return SmtpServer(
        host=parts.hostname,
        port=port,
        security=security,
        sender=sender,
        user=user,
        password=password or "",
        ca_file=ca_file,
    )


def message(server: SmtpServer, to: str, subject: str, text: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = server.sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=server.sender.rpartition("@")[2] or None)
    # Tells autoresponders (out of office) not to answer a machine.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(text)
    return mail


def _tls(server: SmtpServer) -> ssl.SSLContext:
    cafile = str(server.ca_file) if server.ca_file else None
    return ssl.create_default_context(cafile=cafile)


def _send(server: SmtpServer, mail: EmailMessage) -> None:
    """One conversation: connect, secure it, log in, send, quit (blocks)."""
    smtp: smtplib.SMTP
    if server.security is SmtpSecurity.TLS:
        smtp = smtplib.SMTP_SSL(
            server.host, server.port, timeout=server.timeout, context=_tls(server)
        )
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    with smtp:
        smtp.ehlo()
        if server.security is SmtpSecurity.STARTTLS:
            if not smtp.has_extn("starttls"):
                raise DeliveryFailed(
                    f"the SMTP server {server.host}:{server.port} offers no STARTTLS "
                    "(qfarm controller --smtp-insecure sends in the clear)"
                )
            smtp.starttls(context=_tls(server))
            smtp.ehlo()
        if server.user:
            smtp.login(server.user, server.password)
        smtp.send_message(mail)


def send_now(server: SmtpServer, to: str, subject: str, text: str) -> None:
    """Send one message (blocks); DeliveryFailed with a one-line reason if it was not
    taken."""
    try:
        _send(server, message(server, to, subject, text))
    except DeliveryFailed:
        raise
    except smtplib.SMTPResponseException as exc:
        said = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise DeliveryFailed(f"SMTP {exc.smtp_code} from {server.host}: {said}".strip()) from None
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
        raise DeliveryFailed(
            f"SMTP {server.host}:{server.port}: {type(exc).__name__}: {exc}"
        ) from None


async def send_email(server: SmtpServer, to: str, subject: str, text: str) -> None:
    """:func:`send_now` in a thread: the event loop goes on meanwhile."""
    await asyncio.to_thread(send_now, server, to, subject, text)
