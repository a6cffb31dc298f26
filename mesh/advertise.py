"""Which address other nodes dial to reach a node (POP or origin) bound to a wildcard address.

A node bound to ``0.0.0.0`` (or ``::``) must still put one concrete ``HOST:PORT`` in its
node record (``--advertise``). Without the flag, :func:`advertised_host` picks, in order:

1. the address it listens on, when that is not a wildcard;
2. the local address of the interface that routes to the Redis server - the cluster's
   shared memory, so the network every node shares (a UDP ``connect`` only asks the
   kernel for the route; nothing is sent);
3. an address its host name resolves to, if that is not a loopback address (Debian
   maps the host name to ``127.0.1.1``, which no other machine can dial);
4. the loopback address when there is no Redis server on the network (``unix://`` or
   in-memory bus: every node runs on this machine).

When none applies it raises :class:`AdvertiseError`, whose message tells the operator
to pass ``--advertise`` - never a resolver traceback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["AdvertiseError", "advertised_host", "format_hostport"]

_WILDCARDS = ("0.0.0.0", "::", "")

# socket.getaddrinfo's shape: (family, type, proto, canonname, sockaddr) tuples
Resolve = Callable[..., Sequence[tuple[Any, Any, Any, Any, Any]]]


class AdvertiseError(ValueError):
    """No address other nodes can dial could be found: ``--advertise`` is needed."""


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def advertised_host(
    bind_host: str,
    redis: str | None,
    *,
    resolve: Resolve = socket.getaddrinfo,
    hostname: Callable[[], str] = socket.gethostname,
) -> str:
    """The host part of the address to advertise for a node listening on ``bind_host``."""
    if bind_host not in _WILDCARDS:
        return bind_host
    family = socket.AF_INET if bind_host == "0.0.0.0" else socket.AF_UNSPEC
    tried: list[str] = []
    redis_host, redis_port = _redis_address(redis)
    if redis_host is not None:
        found = _route_source(redis_host, redis_port, family, resolve)
        if found is not None:
            return found
        tried.append(f"no route found to the Redis host {redis_host!r}")
    name = hostname()
    found = _hostname_address(name, family, resolve)
    if found is not None:
        return found
    tried.append(f"the host name {name!r} does not resolve to a non-loopback address")
    if redis_host is None:
        # No Redis on the network: the cluster is this machine.
        return "127.0.0.1" if family == socket.AF_INET else "::1"
    raise AdvertiseError(
        f"listening on {bind_host or '*'} and cannot tell which address other nodes reach"
        f" this node at ({'; '.join(tried)}): pass --advertise HOST:PORT"
    )


def _redis_address(redis: str | None) -> tuple[str | None, int]:
    """Host and port of a network Redis URL; (None, 0) for unix://, memory: or no Redis."""
    if redis is None or not redis.startswith(("redis://", "rediss://")):
        return None, 0
    try:
        parts = urlsplit(redis)
        port = parts.port or 6379
    except ValueError:
        return None, 0
    return parts.hostname or None, port


def _route_source(host: str, port: int, family: int, resolve: Resolve) -> str | None:
    try:
        candidates = resolve(host, port, family, socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    for fam, _, _, _, address in candidates:
        try:
            with socket.socket(fam, socket.SOCK_DGRAM) as probe:
                probe.connect(address)
                local = str(probe.getsockname()[0])
        except OSError:
            continue
        if local not in _WILDCARDS:
            return local.split("%", 1)[0]  # no IPv6 zone id in a node record
    return None


def _hostname_address(name: str, family: int, resolve: Resolve) -> str | None:
    try:
        candidates = resolve(name, None, family, socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    for _, _, _, _, address in candidates:
        text = str(address[0]).split("%", 1)[0]
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if not ip.is_loopback and not ip.is_unspecified and not ip.is_link_local:
            return text
    return None
