"""The cluster's keys: a certificate authority made at the controller's first start, the
certificates it issues, and the join token that lets a node ask for one.

Node-to-controller traffic (Dask's comms) runs over mutual TLS. The scheduler accepts only
peers with a certificate from the cluster CA, so a machine that reaches the scheduler port
but never joined is refused during the handshake, before it can send a message; and a node
checks the scheduler's certificate against the same CA, so it trusts only its own controller.

A node gets its certificate by *joining*: it makes its own key, sends a certificate
request over the controller's HTTP API with a proof that it holds the join secret (an HMAC
of the request, keyed by the secret), and gets back a certificate and the CA. The secret
itself never crosses the network, so a plain-HTTP join gives an eavesdropper nothing it
can use; the join token also carries the CA's fingerprint, and the node accepts the answer
only from the CA with that fingerprint.

Nothing here imports the engine: :class:`TlsFiles` names the files (or PEM texts) and the
engine adapter turns them into Dask's ``Security``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qfarm.domain.errors import InvalidRequest, JoinRefused, QfarmError
from qfarm.security.revocation import Revocations

TOKEN_PREFIX = "qfj1"
CA_DAYS = 3650
# Node certificates are renewed whenever a node rejoins (each time its worker restarts);
# the controller's own is made afresh at each start and lives as long as the CA.
NODE_CERT_DAYS = 365
NAME_MAX = 64  # a certificate's common name holds at most 64 characters

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
JOIN_SECRET = "join-secret"
CONTROLLER_CERT = "controller.pem"
CONTROLLER_KEY = "controller-key.pem"
API_CERT = "api.pem"
API_KEY = "api-key.pem"
NODE_CERT = "node.pem"
NODE_KEY = "node-key.pem"


@dataclass(frozen=True)
class TlsFiles:
    """What one side of the cluster needs for mutual TLS: the CA to check peers against,
    and its own certificate and key. Each is a file path or PEM text."""

    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class JoinToken:
    fingerprint: str  # of the cluster CA's certificate
    secret: str

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}.{self.fingerprint}.{self.secret}"


def parse_join_token(text: str) -> JoinToken:
    """``qfj1.<CA fingerprint>.<secret>`` -> :class:`JoinToken`, or a usage error."""
    parts = text.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not all(parts[1:]):
        raise InvalidRequest(
            "the join token is not of the form qfj1.<fingerprint>.<secret>: "
            "copy it whole from `qfarm join-token` on the controller's machine"
        )
    return JoinToken(parts[1], parts[2])


LOGIN_PREFIX = "qfc1"


@dataclass(frozen=True)
class Login:
    """What a client needs to reach a controller over HTTPS it has never seen: the cluster
    CA's fingerprint (so that the CA the controller shows can be checked) and the client
    token. Written ``qfc1.<fingerprint>.<token>``, as ``qfarm login`` takes it."""

    fingerprint: str | None
    token: str

    def __str__(self) -> str:
        return f"{LOGIN_PREFIX}.{self.fingerprint}.{self.token}"


def parse_login(text: str) -> Login:
    """A connection string (``qfc1.<fingerprint>.<token>``) or a bare client token (no
    fingerprint: the controller's certificate must then be one this machine trusts)."""
    parts = text.strip().split(".")
    if parts[0] != LOGIN_PREFIX:
        if len(parts) != 1 or not parts[0]:
            raise InvalidRequest("the token is neither a client token nor qfc1.<fp>.<token>")
        return Login(None, parts[0])
    if len(parts) != 3 or not all(parts[1:]):
        raise InvalidRequest(
            "the connection string is not of the form qfc1.<fingerprint>.<token>: copy it "
            "whole from the controller's first start or `qfarm token create`"
        )
    return Login(parts[1], parts[2])


def connection_string(authority: ClusterAuthority, token: str) -> str:
    return str(Login(fingerprint(authority.ca_cert), token))


def fingerprint(cert_pem: str | bytes) -> str:
    """The SHA-256 of a certificate's DER form, URL-safe base64 without padding."""
    data = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    der = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def join_proof(secret: str, csr_pem: str) -> str:
    """What a node sends instead of the secret: an HMAC of its certificate request."""
    return hmac.new(secret.encode(), csr_pem.encode(), hashlib.sha256).hexdigest()


# ----------------------------------------------------------------------------- keys


def new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: made in a millisecond (an RSA key takes a tenth of a second), and every TLS
    # library speaks it.
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise QfarmError("the cluster key is not an EC key")
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # A CA signs certificates; an end entity signs handshakes and agrees keys.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca() -> tuple[str, str]:
    """A new cluster CA: its certificate and its key, as PEM."""
    key = new_key()
    name = _name(f"qfarm cluster CA {secrets.token_hex(4)}")
    now = _now()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert_pem(cert), key_pem(key)


def make_csr(key: ec.EllipticCurvePrivateKey, name: str) -> str:
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(name[:NAME_MAX]))
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def issue(
    ca_cert: str,
    ca_key: str,
    csr_pem: str,
    days: int = NODE_CERT_DAYS,
    names: Sequence[str] = (),
) -> str:
    """Sign a certificate request with the CA: a certificate for both ends of a TLS
    connection (a node listens for the scheduler, and connects to it). ``names``: the host
    names and addresses it serves as (the API's HTTPS certificate)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise InvalidRequest("the certificate request is not a PEM CSR") from None
    if not csr.is_signature_valid:
        raise InvalidRequest("the certificate request's signature is wrong")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise InvalidRequest("the certificate request must be for an EC key")
    ca = x509.load_pem_x509_certificate(ca_cert.encode())
    signer = load_key(ca_key)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=days), ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    if names:
        cert = cert.add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
    return cert_pem(cert.sign(signer, hashes.SHA256()))


def _alt_names(names: Sequence[str]) -> list[x509.GeneralName]:
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    return alt


def check_issued(ca_pem: str, expected: str, cert: str, key: ec.EllipticCurvePrivateKey) -> None:
    """A node's check of a join answer: the CA is the one its token names, and the
    certificate was signed by that CA for the node's own key."""
    try:
        got = fingerprint(ca_pem)
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        issued = x509.load_pem_x509_certificate(cert.encode())
    except ValueError:
        raise JoinRefused("the controller's join answer holds no valid certificate") from None
    if not hmac.compare_digest(got.encode(), expected.encode()):
        raise JoinRefused(
            "the controller's CA is not the one the join token names: this token is for "
            "another cluster, or something between here and the controller is not it"
        )
    try:
        issued.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise JoinRefused("the node certificate was not issued by the cluster CA") from None
    if issued.public_key() != key.public_key():
        raise JoinRefused("the node certificate is for another key")


# ------------------------------------------------------------------ files on disk


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


@dataclass(frozen=True)
class ClusterAuthority:
    """The cluster CA and join secret, kept in the controller's data dir (``cluster/``,
    readable by its owner only). Delete that folder to start a new cluster: every node
    must then join again with the new token."""

    folder: Path

    @classmethod
    def open(cls, data_dir: Path) -> ClusterAuthority:
        """The controller's CA, made (with a join secret) if this is its first start."""
        folder = _private_dir(data_dir / "cluster")
        if not (folder / CA_CERT).exists() or not (folder / CA_KEY).exists():
            cert, key = make_ca()
            _write_private(folder / CA_KEY, key)
            _write_private(folder / CA_CERT, cert)
        if not (folder / JOIN_SECRET).exists():
            _write_private(folder / JOIN_SECRET, secrets.token_urlsafe(32) + "\n")
        return cls(folder)

    @staticmethod
    def exists(data_dir: Path) -> bool:
        return (data_dir / "cluster" / CA_CERT).exists()

    @classmethod
    def existing(cls, data_dir: Path) -> ClusterAuthority:
        """The CA of a controller that has started here before, or a usage error."""
        if not cls.exists(data_dir):
            raise InvalidRequest(
                f"no cluster keys in {data_dir}: start `qfarm controller` here once first "
                "(or give the controller's --data-dir)"
            )
        return cls(data_dir / "cluster")

    @property
    def ca_cert(self) -> str:
        return (self.folder / CA_CERT).read_text()

    def join_token(self) -> JoinToken:
        # Read at every join, so `qfarm join-token --rotate` takes effect at once.
        secret = (self.folder / JOIN_SECRET).read_text().strip()
        return JoinToken(fingerprint(self.ca_cert), secret)

    def rotate_join_secret(self) -> JoinToken:
        """A new join secret: tokens given out before no longer let a node join (nodes
        that joined keep their certificates)."""
        _write_private(self.folder / JOIN_SECRET, secrets.token_urlsafe(32) + "\n")
        return self.join_token()

    def admit(self, csr_pem: str, proof: str) -> str:
        """A certificate for a joining node whose proof shows it holds the join secret."""
        expected = join_proof(self.join_token().secret, csr_pem)
        # Bytes: compare_digest refuses str with non-ASCII characters, which a request may hold.
        if not hmac.compare_digest(expected.encode(), proof.encode()):
            raise JoinRefused(
                "the join token is wrong or was replaced: get the current one with "
                "`qfarm join-token` on the controller's machine"
            )
        try:
            barred = self.revocations.barred(x509.load_pem_x509_csr(csr_pem.encode()))
        except ValueError:
            raise InvalidRequest("the certificate request is not a PEM CSR") from None
        if barred:
            raise JoinRefused(f"{barred}: it may not join this cluster again")
        cert = issue(self.ca_cert, (self.folder / CA_KEY).read_text(), csr_pem)
        self.revocations.record_issued(cert)
        return cert

    @property
    def revocations(self) -> Revocations:
        return Revocations(self.folder, _write_private)

    def revoke(self, name: str) -> str:
        """Revoke node ``name``'s certificates and bar it from joining again; the file of
        the new CRL that the scheduler must check. NotFound for a node that never joined."""
        self.revocations.revoke(name)
        crl = self.crl()
        assert crl is not None
        return crl

    def crl(self) -> str | None:
        """The file of the current CRL (PEM, written afresh), or None while no node is
        revoked."""
        signer = load_key((self.folder / CA_KEY).read_text())
        return self.revocations.crl(self.ca_cert, signer)

    def controller_files(self) -> TlsFiles:
        """A certificate for the controller's scheduler and client, written beside the CA.
        It is made afresh at each start, with a new key, and valid as long as the CA: a
        controller that runs for years keeps accepting nodes."""
        key = new_key()
        cert = issue(
            self.ca_cert,
            (self.folder / CA_KEY).read_text(),
            make_csr(key, "qfarm controller"),
            days=CA_DAYS,
        )
        _write_private(self.folder / CONTROLLER_KEY, key_pem(key))
        _write_private(self.folder / CONTROLLER_CERT, cert)
        return TlsFiles(
            str(self.folder / CA_CERT),
            str(self.folder / CONTROLLER_CERT),
            str(self.folder / CONTROLLER_KEY),
        )

    def api_files(self, names: Sequence[str]) -> TlsFiles:
        """The HTTPS certificate of the controller's API for the host ``names`` (names and
        addresses) it is reached at, made afresh at each start (the names may change)."""
        key = new_key()
        cert = issue(
            self.ca_cert,
            (self.folder / CA_KEY).read_text(),
            make_csr(key, "qfarm controller API"),
            days=CA_DAYS,
            names=names,
        )
        _write_private(self.folder / API_KEY, key_pem(key))
        _write_private(self.folder / API_CERT, cert)
        return TlsFiles(
            str(self.folder / CA_CERT), str(self.folder / API_CERT), str(self.folder / API_KEY)
        )


def node_key(folder: Path) -> ec.EllipticCurvePrivateKey:
    """The node's private key, made once and kept in its own data dir; it never leaves
    the node."""
    path = _private_dir(folder) / NODE_KEY
    if path.exists():
        return load_key(path.read_text())
    key = new_key()
    _write_private(path, key_pem(key))
    return key


def save_node_files(folder: Path, ca_pem: str, cert: str) -> TlsFiles:
    _write_private(folder / CA_CERT, ca_pem)
    _write_private(folder / NODE_CERT, cert)
    return TlsFiles(str(folder / CA_CERT), str(folder / NODE_CERT), str(folder / NODE_KEY))


def ephemeral() -> TlsFiles:
    """Keys that live only in memory, for an embedded cluster (``qfarm run``): its
    scheduler and worker processes share one certificate, which nothing else has, so no
    other program on the machine can connect to them."""
    ca, ca_key = make_ca()
    key = new_key()
    cert = issue(ca, ca_key, make_csr(key, "qfarm embedded"), days=CA_DAYS)
    return TlsFiles(ca, cert, key_pem(key))
