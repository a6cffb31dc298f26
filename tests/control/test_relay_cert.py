"""``GET /v1/relay/certificate``: the hash browsers pin for a self-signed relay (control/relay_cert.py)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mesh.bus import Bus
from moqt.aio import certificate_sha256, write_self_signed
from tests.control.conftest import open_api


async def test_publishes_the_relay_certificate_hash_and_follows_a_renewal(
    sqlite_url: str, redis_bus: Bus, tmp_path: Path
) -> None:
    cert, _key = write_self_signed(tmp_path, ["localhost"])
    async with open_api(sqlite_url, redis_bus, relay_certificate=str(cert)) as api:
        res = await api.client.get("/v1/relay/certificate")
        assert res.status_code == 200, res.text
        body = res.json()
        assert res.headers["access-control-allow-origin"] == "*"
        assert body["relay_url"] == "https://relay.test:4443"
        assert body["certificate_hashes"] == [
            {"algorithm": "sha-256", "value": certificate_sha256(cert.read_bytes()).hex()}
        ]
        assert body["pinnable"] is True  # ECDSA, 13 days: what Chromium accepts
        not_after = datetime.datetime.fromisoformat(body["not_after"])
        assert datetime.timedelta(days=12) < not_after - datetime.datetime.now(datetime.UTC)

        # A renewed certificate (new file content) is published without a restart.
        old = body["certificate_hashes"][0]["value"]
        renewed_dir = tmp_path / "renewed"
        renewed_dir.mkdir()
        renewed, _ = write_self_signed(renewed_dir, ["localhost"])
        cert.write_bytes(renewed.read_bytes())
        os.utime(cert, ns=(1, 1))  # a different mtime even on a coarse clock
        res = await api.client.get("/v1/relay/certificate")
        new = res.json()["certificate_hashes"][0]["value"]
        assert new != old
        assert new == certificate_sha256(renewed.read_bytes()).hex()


async def test_an_rsa_or_long_lived_certificate_is_reported_not_pinnable(
    sqlite_url: str, redis_bus: Bus, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "rsa.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    async with open_api(sqlite_url, redis_bus, relay_certificate=str(path)) as api:
        body = (await api.client.get("/v1/relay/certificate")).json()
        assert body["pinnable"] is False


async def test_without_a_certificate_or_with_a_broken_file_the_answer_is_a_problem(
    sqlite_url: str, redis_bus: Bus, tmp_path: Path
) -> None:
    async with open_api(sqlite_url, redis_bus) as api:
        res = await api.client.get("/v1/relay/certificate")
        assert res.status_code == 404
        assert res.headers["content-type"].startswith("application/problem+json")
        assert res.json()["type"].endswith("no-pinned-certificate")
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    async with open_api(sqlite_url, redis_bus, relay_certificate=str(broken)) as api:
        res = await api.client.get("/v1/relay/certificate")
        assert res.status_code == 503
        assert res.json()["type"].endswith("relay-certificate-unreadable")
