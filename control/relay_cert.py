"""``GET /v1/relay/certificate``: what a browser pins to reach a development relay.

A relay with a self-signed certificate (``clutchcall up``, tests, a laptop cluster) can
only be reached from a browser's WebTransport with ``serverCertificateHashes``: the
SHA-256 of the certificate's DER, which must be ECDSA and valid for at most 14 days
(:func:`moqt.aio.generate_self_signed` makes 13-day P-256 ones). The control plane
publishes that hash here, with the relay URL, for the browser SDK (``web/src/streams/live.ts``
reads it at the API base, the SDK script's origin or the page's). Public and CORS ``*``:
a certificate hash is no secret.

The certificate file (``ControlSettings.relay_certificate``) is re-read when it changes,
so a renewed certificate is published without a restart. Without one (a relay with a
CA-issued certificate needs no pinning) the answer is a 404 problem.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from control.errors import Problem
from control.settings import ControlSettings

__all__ = ["PinnedCertificate", "install_relay_certificate", "read_pinned_certificate"]

# Browsers refuse serverCertificateHashes for a certificate valid longer than this.
MAX_PINNED_VALIDITY = datetime.timedelta(days=14)


@dataclass(frozen=True, slots=True)
class PinnedCertificate:
    sha256: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime
    ecdsa: bool

    @property
    def pinnable(self) -> bool:
        """Whether a browser accepts this certificate by hash (ECDSA, validity <= 14 days)."""
        return self.ecdsa and self.not_after - self.not_before <= MAX_PINNED_VALIDITY


def read_pinned_certificate(path: Path) -> PinnedCertificate:
    """The first certificate of a PEM file: its SHA-256 (DER) and validity."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return PinnedCertificate(
        sha256=cert.fingerprint(hashes.SHA256()),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        ecdsa=isinstance(cert.public_key(), ec.EllipticCurvePublicKey),
    )


class _Cache:
    """The certificate as last read, keyed by the file's mtime and size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int] | None = None
        self._value: PinnedCertificate | None = None

    def get(self) -> PinnedCertificate:
        stat = os.stat(self.path)
        key = (stat.st_mtime_ns, stat.st_size)
        if key != self._key or self._value is None:
            self._value = read_pinned_certificate(self.path)
            self._key = key
        return self._value


def install_relay_certificate(app: FastAPI, settings: ControlSettings) -> None:
    """Register ``GET /v1/relay/certificate``."""
    cache = _Cache(Path(settings.relay_certificate)) if settings.relay_certificate else None

    @app.get(
        "/v1/relay/certificate",
        tags=["relay"],
        summary="The relay's self-signed certificate hash (WebTransport serverCertificateHashes)",
    )
    async def relay_certificate() -> JSONResponse:
        if cache is None:
            raise Problem(
                404,
                "no-pinned-certificate",
                "the relay uses a CA-issued certificate: nothing to pin",
                title="Not Found",
            )
        try:
            cert = cache.get()
        except (OSError, ValueError) as exc:
            raise Problem(
                503, "relay-certificate-unreadable", f"cannot read the relay certificate: {exc}"
            ) from None
        body: dict[str, Any] = {
            "relay_url": settings.relay_url,
            "publish_url": settings.publish_url,
            "certificate_hashes": [{"algorithm": "sha-256", "value": cert.sha256.hex()}],
            "not_after": cert.not_after.isoformat(),
            "pinnable": cert.pinnable,
        }
        return JSONResponse(
            body, headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
        )
