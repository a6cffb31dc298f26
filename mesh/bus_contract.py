"""The cluster bus contract in code: every key and channel name, every record type.

The control plane, the origins and the POPs meet only here (``docs/bus-contract.md``
says what each record means and who writes it). No other module spells a
``clutchcall:`` name (``tests/mesh/test_bus_contract.py`` checks the source tree):
they build keys with the functions below and read records with the ``decode``
class methods, which raise :class:`MalformedRecord` (a ``ValueError``) for anything
that is not a well-formed record. A reader logs a malformed record once per key
(:class:`MalformedLog`) and ignores it; a record never crashes a node.

Values are msgpack maps (:mod:`mesh.bus`); ``encode()`` gives the map to write.
Times are unix seconds.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

import structlog

__all__ = [
    "IDEMPOTENCY_PREFIX",
    "INPUT_STATUSES",
    "INPUT_STATUS_CHANNEL",
    "INPUT_STATUS_PREFIX",
    "JWKS_KEY",
    "NODES_INDEX_KEY",
    "NODE_PREFIX",
    "PREFIX",
    "REVOCATIONS_CHANNEL",
    "REVOKED_PREFIX",
    "ROUTES_INDEX_KEY",
    "ROUTE_PREFIX",
    "SIGNING_KEYS_CHANNEL",
    "STREAMKEYS_CHANNEL",
    "STREAMKEY_PREFIX",
    "TOPOLOGY_CHANNEL",
    "InputStatusRecord",
    "JwksRecord",
    "MalformedLog",
    "MalformedRecord",
    "NodeInfo",
    "NodeRole",
    "Revocation",
    "Route",
    "SigningKeysEvent",
    "StreamKeyEvent",
    "StreamKeyRecord",
    "TopologyMessage",
    "idempotency_record_key",
    "input_status_key",
    "node_key",
    "revoked_key",
    "route_key",
    "streamkey_key",
]

#: Every name below starts with this.
PREFIX: Final = "clutchcall:"

# -- channels (pub/sub) ----------------------------------------------------------------
STREAMKEYS_CHANNEL: Final = PREFIX + "streamkeys"  # control -> origins: StreamKeyEvent
REVOCATIONS_CHANNEL: Final = PREFIX + "revocations"  # control -> POPs: Revocation
SIGNING_KEYS_CHANNEL: Final = PREFIX + "signing-keys"  # control -> POPs: SigningKeysEvent
TOPOLOGY_CHANNEL: Final = PREFIX + "topology"  # nodes -> nodes: TopologyMessage
INPUT_STATUS_CHANNEL: Final = PREFIX + "input-status"  # origins -> control: InputStatusRecord

# -- records (key prefixes; the functions below build the full keys) ---------------------
STREAMKEY_PREFIX: Final = PREFIX + "streamkey:"  # + external input id: StreamKeyRecord
JWKS_KEY: Final = PREFIX + "jwks"  # JwksRecord
REVOKED_PREFIX: Final = PREFIX + "revoked:"  # + "jti:<jti>" | "sub:<sub>": Revocation
NODE_PREFIX: Final = PREFIX + "node:"  # + node id: NodeInfo
ROUTE_PREFIX: Final = PREFIX + "route:"  # + namespace: Route
INPUT_STATUS_PREFIX: Final = INPUT_STATUS_CHANNEL + ":"  # + external input id: InputStatusRecord

# -- indexes (sorted sets: member -> expiry in ms of the Redis clock; mesh.bus index_*) ---
NODES_INDEX_KEY: Final = PREFIX + "index:nodes"  # node ids with a live NodeInfo record
ROUTES_INDEX_KEY: Final = PREFIX + "index:routes"  # namespaces with a live Route record
# Control plane replicas among themselves (control/idempotency.py): a POST's Idempotency-Key
# claim, then its sealed response. + "<org id>:<sha256 hex of the key>".
IDEMPOTENCY_PREFIX: Final = PREFIX + "idempotency:"

INPUT_STATUSES: Final = frozenset({"idle", "live", "error"})
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_log = structlog.get_logger(__name__)


def streamkey_key(external_input_id: str) -> str:
    return STREAMKEY_PREFIX + external_input_id


def revoked_key(kind: str, value: str) -> str:
    return f"{REVOKED_PREFIX}{kind}:{value}"


def node_key(node_id: str) -> str:
    return NODE_PREFIX + node_id


def route_key(namespace: str) -> str:
    return ROUTE_PREFIX + namespace


def input_status_key(external_input_id: str) -> str:
    return INPUT_STATUS_PREFIX + external_input_id


def idempotency_record_key(org_id: str, key_digest: str) -> str:
    """The record of one org's Idempotency-Key (``key_digest``: sha256 hex of the key)."""
    return f"{IDEMPOTENCY_PREFIX}{org_id}:{key_digest}"


class MalformedRecord(ValueError):
    """A record or message read from the bus is not what the contract says."""


class MalformedLog:
    """Logs each malformed record once per (event, key), so a bad record that a reader
    meets at every resync is one warning, not one per heartbeat. Bounded."""

    def __init__(self, limit: int = 4096) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._limit = limit
        self.count = 0

    def report(self, event: str, key: str, error: object, **fields: object) -> None:
        self.count += 1
        if (event, key) in self._seen:
            return
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add((event, key))
        _log.warning(event, key=key, error=str(error)[:200], **fields)


def _map(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise MalformedRecord(f"{what} is not a map")
    return data


def _str(data: Mapping[str, Any], name: str, what: str, *, empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not value and not empty):
        raise MalformedRecord(f"{what}: {name} must be a non-empty string")
    return value


def _time(data: Mapping[str, Any], name: str, what: str, default: float | None = None) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedRecord(f"{what}: {name} must be a finite number")
    return float(value)


# -- stream keys ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamKeyRecord:
    """``clutchcall:streamkey:<external_input_id>``: who may publish to an input."""

    org: str
    input: str
    namespace: str
    sha256: str  # hex sha256 of the UTF-8 stream key (lower case)
    rotated_at: float = 0.0

    def encode(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "input": self.input,
            "namespace": self.namespace,
            "sha256": self.sha256,
            "rotated_at": self.rotated_at,
        }

    @classmethod
    def decode(cls, data: object) -> StreamKeyRecord:
        what = "stream key record"
        m = _map(data, what)
        sha = _str(m, "sha256", what).lower()
        if not _SHA256_HEX.fullmatch(sha):
            raise MalformedRecord(f"{what}: sha256 is not 64 hex digits")
        rotated = m.get("rotated_at")
        return cls(
            _str(m, "org", what),
            _str(m, "input", what),
            _str(m, "namespace", what),
            sha,
            _time(m, "rotated_at", what) if rotated is not None else 0.0,
        )


@dataclass(frozen=True, slots=True)
class StreamKeyEvent:
    """On ``clutchcall:streamkeys``: an input's key changed or the input is gone."""

    external_input_id: str
    event: Literal["rotated", "deleted"]
    at: float = 0.0

    def encode(self) -> dict[str, Any]:
        return {"external_input_id": self.external_input_id, "event": self.event, "at": self.at}

    @classmethod
    def decode(cls, data: object) -> StreamKeyEvent:
        what = "stream key event"
        m = _map(data, what)
        event = m.get("event")
        if event not in ("rotated", "deleted"):
            raise MalformedRecord(f"{what}: event must be rotated or deleted")
        at = m.get("at")
        return cls(
            _str(m, "external_input_id", what),
            event,
            _time(m, "at", what) if at is not None else 0.0,
        )


# -- signing keys ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JwksRecord:
    """``clutchcall:jwks``: the public JWKS (``{"keys": [JWK, ...]}``). Each key is
    checked by :func:`mesh.jwks.parse_jwks`; here only the document's shape."""

    keys: tuple[Mapping[str, Any], ...]

    def encode(self) -> dict[str, Any]:
        return {"keys": [dict(k) for k in self.keys]}

    @classmethod
    def decode(cls, data: object) -> JwksRecord:
        m = _map(data, "JWKS record")
        keys = m.get("keys")
        if not isinstance(keys, list):
            raise MalformedRecord("JWKS record must have a 'keys' list")
        return cls(tuple(k for k in keys if isinstance(k, Mapping)))


@dataclass(frozen=True, slots=True)
class SigningKeysEvent:
    """On ``clutchcall:signing-keys``: the JWKS record changed (a rotation); refresh now."""

    kids: tuple[str, ...]
    at: float = 0.0
    event: Literal["rotated"] = "rotated"

    def encode(self) -> dict[str, Any]:
        return {"event": self.event, "kids": list(self.kids), "at": self.at}

    @classmethod
    def decode(cls, data: object) -> SigningKeysEvent:
        what = "signing keys event"
        m = _map(data, what)
        kids = m.get("kids")
        if m.get("event") != "rotated" or not isinstance(kids, list):
            raise MalformedRecord(f"{what}: needs event 'rotated' and a kids list")
        return cls(tuple(k for k in kids if isinstance(k, str)), _time(m, "at", what, 0.0))


# -- revocations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation: by ``jti`` (``before`` unused) or by ``sub`` (tokens with iat <= before).

    Message on ``clutchcall:revocations`` (:meth:`to_message` / :meth:`from_message`) and
    record ``clutchcall:revoked:<kind>:<value>`` (:meth:`to_record` / :meth:`from_record`,
    TTL until ``exp``)."""

    kind: str  # "jti" | "sub"
    value: str
    exp: float
    before: float = 0.0
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("jti", "sub") or not self.value:
            raise MalformedRecord(f"invalid revocation {self.kind}={self.value!r}")
        if not all(math.isfinite(t) for t in (self.exp, self.before, self.at)):
            raise MalformedRecord("revocation times must be finite numbers")

    @property
    def key(self) -> str:
        return revoked_key(self.kind, self.value)

    def matches(self, *, jti: str, sub: str, iat: float) -> bool:
        """Whether a token with these claims is revoked by this entry."""
        if self.kind == "jti":
            return jti == self.value
        return sub == self.value and iat <= self.before

    def to_message(self) -> dict[str, Any]:
        body: dict[str, Any] = {self.kind: self.value, "exp": self.exp, "at": self.at}
        if self.kind == "sub":
            body["before"] = self.before
        return body

    def to_record(self) -> dict[str, Any]:
        if self.kind == "sub":
            return {"before": self.before, "exp": self.exp}
        return {"exp": self.exp}

    @classmethod
    def from_message(cls, data: object) -> Revocation:
        """Parse a channel message; raises :class:`MalformedRecord`."""
        what = "revocation message"
        m = _map(data, what)
        at = _time(m, "at", what, 0.0)
        if "jti" in m:
            return cls("jti", _str(m, "jti", what), _time(m, "exp", what), at=at)
        if "sub" in m:
            return cls(
                "sub", _str(m, "sub", what), _time(m, "exp", what), _time(m, "before", what), at
            )
        raise MalformedRecord("revocation message names neither jti nor sub")

    @classmethod
    def from_record(cls, key: str, data: object) -> Revocation:
        what = f"revocation record {key!r}"
        m = _map(data, what)
        kind, _, value = key.removeprefix(REVOKED_PREFIX).partition(":")
        before = _time(m, "before", what) if kind == "sub" else 0.0
        return cls(kind, value, _time(m, "exp", what), before)


# -- input status ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputStatusRecord:
    """On ``clutchcall:input-status`` and as record ``clutchcall:input-status:<id>``."""

    external_input_id: str
    status: str  # idle | live | error
    detail: str | None
    at: float
    node: str = ""

    def __post_init__(self) -> None:
        if self.status not in INPUT_STATUSES:
            raise MalformedRecord(
                f"input status: {self.status[:20]!r} is not one of idle, live, error"
            )

    def encode(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "external_input_id": self.external_input_id,
            "status": self.status,
            "detail": self.detail,
            "at": self.at,
        }
        if self.node:
            record["node"] = self.node
        return record

    @classmethod
    def decode(cls, data: object) -> InputStatusRecord:
        """Lenient where the control plane always was: a bad ``at`` is NaN (the reader
        uses its own clock), a non-string ``detail`` is stringified."""
        what = "input status"
        m = _map(data, what)
        status = m.get("status")
        if not isinstance(status, str) or status not in INPUT_STATUSES:
            raise MalformedRecord(f"{what}: status must be idle, live or error")
        at = m.get("at")
        ok = isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at)
        detail = m.get("detail")
        node = m.get("node")
        return cls(
            _str(m, "external_input_id", what),
            status,
            None if detail is None else detail if isinstance(detail, str) else str(detail),
            float(at) if ok else math.nan,  # type: ignore[arg-type]
            node if isinstance(node, str) else "",
        )


# -- topology ------------------------------------------------------------------------------------


class NodeRole(enum.StrEnum):
    ORIGIN = "origin"
    POP = "pop"


def _hashes(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        h.lower() for h in value if isinstance(h, str) and _SHA256_HEX.fullmatch(h.lower())
    )


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node's registry record (``clutchcall:node:<node_id>``).

    ``certificate_hashes``: hex SHA-256 of the DER certificates a browser may pin to
    reach this node (``serverCertificateHashes``; self-signed ones only), newest first;
    during a renewal the old one is listed too (``mesh.certificates``).

    ``indexed``: the node keeps its id in ``clutchcall:index:nodes`` (and its routes in
    ``clutchcall:index:routes``); a node without it runs a version from before the
    indexes, which the others watch by its record (docs/bus-contract.md, rolling upgrades).

    ``draining``: the node is draining (GOAWAY to its sessions, then it stops): it takes
    no new sessions, so nothing picks it (a GOAWAY target, a parent POP, a relay listed
    to browsers). Written only when true; a record without it (every record of the
    versions before it) is a node that is not draining."""

    node_id: str
    role: NodeRole
    region: str
    quic: str
    http: str = ""
    started: float = 0.0
    load: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    hosts: frozenset[str] = frozenset()
    certificate_hashes: tuple[str, ...] = ()
    indexed: bool = False
    draining: bool = False

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "role": self.role.value,
            "region": self.region,
            "quic": self.quic,
            "http": self.http,
            "started": self.started,
            "load": dict(self.load),
            "hosts": sorted(self.hosts),
        }
        if self.certificate_hashes:
            record["certificate_hashes"] = list(self.certificate_hashes)
        if self.indexed:
            record["indexed"] = True
        if self.draining:
            record["draining"] = True
        return record

    encode = to_record

    @classmethod
    def from_record(cls, node_id: str, record: object) -> NodeInfo:
        """Parse a record; raises :class:`MalformedRecord` on anything malformed."""
        what = f"node record for {node_id!r}"
        m = _map(record, what)
        try:
            role = NodeRole(str(m.get("role")))
        except ValueError:
            raise MalformedRecord(f"{what}: role must be origin or pop") from None
        load = m.get("load") or {}
        hosts = m.get("hosts") or []
        if not isinstance(load, Mapping) or not isinstance(hosts, list):
            raise MalformedRecord(f"{what}: load must be a map and hosts a list")
        return cls(
            node_id=node_id,
            role=role,
            region=_str(m, "region", what, empty=True),
            quic=_str(m, "quic", what),
            http=str(m.get("http", "")),
            started=_time(m, "started", what, 0.0),
            load=MappingProxyType(
                {
                    str(k): float(v)
                    for k, v in load.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            ),
            hosts=frozenset(h for h in hosts if isinstance(h, str)),
            certificate_hashes=_hashes(m.get("certificate_hashes")),
            indexed=m.get("indexed") is True,
            draining=m.get("draining") is True,
        )


@dataclass(frozen=True, slots=True)
class Route:
    """Namespace routing record (``clutchcall:route:<namespace>``)."""

    namespace: str
    origin: str
    region: str
    quic: str
    at: float

    def to_record(self) -> dict[str, Any]:
        return {"origin": self.origin, "region": self.region, "quic": self.quic, "at": self.at}

    encode = to_record

    @classmethod
    def from_record(cls, namespace: str, record: object) -> Route:
        what = f"route record for {namespace!r}"
        m = _map(record, what)
        return cls(
            namespace,
            _str(m, "origin", what),
            _str(m, "region", what),
            _str(m, "quic", what),
            _time(m, "at", what, 0.0),
        )


TopologyEventName = Literal["node_up", "node_down", "route_set", "route_gone"]


@dataclass(frozen=True, slots=True)
class TopologyMessage:
    """On ``clutchcall:topology``: ``node_up`` carries the node record, ``route_set`` the
    route record, ``node_down`` the node id, ``route_gone`` the namespace and origin."""

    event: TopologyEventName
    node_id: str = ""
    namespace: str = ""
    origin: str = ""
    node: NodeInfo | None = None
    route: Route | None = None

    @classmethod
    def node_up(cls, node: NodeInfo) -> TopologyMessage:
        return cls("node_up", node_id=node.node_id, node=node)

    @classmethod
    def node_down(cls, node_id: str) -> TopologyMessage:
        return cls("node_down", node_id=node_id)

    @classmethod
    def route_set(cls, route: Route) -> TopologyMessage:
        return cls("route_set", namespace=route.namespace, origin=route.origin, route=route)

    @classmethod
    def route_gone(cls, namespace: str, origin: str) -> TopologyMessage:
        return cls("route_gone", namespace=namespace, origin=origin)

    def encode(self) -> dict[str, Any]:
        if self.node is not None:
            return {"event": self.event, "node": self.node_id, **self.node.to_record()}
        if self.route is not None:
            return {"event": self.event, "namespace": self.namespace, **self.route.to_record()}
        if self.event == "node_down":
            return {"event": self.event, "node": self.node_id}
        return {"event": self.event, "namespace": self.namespace, "origin": self.origin}

    @classmethod
    def decode(cls, data: object) -> TopologyMessage:
        what = "topology message"
        m = _map(data, what)
        event = m.get("event")
        if event == "node_up":
            node_id = _str(m, "node", what)
            return cls.node_up(NodeInfo.from_record(node_id, m))
        if event == "node_down":
            return cls.node_down(_str(m, "node", what))
        if event == "route_set":
            return cls.route_set(Route.from_record(_str(m, "namespace", what), m))
        if event == "route_gone":
            origin = m.get("origin", "")
            return cls.route_gone(
                _str(m, "namespace", what), origin if isinstance(origin, str) else ""
            )
        raise MalformedRecord(f"{what}: unknown event {str(event)[:40]!r}")
