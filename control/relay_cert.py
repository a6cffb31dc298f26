"""``GET /v1/relay/certificate``: what a browser pins to reach a development relay.

A relay with a self-signed certificate (``clutchcall up``, tests, a laptop cluster) can
only be reached from a browser's WebTransport with ``serverCertificateHashes``: the
SHA-256 of the certificate's DER, which must be ECDSA and valid for at most 14 days
(:func:`moqt.aio.generate_self_signed` makes 13-day P-256 ones). The control plane
publishes that hash here, with the relay URL, for the browser SDK (``web/src/streams/live.ts``
reads it at the API base, the SDK script's origin or the page's). Public and CORS ``*``:
a certificate hash is no secret.

In a cluster every node publishes the hashes of its own certificate in its node record
(``certificate_hashes``, :mod:`mesh.bus_contract`; :mod:`mesh.certificates` renews it and
lists the old hash next to the new one until the old certificate expires). The answer is:

* ``?relay=https://host:port``: the hashes of the node advertising ``host:port``
  (404 ``unknown-relay`` when no live node does or ``relay`` names no host and port,
  404 ``no-pinned-certificate`` when the node publishes none);
* without ``relay``: the hashes of the nodes at ``relay_url`` and ``publish_url``; when
  neither is a node's address (a load balancer's name), the certificate file
  (``ControlSettings.relay_certificate``, re-read when it changes, as ``clutchcall up``
  sets it), else the hashes of every node that publishes some. ``relays`` lists every
  such node with its own hashes, except the nodes that drain (``draining`` in their
  record: they take no new sessions); their hashes are still answered (``?relay=``, the
  fallback), for a browser that reaches one before it is out of its load balancer.
  Nothing at all: 404 ``no-pinned-certificate``.

The live nodes are the members of the topology's node index (``clutchcall:index:nodes``),
their records read with one ``MGET``: Redis never scans its keyspace for this endpoint
(nodes of the version before the indexes, which are not in it, are not listed). That is
done at most once a second, whatever the request rate of this public endpoint.
"""

from __future__ import annotations

import datetime
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from control.errors import Problem
from control.settings import ControlSettings
from mesh.bus import Bus, BusUnavailable, Record
from mesh.bus_contract import NODES_INDEX_KEY, MalformedLog, NodeInfo, node_key

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


_NODES_TTL = 1.0
_MAX_RELAY = 512
_log = structlog.get_logger("control.relay_cert")


def _hostport(url: str) -> str | None:
    """``host:port`` of an https/moqt URL (or of a bare ``host:port``), lower-cased;
    ``None`` when it names no port."""
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else f"//{url}")
        port = parts.port
    except ValueError:  # "[" without "]", a port out of range
        return None
    if not parts.hostname or port is None:
        return None
    host = parts.hostname.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Nodes:
    """The live node records (node index + one MGET), re-read at most every ``_NODES_TTL``
    seconds."""

    def __init__(self) -> None:
        self._at = -_NODES_TTL
        self._nodes: list[NodeInfo] = []
        self._malformed = MalformedLog()

    async def get(self, bus: Bus) -> list[NodeInfo]:
        if time.monotonic() - self._at < _NODES_TTL:
            return self._nodes
        node_ids = sorted(set(await bus.index_members(NODES_INDEX_KEY)))
        keys = [node_key(n) for n in node_ids]
        try:
            records = await bus.get_many(keys)
        except (ValueError, TypeError):  # one undecodable record spoils the MGET
            records = [await self._read_one(bus, key) for key in keys]
        nodes = []
        for node_id, key, record in zip(node_ids, keys, records, strict=True):
            if record is None:  # expired between the index read and the MGET
                continue
            try:
                nodes.append(NodeInfo.from_record(node_id, record))
            except (ValueError, TypeError) as exc:
                self._malformed.report("bad_node_record", key, exc)
        self._nodes, self._at = nodes, time.monotonic()
        return nodes

    async def _read_one(self, bus: Bus, key: str) -> Record | None:
        try:
            return await bus.get(key)
        except (ValueError, TypeError) as exc:  # msgpack errors are ValueErrors
            self._malformed.report("bad_node_record", key, exc)
            return None


def _hashes(values: list[str]) -> list[dict[str, str]]:
    return [{"algorithm": "sha-256", "value": v} for v in dict.fromkeys(values)]


def _answer(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        body, headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
    )


def _no_pin(detail: str) -> Problem:
    return Problem(404, "no-pinned-certificate", detail, title="Not Found")


def install_relay_certificate(app: FastAPI, settings: ControlSettings) -> None:
    """Register ``GET /v1/relay/certificate``."""
    cache = _Cache(Path(settings.relay_certificate)) if settings.relay_certificate else None
    registry = _Nodes()

    def from_file() -> dict[str, Any]:
        assert cache is not None
        try:
            cert = cache.get()
        except (OSError, ValueError) as exc:
            raise Problem(
                503, "relay-certificate-unreadable", f"cannot read the relay certificate: {exc}"
            ) from None
        return {
            "certificate_hashes": _hashes([cert.sha256.hex()]),
            "not_after": cert.not_after.isoformat(),
            "pinnable": cert.pinnable,
        }

    @app.get(
        "/v1/relay/certificate",
        tags=["relay"],
        summary="The relay's self-signed certificate hash (WebTransport serverCertificateHashes)",
    )
    async def relay_certificate(request: Request, relay: str | None = None) -> JSONResponse:
        wanted = None
        if relay is not None:
            wanted = _hostport(relay) if len(relay) <= _MAX_RELAY else None
            if wanted is None:  # no node can advertise it
                raise Problem(
                    404,
                    "unknown-relay",
                    "relay must be a URL with a host and a port, e.g. https://pop1.example:4433",
                )
        nodes: list[NodeInfo] = []
        try:
            nodes = await registry.get(request.app.state.service.bus)
        except BusUnavailable as exc:
            _log.warning("relay_certificate_bus_unavailable", error=str(exc))
        pinned = [n for n in nodes if n.certificate_hashes]
        by_address = {_hostport(n.quic): n for n in nodes}
        body: dict[str, Any] = {"relay_url": relay or settings.relay_url}
        if relay is None:
            body["publish_url"] = settings.publish_url
        body["relays"] = [
            {
                "node": n.node_id,
                "role": n.role.value,
                "region": n.region,
                "quic": n.quic,
                "certificate_hashes": _hashes(list(n.certificate_hashes)),
            }
            for n in pinned
            if not n.draining  # takes no new sessions
        ]
        if wanted is not None:
            node = by_address.get(wanted)
            if node is None:
                if cache is not None and wanted == _hostport(settings.relay_url):
                    return _answer(body | from_file())
                raise Problem(404, "unknown-relay", f"no live node advertises {wanted}")
            if not node.certificate_hashes:
                raise _no_pin(f"{node.node_id} uses a CA-issued certificate: nothing to pin")
            return _answer(
                body
                | {"certificate_hashes": _hashes(list(node.certificate_hashes)), "pinnable": True}
            )
        ours = [
            by_address[a]
            for a in (_hostport(settings.relay_url), _hostport(settings.publish_url or ""))
            if a in by_address
        ]
        values = [h for n in ours for h in n.certificate_hashes]
        if not values and cache is not None:
            return _answer(body | from_file())
        if not ours:
            values = [h for n in pinned for h in n.certificate_hashes]
        if not values:
            raise _no_pin("the relays use CA-issued certificates: nothing to pin")
        return _answer(body | {"certificate_hashes": _hashes(values), "pinnable": True})
