"""Self-signed TLS certificates for development relays and tests.

A QUIC server always needs a certificate; when the operator gives none, the
relay generates one (ECDSA P-256, valid for ``localhost`` and the loopback
addresses plus any names given) and clients connect with verification off or
with this certificate as their CA file.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CertificatePair", "certificate_sha256", "generate_self_signed", "write_self_signed"]

_DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class CertificatePair:
    """PEM-encoded certificate and its unencrypted PKCS#8 private key."""

    certificate_pem: bytes
    private_key_pem: bytes

    @property
    def sha256(self) -> bytes:
        return certificate_sha256(self.certificate_pem)


def certificate_sha256(certificate_pem: bytes) -> bytes:
    """SHA-256 of the DER certificate: what a browser's WebTransport
    ``serverCertificateHashes`` pins for a self-signed certificate."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    return cert.fingerprint(hashes.SHA256())


def generate_self_signed(
    names: Iterable[str] = (), *, valid_days: int = 13, now: datetime.datetime | None = None
) -> CertificatePair:
    """Generate a self-signed ECDSA P-256 certificate for ``names`` (plus loopback names).

    The default validity stays under the 14 days browsers accept for a certificate
    pinned with WebTransport ``serverCertificateHashes``.
    """
    if valid_days <= 0:
        raise ValueError("valid_days must be positive")
    all_names = list(dict.fromkeys([*_DEFAULT_NAMES, *names]))
    alt_names: list[x509.GeneralName] = []
    for name in all_names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, all_names[0])])
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CertificatePair(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def write_self_signed(directory: Path, names: Iterable[str] = ()) -> tuple[Path, Path]:
    """Generate a certificate and write ``cert.pem``/``key.pem`` (mode 0600) into ``directory``."""
    pair = generate_self_signed(names)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(pair.certificate_pem)
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_bytes(pair.private_key_pem)
    return cert_path, key_path
