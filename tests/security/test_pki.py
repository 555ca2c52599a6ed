"""The cluster CA, certificates and join tokens, as pure logic (the processes that use them
are in tests/test_join.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from qfarm.domain.errors import InvalidRequest, JoinRefused
from qfarm.security import pki


def test_the_first_start_makes_a_ca_and_a_join_secret_only_its_owner_reads(
    tmp_path: Path,
) -> None:
    assert not pki.ClusterAuthority.exists(tmp_path)
    authority = pki.ClusterAuthority.open(tmp_path)
    assert pki.ClusterAuthority.exists(tmp_path)
    folder = tmp_path / "cluster"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (pki.CA_KEY, pki.JOIN_SECRET):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(authority.ca_cert.encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # A second start keeps the same CA and token: nodes that joined stay in.
    again = pki.ClusterAuthority.open(tmp_path)
    assert again.ca_cert == authority.ca_cert
    assert str(again.join_token()) == str(authority.join_token())


def test_a_join_token_round_trips_and_carries_the_ca_fingerprint(tmp_path: Path) -> None:
    authority = pki.ClusterAuthority.open(tmp_path)
    token = authority.join_token()
    text = str(token)
    assert text.startswith("qfj1.")
    assert pki.parse_join_token(f"  {text}\n") == token
    assert token.fingerprint == pki.fingerprint(authority.ca_cert)
    assert token.secret not in authority.ca_cert


@pytest.mark.parametrize(
    "text", ["", "qfj1", "qfj1.abc", "qfj2.abc.def", "qfj1..def", "qfj1.abc.", "a.b.c.d"]
)
def test_a_malformed_join_token_is_a_usage_error(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"qfj1\.<fingerprint>\.<secret>"):
        pki.parse_join_token(text)


def test_a_node_with_the_secret_is_issued_a_certificate_it_can_check(tmp_path: Path) -> None:
    authority = pki.ClusterAuthority.open(tmp_path)
    token = authority.join_token()
    key = pki.new_key()
    csr = pki.make_csr(key, "render-07")
    cert = authority.admit(csr, pki.join_proof(token.secret, csr))
    pki.check_issued(authority.ca_cert, token.fingerprint, cert, key)
    issued = x509.load_pem_x509_certificate(cert.encode())
    assert issued.subject.rfc4514_string() == "CN=render-07"
    usages = issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usages} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}


def test_a_wrong_or_rotated_secret_is_refused(tmp_path: Path) -> None:
    authority = pki.ClusterAuthority.open(tmp_path)
    old = authority.join_token()
    key = pki.new_key()
    csr = pki.make_csr(key, "node")
    with pytest.raises(JoinRefused, match="join token is wrong"):
        authority.admit(csr, pki.join_proof(old.secret + "x", csr))
    new = authority.rotate_join_secret()
    assert new.secret != old.secret and new.fingerprint == old.fingerprint
    with pytest.raises(JoinRefused):
        authority.admit(csr, pki.join_proof(old.secret, csr))
    authority.admit(csr, pki.join_proof(new.secret, csr))


def test_a_proof_binds_the_request_it_was_made_for(tmp_path: Path) -> None:
    # Someone who saw a node's join on the wire cannot reuse its proof for a key of their own.
    authority = pki.ClusterAuthority.open(tmp_path)
    secret = authority.join_token().secret
    seen = pki.make_csr(pki.new_key(), "node")
    theirs = pki.make_csr(pki.new_key(), "node")
    with pytest.raises(JoinRefused):
        authority.admit(theirs, pki.join_proof(secret, seen))


def test_a_node_refuses_an_answer_from_another_ca(tmp_path: Path) -> None:
    ours = pki.ClusterAuthority.open(tmp_path / "ours")
    theirs = pki.ClusterAuthority.open(tmp_path / "theirs")
    key = pki.new_key()
    csr = pki.make_csr(key, "node")
    cert = theirs.admit(csr, pki.join_proof(theirs.join_token().secret, csr))
    with pytest.raises(JoinRefused, match="not the one the join token names"):
        pki.check_issued(theirs.ca_cert, ours.join_token().fingerprint, cert, key)
    # Our CA's certificate sent with a certificate another CA signed: refused too.
    with pytest.raises(JoinRefused, match="not issued by the cluster CA"):
        pki.check_issued(ours.ca_cert, ours.join_token().fingerprint, cert, key)


def test_a_node_refuses_a_certificate_for_another_key(tmp_path: Path) -> None:
    authority = pki.ClusterAuthority.open(tmp_path)
    token = authority.join_token()
    other = pki.make_csr(pki.new_key(), "node")
    cert = authority.admit(other, pki.join_proof(token.secret, other))
    with pytest.raises(JoinRefused, match="another key"):
        pki.check_issued(authority.ca_cert, token.fingerprint, cert, pki.new_key())


def test_a_request_that_is_not_a_csr_is_refused(tmp_path: Path) -> None:
    authority = pki.ClusterAuthority.open(tmp_path)
    secret = authority.join_token().secret
    with pytest.raises(InvalidRequest, match="not a PEM CSR"):
        authority.admit("hello", pki.join_proof(secret, "hello"))


def test_a_node_keeps_its_key_across_joins(tmp_path: Path) -> None:
    first = pki.node_key(tmp_path / "tls")
    assert stat.S_IMODE((tmp_path / "tls" / pki.NODE_KEY).stat().st_mode) == 0o600
    assert pki.node_key(tmp_path / "tls").public_key() == first.public_key()


def test_existing_without_a_controller_start_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="start `qfarm controller` here once first"):
        pki.ClusterAuthority.existing(tmp_path)


@given(st.text(max_size=200))
def test_parsing_any_text_as_a_join_token_gives_a_token_or_a_usage_error(text: str) -> None:
    try:
        token = pki.parse_join_token(text)
    except InvalidRequest:
        return
    assert str(token) == text.strip()


def test_a_proof_with_non_ascii_characters_is_refused_not_a_crash(tmp_path: Path) -> None:
    # Found by the API fuzzer: compare_digest raises TypeError on such str.
    authority = pki.ClusterAuthority.open(tmp_path)
    csr = pki.make_csr(pki.new_key(), "node")
    with pytest.raises(JoinRefused):
        authority.admit(csr, "é" * 64)
    with pytest.raises(JoinRefused):
        pki.check_issued(authority.ca_cert, "é", authority.ca_cert, pki.new_key())
