"""Shutting one node out: the certificates the cluster CA issued to each node, the nodes
revoked, and the certificate revocation list (CRL) the scheduler checks in every handshake.

Revoking a node revokes every certificate issued to its name and bars its name and its
key from joining again, without a new CA for everyone else. (A machine that may be in
the wrong hands also holds the join token: rotate it too, ``qfarm join-token --rotate``,
or it could join under another name with a new key.) The records are JSON beside the CA,
readable by its owner only, written whole or not at all.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from qfarm.domain.errors import NotFound

ISSUED = "issued.json"
REVOKED = "revoked.json"
CRL = "crl.pem"
# The certificates kept per node name: a node gets a new one at every rejoin, and each of
# them is valid for a year, so all of a name's recent ones must be revoked together.
ISSUED_KEPT = 100
# A CRL is valid this long: the scheduler holds it in memory, and the controller writes a
# fresh one at each start and revocation.
CRL_DAYS = 3650


@dataclass(frozen=True)
class Issued:
    """What the CA signed for a node: the certificate's serial and the node's key."""

    serial: int
    key: str  # SHA-256 of the public key (DER), hex


def key_id(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> str:
    public = cert_or_csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public)
    return digest.finalize().hex()


def common_name(subject: x509.Name) -> str:
    found = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""


class Revocations:
    """The issued and revoked records of the CA in ``folder``."""

    def __init__(self, folder: Path, write: Any) -> None:
        self.folder = folder
        self._write = write  # writes a private file whole (pki._write_private)

    def _read(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.folder / name).read_text()))
        except (OSError, ValueError):
            return {}

    def record_issued(self, cert_pem: str) -> None:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        issued = self._read(ISSUED)
        kept = issued.setdefault(common_name(cert.subject), [])
        kept.append({"serial": cert.serial_number, "key": key_id(cert)})
        del kept[:-ISSUED_KEPT]
        self._write(self.folder / ISSUED, json.dumps(issued))

    def revoked(self) -> dict[str, Any]:
        """Node name -> {"at": when, "serials": [...], "keys": [...]}."""
        return self._read(REVOKED)

    def barred(self, csr: x509.CertificateSigningRequest) -> str | None:
        """Why a certificate request may not be signed: its name or key was revoked."""
        revoked = self.revoked()
        name = common_name(csr.subject)
        if name in revoked:
            return f"node {name} was revoked (qfarm node revoke)"
        key = key_id(csr)
        for other, record in revoked.items():
            if key in record.get("keys", ()):
                return f"this node's key is that of node {other}, which was revoked"
        return None

    def revoke(self, name: str) -> list[int]:
        """Revoke every certificate issued to ``name``; their serials. NotFound for a name
        the CA never issued a certificate to."""
        issued = self._read(ISSUED).get(name)
        if not issued:
            raise NotFound(f"no node {name} ever joined this cluster")
        revoked = self.revoked()
        record = revoked.setdefault(name, {"at": time.time(), "serials": [], "keys": []})
        record["serials"] = sorted({*record["serials"], *(i["serial"] for i in issued)})
        record["keys"] = sorted({*record["keys"], *(i["key"] for i in issued)})
        self._write(self.folder / REVOKED, json.dumps(revoked))
        return list(record["serials"])

    def crl(self, ca_pem: str, signer: Any) -> str | None:
        """The CRL of every revoked serial, signed by the CA and written beside it: that
        file's path; None while no node is revoked."""
        serials = sorted({s for r in self.revoked().values() for s in r["serials"]})
        if not serials:
            return None
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(now - datetime.timedelta(minutes=5))
            .next_update(now + datetime.timedelta(days=CRL_DAYS))
        )
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - datetime.timedelta(minutes=5))
                .build()
            )
        pem = builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        self._write(self.folder / CRL, pem.decode())
        return str(self.folder / CRL)
