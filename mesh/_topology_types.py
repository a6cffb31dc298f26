"""Errors and local types of the cluster topology (see :mod:`mesh.topology`); its bus
records (:class:`NodeInfo`, :class:`Route`) are defined in :mod:`mesh.bus_contract`."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from mesh.bus_contract import NodeInfo, NodeRole, Route

__all__ = [
    "HOPS_PARAM",
    "NoRoute",
    "NodeInfo",
    "NodeRole",
    "Route",
    "RouteLoop",
    "TopologyError",
    "TopologyEvent",
    "TopologyStatistics",
    "Upstream",
    "format_hop_path",
    "hop_path_from",
    "is_relay_link_path",
    "parse_hop_path",
    "with_hop_path",
]


class TopologyError(Exception):
    """Base class of resolution failures."""


class NoRoute(TopologyError):
    """No live node hosts the namespace (as far as the last known topology says)."""


class RouteLoop(TopologyError):
    """The request already passed through this node: answering it would loop."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a POP should subscribe for a namespace, and the hop path to send along."""

    node_id: str
    role: NodeRole
    region: str
    quic: str
    origin: str
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TopologyEvent:
    """A change in the local snapshot (from a bus message or a resync)."""

    event: str  # node_up | node_down | route_set | route_gone
    node_id: str = ""
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class TopologyStatistics:
    nodes: int
    routes: int
    hosted: int
    bus_up: bool
    heartbeats: int
    heartbeat_failures: int
    resyncs: int
    events: int
    snapshot_age: float


def format_hop_path(path: Sequence[str]) -> str:
    """The hop path as it travels between relays (comma-separated node ids)."""
    for node in path:
        if not node or "," in node:
            raise ValueError(f"invalid node id in hop path: {node!r}")
    return ",".join(path)


def parse_hop_path(text: str | bytes | None, *, max_len: int = 16) -> tuple[str, ...]:
    """Parse a received hop path; a malformed or absurdly long one raises ``ValueError``."""
    if text is None:
        return ()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("hop path is not UTF-8") from exc
    if not text:
        return ()
    parts = tuple(text.split(","))
    if len(parts) > max_len or any(not p or len(p) > 128 for p in parts):
        raise ValueError(f"malformed hop path {text[:64]!r}")
    return parts


HOPS_PARAM = "hops"


def with_hop_path(connection_path: str, path: Sequence[str]) -> str:
    """``connection_path`` with ``?hops=<hop path>`` set (how a relay tells its parent).

    The hop path travels on the upstream connection's path (the WebTransport
    CONNECT path or the PATH setup parameter), next to any ``token``.
    """
    parts = urllib.parse.urlsplit(connection_path)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in pairs if k != HOPS_PARAM]
    if path:
        query.append((HOPS_PARAM, format_hop_path(path)))
    encoded = urllib.parse.urlencode(query, safe=",")
    return urllib.parse.urlunsplit(parts._replace(query=encoded))


def hop_path_from(connection_path: str | bytes | None) -> tuple[str, ...]:
    """The hop path a downstream relay sent in ``?hops=``; ``ValueError`` when malformed."""
    if not connection_path:
        return ()
    if isinstance(connection_path, bytes):
        try:
            connection_path = connection_path.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("connection path is not ASCII") from exc
    query = urllib.parse.urlsplit(connection_path).query
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get(HOPS_PARAM, [])
    if len(values) > 1:
        raise ValueError("several hops parameters")
    return parse_hop_path(values[0]) if values else ()


def is_relay_link_path(connection_path: str | bytes | None) -> bool:
    """A session whose connection path carries a hop path is another relay's link
    (a POP's upstream, a child POP); a malformed one is not treated as a link."""
    try:
        return bool(hop_path_from(connection_path))
    except ValueError:
        return False
