"""The SMTP transport against real servers on loopback: nothing goes in the clear unless
asked for, a certificate of an unknown CA is refused, and --smtp is read strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosmtpd.controller import Controller as SmtpController

from qfarm.controller.notify_email import SmtpSecurity, parse_smtp, send_now
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.notify import DeliveryFailed
from tests.controller.notify_support import (
    SMTP_PASSWORD,
    SMTP_USER,
    Mailbox,
    free_port,
    smtp_server,
)


def test_a_server_without_starttls_gets_nothing_unless_insecure(tmp_path: Path) -> None:
    box = Mailbox(free_port(), tmp_path / "unused.pem")
    server = SmtpController(box, hostname="127.0.0.1", port=box.port)
    server.start()
    try:
        strict = parse_smtp(f"smtp://127.0.0.1:{box.port}")
        with pytest.raises(DeliveryFailed, match="offers no STARTTLS"):
            send_now(strict, "ops@example.com", "subject", "text")
        assert box.messages == []
        relay = parse_smtp(f"smtp://127.0.0.1:{box.port}", insecure=True)
        send_now(relay, "ops@example.com", "qfarm: batch 1 done", "text")
    finally:
        server.stop()
    assert [m["Subject"] for m in box.messages] == ["qfarm: batch 1 done"]


def test_a_certificate_of_an_unknown_ca_is_refused(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as box:
        url = f"smtp://{SMTP_USER}@127.0.0.1:{box.port}"
        unknown_ca = parse_smtp(url, password=SMTP_PASSWORD)
        with pytest.raises(DeliveryFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
            send_now(unknown_ca, "ops@example.com", "subject", "text")
    assert box.messages == []


def test_smtp_urls_are_read_strictly(tmp_path: Path) -> None:
    plain = parse_smtp("smtp://mail.example.com")
    assert (plain.port, plain.security, plain.user) == (587, SmtpSecurity.STARTTLS, "")
    assert plain.sender.startswith("qfarm@")
    tls = parse_smtp("smtps://farm%40example.com@mail.example.com", password="pw")
    assert (tls.port, tls.security, tls.user, tls.sender) == (
        465, SmtpSecurity.TLS, "farm@example.com", "farm@example.com",
    )  # fmt: skip
    for bad, said in (
        ("mail.example.com", "is not smtp://"),
        ("smtp://farm:secret@mail.example.com", "QFARM_SMTP_PASSWORD"),
        ("smtp://farm@mail.example.com", "QFARM_SMTP_PASSWORD"),
        ("smtp://mail.example.com:port", "no number"),
    ):
        with pytest.raises(InvalidRequest, match=said):
            parse_smtp(bad)
    with pytest.raises(InvalidRequest, match="no such file"):
        parse_smtp("smtp://mail.example.com", ca_file=tmp_path / "missing.pem")
