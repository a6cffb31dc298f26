"""mesh.certificates: the hashes a node publishes, renewal before expiry, adoption by others."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mesh.certificates import NodeCertificate, read_certificate
from moqt.aio import certificate_sha256, write_self_signed

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_renews_at_two_thirds_and_lists_the_old_hash_until_it_expires(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, ["pop1.test", "10.1.2.3"])
    clock = Clock()
    node = NodeCertificate(cert, key, clock=clock)
    first = certificate_sha256(cert.read_bytes()).hex()
    assert node.renewable and node.hashes() == (first,)
    assert node.renew_at - node.current.not_before == (2 / 3) * (
        node.current.not_after - node.current.not_before
    )

    clock.now = node.renew_at - 1
    assert node.renew_if_due() is False
    assert node.hashes() == (first,)

    old = node.current
    clock.now = node.renew_at + 1
    assert node.renew_if_due() is True
    second = certificate_sha256(cert.read_bytes()).hex()
    assert second != first
    assert node.hashes() == (second, first)  # new first; the old one still pinnable
    renewed = read_certificate(cert)
    assert renewed.pinnable and renewed.self_signed
    assert {"pop1.test", "10.1.2.3", "localhost", "127.0.0.1"} <= set(renewed.names)
    assert key.stat().st_mode & 0o777 == 0o600
    # The new key goes with the new certificate.
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    public = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]

    clock.now = old.not_after + 1  # the old certificate expired: no longer listed
    assert node.hashes() == (second,)


def test_a_second_process_adopts_the_renewal_instead_of_making_its_own(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    clock = Clock()
    a = NodeCertificate(cert, key, clock=clock)
    b = NodeCertificate(cert, key, clock=clock)
    first = a.current.sha256
    clock.now = a.renew_at + 1
    assert a.renew_if_due()
    assert b.renew_if_due()  # finds the newer file: adopts it
    assert b.current.sha256 == a.current.sha256 != first
    assert b.hashes() == a.hashes() == (a.current.sha256, first)


def test_a_ca_issued_certificate_is_neither_published_nor_renewed(tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pop.test")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    clock = Clock()
    node = NodeCertificate(cert, key, clock=clock)
    assert not node.current.self_signed
    assert not node.renewable and node.hashes() == ()
    clock.now += 9 * DAY
    assert node.renew_if_due() is False
    assert read_certificate(cert).sha256 == node.current.sha256  # untouched


def test_a_stack_that_cannot_reload_publishes_but_never_renews(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    clock = Clock()
    node = NodeCertificate(cert, key, renew=False, clock=clock)
    assert node.hashes() == (node.current.sha256,)
    clock.now = node.renew_at + 1
    assert node.renew_if_due() is False


def test_a_failed_renewal_keeps_the_certificate(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    clock = Clock()
    node = NodeCertificate(cert, key, clock=clock)
    before = node.current
    key.unlink()
    key.mkdir()  # the key cannot be replaced by a file now
    clock.now = node.renew_at + 1
    assert node.renew_if_due() is False
    assert node.failures == 1
    assert node.current == before and node.hashes() == (before.sha256,)
