"""The data-plane face of a ``Streams`` client: ``publisher()`` and ``open_viewer()``.

``Streams(relay_url=...)`` publishes and watches through that relay;
``Streams(relay_url=..., token=...)`` watches the broadcast the playback token
grants (its unverified ``ns`` claim names the namespace; the POP verifies it).
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from typing import Any

from clutchcall.streams._errors import ConfigurationError
from clutchcall.streams._http import ClientConfig

__all__ = ["namespace_of_token", "relay_of", "viewer_target"]


def relay_of(config: ClientConfig) -> str:
    if not config.relay_url:
        raise ConfigurationError(
            "this Streams client has no relay_url: pass Streams(relay_url='https://...')"
        )
    return config.relay_url


def namespace_of_token(token: str) -> str:
    """The ``ns`` claim of a playback JWT (read, not verified: the POP verifies)."""
    try:
        payload = token.split(".")[1]
        claims: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error) as exc:
        raise ConfigurationError("the playback token is not a JWT") from exc
    ns = claims.get("ns") if isinstance(claims, dict) else None
    if not isinstance(ns, str) or not ns:
        raise ConfigurationError("the playback token names no namespace: pass namespace=")
    return ns


def viewer_target(
    config: ClientConfig, namespace: str | None, token: str | None
) -> tuple[str, str | None, str]:
    """(relay URL, token, namespace) for a viewer of this client."""
    relay = relay_of(config)
    token = token if token is not None else config.token
    if namespace is None:
        if token is None:
            raise ConfigurationError("pass namespace= (or a playback token=) to watch")
        namespace = namespace_of_token(token)
    base = urllib.parse.urlsplit(relay)
    return urllib.parse.urlunsplit((base.scheme, base.netloc, "", "", "")), token, namespace
