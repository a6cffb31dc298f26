"""Data-plane connection settings shared by the viewer and the publisher.

A relay URL is ``https://host:port/...`` (WebTransport) or ``moqt://host:port/...``
(raw QUIC). A playback URL adds the broadcast's namespace as its path and the
signed token as ``?token=``: ``https://pop:4443/stream/org_x/lv_y?token=<jwt>``.

TLS: certificates are verified against the system store unless ``cafile`` names
a PEM bundle, or ``verify=False`` is given. For local development with
self-signed certificates, ``CLUTCHCALL_CAFILE=<pem>`` or ``CLUTCHCALL_INSECURE=1``
in the environment do the same without touching the code (what lets the seed's
recipe run unchanged against a local stack).
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from clutchcall.streams._errors import ConfigurationError

__all__ = [
    "PlaybackTarget",
    "TlsOptions",
    "namespace_from_text",
    "parse_playback_url",
    "relay_endpoint",
    "resolve_tls",
    "unreachable_detail",
]

_SCHEMES = ("https", "moqt")
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class TlsOptions:
    verify: bool
    cafile: str | None


def unreachable_detail(url: str, exc: BaseException) -> str:
    """Why a connection to ``url`` failed, and what to do when the certificate is the cause."""
    if getattr(exc, "untrusted_certificate", False):
        return (
            f"{getattr(exc, 'address', url)} presented a certificate this machine does not "
            f"trust ({getattr(exc, 'reason', '') or 'certificate refused'}): set "
            "CLUTCHCALL_CAFILE=<the relay's certificate PEM> (`clutchcall up` prints its path) "
            "or pass cafile="
        )
    # A TimeoutError is truthy but says nothing: str() it.
    return f"cannot reach {url}: {str(exc) or 'no answer (timeout)'}"


def resolve_tls(verify: bool | None = None, cafile: str | None = None) -> TlsOptions:
    """Explicit arguments win; then ``CLUTCHCALL_CAFILE`` / ``CLUTCHCALL_INSECURE``."""
    if cafile is None:
        cafile = os.environ.get("CLUTCHCALL_CAFILE") or None
    if cafile is not None and not os.path.isfile(cafile):
        raise ConfigurationError(f"cafile {cafile!r} does not exist")
    if verify is None:
        verify = os.environ.get("CLUTCHCALL_INSECURE", "").strip().lower() not in _TRUE
    return TlsOptions(verify=verify, cafile=cafile)


@dataclass(frozen=True, slots=True)
class PlaybackTarget:
    """Where a viewer connects, and which broadcast it asks for."""

    url: str  # what moqt.aio.connect gets (path and ?token= kept: the POP reads them)
    namespace: tuple[bytes, ...]
    token: str | None

    @property
    def namespace_text(self) -> str:
        return "/".join(part.decode() for part in self.namespace)


def namespace_from_text(text: str) -> tuple[bytes, ...]:
    """``stream/org_x/lv_y`` -> ``(b"stream", b"org_x", b"lv_y")`` (a clear error if empty)."""
    parts = tuple(p for p in text.strip("/").split("/") if p)
    if not parts:
        raise ConfigurationError(f"{text!r} is not a MoQT namespace (e.g. stream/<org>/<id>)")
    if len(parts) > 32:
        raise ConfigurationError("a namespace has at most 32 fields")
    return tuple(p.encode("utf-8") for p in parts)


def _split(url: str) -> urllib.parse.SplitResult:
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"expected a relay URL, got {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigurationError(
            f"{url!r}: use an https:// (WebTransport) or moqt:// (raw QUIC) URL"
        )
    if not parts.hostname:
        raise ConfigurationError(f"{url!r}: the URL has no host")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigurationError(f"{url!r}: {exc}") from exc
    return parts


def parse_playback_url(
    url: str, *, token: str | None = None, namespace: str | None = None
) -> PlaybackTarget:
    """A signed playback URL (namespace in the path, ``?token=``), or a relay URL plus
    ``namespace`` (and ``token``, sent as ``?token=`` on the connection path)."""
    parts = _split(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    url_tokens = query.get("token", [])
    if len(url_tokens) > 1:
        raise ConfigurationError("the URL carries more than one token")
    url_token = url_tokens[0] if url_tokens else None
    if url_token is not None and token is not None and url_token != token:
        raise ConfigurationError("the URL's ?token= and token= differ")
    final_token = url_token or token
    ns_text = namespace if namespace is not None else urllib.parse.unquote(parts.path)
    ns = namespace_from_text(ns_text)
    path = "/" + "/".join(urllib.parse.quote(p.decode(), safe="") for p in ns)
    if final_token is not None:
        query["token"] = [final_token]
    query_text = urllib.parse.urlencode(query, doseq=True)
    connect_url = urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc, path, query_text, "")
    )
    return PlaybackTarget(connect_url, ns, final_token)


def relay_endpoint(url: str) -> str:
    """The relay's URL for a publisher (path and query kept as given)."""
    _split(url)
    return url
