"""A node's TLS certificate: the hashes it publishes for browsers, and its renewal.

A browser reaches a relay with a self-signed certificate only through WebTransport's
``serverCertificateHashes``, which accepts an ECDSA certificate valid for at most 14
days (:func:`moqt.aio.generate_self_signed` makes 13-day P-256 ones). So a node that
serves such a certificate publishes its SHA-256 in its node record
(``NodeInfo.certificate_hashes``, :mod:`mesh.bus_contract`), the control plane answers
it at ``GET /v1/relay/certificate`` (``control/relay_cert.py``), and a long-running node
renews the certificate before it expires:

* at ``renew_fraction`` (2/3) of its validity the node makes a new pair with the same
  names and writes it over the certificate files (key first, then certificate, each
  renamed into place, under an exclusive ``flock`` on ``<certificate>.lock``). The files
  stay the truth: another process serving the same files (the other node of
  ``clutchcall up``, the other ``--workers`` of a POP, the control plane's
  ``relay_certificate``, a CLI's ``--cafile``) sees the renewal, and a node that finds a
  newer certificate on disk adopts it instead of making its own;
* new connections get the new certificate (the aioquic server's ``QuicConfiguration``
  is reloaded in place, a picoquic server loads the files on its own thread,
  :meth:`PicoquicServer.reload_certificate`; connections already up keep theirs);
* the old hash stays listed after the new one until the old certificate expires, so a
  browser that read the hashes just before the renewal can still pin either.

A CA-issued certificate (not self-signed) or one a browser cannot pin is served as
given: nothing is published for it and it is never renewed. picoquic can swap a
listening server's certificate only where ``moqt.aio._picoquic_hooks`` works (x86-64
Linux, aiopquic 0.6.1; :func:`stack_reloads`); elsewhere a picoquic node publishes its
hash but does not renew: restart it before the logged expiry or give it a CA-issued one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import ipaddress
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from moqt.aio import generate_self_signed, server_configuration

if TYPE_CHECKING:  # aiopquic is loaded only for a picoquic node
    from moqt.aio import PicoquicServer

__all__ = [
    "MAX_PINNED_VALIDITY",
    "CertificateInfo",
    "NodeCertificate",
    "read_certificate",
    "stack_reloads",
]

#: Browsers refuse ``serverCertificateHashes`` for a certificate valid longer than this.
MAX_PINNED_VALIDITY = datetime.timedelta(days=14)
#: When a renewed certificate's disk copy is looked for while nothing is due.
_CHECK_EVERY = 60.0

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a node needs to know of the first certificate of a PEM file."""

    sha256: str  # hex of the SHA-256 of the DER certificate
    not_before: float  # unix seconds
    not_after: float
    ecdsa: bool
    self_signed: bool
    names: tuple[str, ...]  # subject alternative names (DNS names and IP addresses)

    @property
    def pinnable(self) -> bool:
        """Whether a browser accepts it by hash (ECDSA, validity <= 14 days)."""
        return (
            self.ecdsa and self.not_after - self.not_before <= MAX_PINNED_VALIDITY.total_seconds()
        )

    def renew_at(self, fraction: float) -> float:
        return self.not_before + fraction * (self.not_after - self.not_before)


def stack_reloads(stack: str) -> bool:
    """Whether a server on QUIC ``stack`` can take a renewed certificate while it runs."""
    if stack == "aioquic":
        return True
    from moqt.aio._picoquic_hooks import hooks

    return hooks() is not None


def read_certificate(path: Path) -> CertificateInfo:
    """Parse the first certificate of ``path``; ``ValueError``/``OSError`` when unreadable."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    public = cert.public_key()
    self_signed = cert.issuer == cert.subject
    if self_signed and isinstance(public, ec.EllipticCurvePublicKey):
        try:
            cert.verify_directly_issued_by(cert)
        except (InvalidSignature, ValueError, TypeError):
            self_signed = False
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*alt.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return CertificateInfo(
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        ecdsa=isinstance(public, ec.EllipticCurvePublicKey),
        self_signed=self_signed,
        names=tuple(names),
    )


class NodeCertificate:
    """The certificate a node serves (see the module docstring).

    ``renew=False`` (a QUIC stack that cannot reload) publishes but never renews.
    ``clock`` is the wall-clock time renewals are scheduled by (tests move it);
    ``valid_days`` the validity of renewed certificates.
    """

    def __init__(
        self,
        certificate: Path,
        private_key: Path,
        *,
        renew: bool = True,
        renew_fraction: float = 2 / 3,
        valid_days: int = 13,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        self.certificate = certificate
        self.private_key = private_key
        self._renew_fraction = renew_fraction
        self._valid_days = valid_days
        self._clock = clock
        self.current = read_certificate(certificate)
        self._previous: list[CertificateInfo] = []
        self.renewable = renew and self.current.self_signed and self.current.pinnable
        self.renewals = 0
        self.failures = 0
        self._wake = asyncio.Event()

    def hashes(self) -> tuple[str, ...]:
        """Hex SHA-256 a browser may pin: the served certificate's first, then the ones
        it replaced that are still valid. Empty for a certificate nobody pins."""
        now = self._clock()
        self._previous = [c for c in self._previous if c.not_after > now]
        served = [self.current, *self._previous]
        return tuple(dict.fromkeys(c.sha256 for c in served if c.pinnable and c.self_signed))

    @property
    def renew_at(self) -> float:
        return self.current.renew_at(self._renew_fraction)

    def log_start(self, log: structlog.typing.FilteringBoundLogger, stack: str) -> None:
        c = self.current
        expires = datetime.datetime.fromtimestamp(c.not_after, datetime.UTC).isoformat()
        if self.renewable:
            at = datetime.datetime.fromtimestamp(self.renew_at, datetime.UTC).isoformat()
            log.info("certificate_served", sha256=c.sha256, expires=expires, renews=at)
        elif c.self_signed and c.pinnable:
            log.warning(
                "certificate_not_renewed",
                sha256=c.sha256,
                expires=expires,
                quic_stack=stack,
                note="this QUIC stack cannot reload its certificate: restart before it expires",
            )

    def renew_if_due(self) -> bool:
        """Adopt a newer certificate found on disk, or renew when due; whether the
        served certificate changed. Blocking (file lock, key generation): run it in a
        thread. A failure is logged and counted; the current certificate stays."""
        if not self.renewable:
            return False
        try:
            with _locked(self.certificate):
                on_disk = read_certificate(self.certificate)
                if on_disk.sha256 != self.current.sha256 and on_disk.not_after > self._clock():
                    return self._adopt(on_disk, "adopted")
                if self._clock() < self.renew_at:
                    return False
                # Valid from the real now (clients check it), whatever ``clock`` says.
                pair = generate_self_signed(
                    _extra_names(self.current.names), valid_days=self._valid_days
                )
                # Both written before either is renamed: never a key without its certificate.
                key_tmp = _stage(self.private_key, pair.private_key_pem, 0o600)
                try:
                    cert_tmp = _stage(self.certificate, pair.certificate_pem, 0o644)
                except BaseException:
                    key_tmp.unlink(missing_ok=True)
                    raise
                try:
                    os.replace(key_tmp, self.private_key)
                    os.replace(cert_tmp, self.certificate)
                finally:
                    key_tmp.unlink(missing_ok=True)
                    cert_tmp.unlink(missing_ok=True)
                return self._adopt(read_certificate(self.certificate), "renewed")
        except (OSError, ValueError) as exc:
            self.failures += 1
            _log.warning("certificate_renewal_failed", path=str(self.certificate), error=str(exc))
            return False

    def _adopt(self, fresh: CertificateInfo, how: str) -> bool:
        old = self.current
        self._previous.insert(0, old)
        self.current = fresh
        self.renewable = fresh.self_signed and fresh.pinnable  # an operator's CA-issued one
        self.renewals += 1
        _log.info(
            f"certificate_{how}",
            sha256=fresh.sha256,
            previous=old.sha256,
            expires=datetime.datetime.fromtimestamp(fresh.not_after, datetime.UTC).isoformat(),
        )
        return True

    def load_into(self, configurations: Iterable[QuicConfiguration]) -> None:
        """Serve the current files on these aioquic server configurations (new connections
        only). Read under the renewal lock, and swapped in one step, so a configuration
        never holds a certificate with another's key."""
        with _locked(self.certificate):
            fresh = server_configuration(self.certificate, self.private_key)
        for configuration in configurations:
            configuration.certificate = fresh.certificate
            configuration.certificate_chain = fresh.certificate_chain
            configuration.private_key = fresh.private_key

    async def load_into_picoquic(self, servers: Iterable[PicoquicServer]) -> None:
        """Serve the current files on these running picoquic servers (new connections
        only), under the renewal lock so the pair read is one renewal's. ``ValueError``
        when picoquic refused them (each server keeps what it served)."""
        with _locked(self.certificate):
            for server in servers:
                await server.reload_certificate(self.certificate, self.private_key)

    def wake(self) -> None:
        """Check now (the clock was changed, or the files were replaced)."""
        self._wake.set()

    async def run(self, on_change: Callable[[], None]) -> None:
        """Renew when due (and adopt renewals made by others) until cancelled; calls
        ``on_change`` after the served certificate changed."""
        published = self.hashes()
        while self.renewable:
            failures = self.failures
            wait = min(max(self.renew_at - self._clock(), 0.0), _CHECK_EVERY)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 1.0)):
                    await self._wake.wait()
            changed = await asyncio.to_thread(self.renew_if_due)
            if self.failures > failures:
                await asyncio.sleep(_CHECK_EVERY)  # e.g. a read-only directory: retry later
            if changed or self.hashes() != published:  # renewed, or an old one expired
                published = self.hashes()
                on_change()


def _extra_names(names: tuple[str, ...]) -> list[str]:
    """The names to renew for (generate_self_signed adds the loopback ones itself)."""
    out = []
    for name in names:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(name).is_loopback:
                continue
        if name != "localhost":
            out.append(name)
    return out


@contextlib.contextmanager
def _locked(certificate: Path) -> Iterator[None]:
    with open(certificate.with_name(certificate.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stage(path: Path, data: bytes, mode: int) -> Path:
    """``data`` in a temporary file next to ``path`` (renamed over it by the caller)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)
