"""Building blocks of the POP tests: signing keys, a clock-aligned publisher, an origin, viewers.

The publisher numbers groups by the wall clock (``group = now_ms // group_ms``),
so two origins fed by two publishers carry the same group ids at the same
time, as two origins transcoding one broadcast would: a POP that moves from
one to the other resumes at the next group boundary without a gap in numbering.
Each object's payload says which origin it came through and when it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from bench.impair import Impairment, ImpairmentProxy
from mesh._topology_types import NodeInfo, NodeRole
from mesh.bus import Bus
from mesh.relay import RelayConfig
from mesh.relay._node import RelayNode
from mesh.topology import Topology
from moqt.aio import ConnectionClosed, MoqtConnection, connect
from moqt.errors import LocalError
from moqt.events import ObjectReceived, PublishAccepted, SessionClosed, SubscribeAccepted
from moqt.types import SubscriptionFilter

AUD = "clutchcall-playback"
ORG = "org_test"
_HEADER = struct.Struct("!dQQ")


def namespace_of(sub: str, org: str = ORG) -> tuple[bytes, ...]:
    return (b"stream", org.encode(), sub.encode())


def namespace_name(sub: str, org: str = ORG) -> str:
    return f"stream/{org}/{sub}"


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def jwk(self) -> dict[str, Any]:
        public = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm="ES256", headers={"kid": self.kid, **header}
        )


class Tokens:
    """Mints playback tokens like the control plane (claims per BUS_CONTRACT)."""

    def __init__(self, directory: Path) -> None:
        self.key = SigningKey("k1")
        self.jwks_path = directory / "jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [self.key.jwk()]}))
        self._n = 0

    def claims(self, sub: str = "lv_a", **overrides: Any) -> dict[str, Any]:
        self._n += 1
        now = time.time()
        base: dict[str, Any] = {
            "sub": sub,
            "org": ORG,
            "aud": AUD,
            "iat": round(now, 3),
            "nbf": int(now),
            "exp": int(now) + 300,
            "jti": f"jt_{self._n}_{int(now * 1000)}",
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def mint(self, sub: str = "lv_a", **overrides: Any) -> str:
        return self.key.sign(self.claims(sub, **overrides))


def encode_payload(origin: str, group: int, obj: int, size: int = 200) -> bytes:
    head = _HEADER.pack(time.time(), group, obj) + origin.encode()[:32].ljust(32, b" ")
    return head + b"\0" * max(0, size - len(head))


def decode_payload(payload: bytes) -> tuple[float, int, int, str]:
    sent, group, obj = _HEADER.unpack_from(payload)
    origin = payload[_HEADER.size : _HEADER.size + 32].decode().strip()
    return sent, group, obj, origin


class Publisher:
    """PUBLISHes tracks into a relay and writes clock-aligned groups until stopped."""

    def __init__(
        self,
        url: str,
        namespace: tuple[bytes, ...],
        *,
        tag: str,
        tracks: tuple[bytes, ...] = (b"video",),
        group_ms: int = 400,
        objects: int = 4,
        object_size: int = 200,
        priority: int = 128,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.tag = tag
        self.tracks = tracks
        self.group_ms = group_ms
        self.objects = objects
        self.object_size = object_size
        self.priority = priority  # publisher priority of every subgroup
        self.groups_sent = 0
        self.frozen = False  # True: write nothing, keep the session (like a hung process)
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with connect(self.url, verify=False) as conn:
            rids = []
            for name in self.tracks:
                rid = conn.session.publish(self.namespace, name)
                answer = await conn.wait_response(rid)
                assert isinstance(answer, PublishAccepted), answer
                rids.append(rid)
            self.ready.set()
            await self._loop(conn, rids)

    async def _loop(self, conn: MoqtConnection, rids: list[int]) -> None:
        step = self.group_ms / 1000 / self.objects
        while not conn.is_closed:
            if self.frozen:
                await asyncio.sleep(0.02)
                continue
            now = time.time()
            group = int(now * 1000) // self.group_ms
            start = group * self.group_ms / 1000
            handles = [
                conn.session.open_subgroup(rid, group, 0, priority=self.priority) for rid in rids
            ]
            for obj in range(self.objects):
                for handle in handles:
                    conn.session.write_object(
                        handle, obj, encode_payload(self.tag, group, obj, self.object_size)
                    )
                delay = start + (obj + 1) * step - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            for handle in handles:
                conn.session.end_subgroup(handle)
            self.groups_sent += 1


class Origin:
    """An origin stand-in: a relay node that registers its node record and route in the bus,
    plus a publisher feeding it (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        node_id: str,
        region: str,
        certificate: Path,
        private_key: Path,
        namespaces: tuple[tuple[bytes, ...], ...],
        *,
        heartbeat: float = 0.5,
        ttl: float = 1.5,
        tracks: tuple[bytes, ...] = (b"video",),
        group_ms: int = 400,
        objects: int = 4,
        object_size: int = 200,
        priority: int = 128,
        path: Impairment | None = None,
    ) -> None:
        self.bus = bus
        self.node_id = node_id
        self.region = region
        self.node = RelayNode(RelayConfig())
        self._cert, self._key = certificate, private_key
        self.namespaces = namespaces
        self._heartbeat, self._ttl = heartbeat, ttl
        self._tracks, self._group_ms, self._objects = tracks, group_ms, objects
        self._object_size = object_size
        self._priority = priority
        # POPs reach the origin through an impairment proxy with this delay/loss.
        self._path = path
        self.proxy: ImpairmentProxy | None = None
        self.topology: Topology | None = None
        self.publishers: list[Publisher] = []

    @property
    def quic(self) -> str:
        return f"127.0.0.1:{self.node.address[1]}"

    @property
    def advertised(self) -> str:
        """The address POPs use (the impairment proxy's when there is a path)."""
        if self.proxy is not None:
            return f"127.0.0.1:{self.proxy.address[1]}"
        return self.quic

    @contextlib.asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[Origin]:
        await self.node.start("127.0.0.1", port, self._cert, self._key)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._path is not None:
                    upstream = ("127.0.0.1", self.node.address[1])
                    proxy = ImpairmentProxy(("127.0.0.1", 0), upstream, up=self._path, seed=1)
                    self.proxy = await stack.enter_async_context(proxy)
                async with self._serving():
                    yield self
        finally:
            await self.node.stop()

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[Origin]:
        self.topology = Topology(
            self.bus,
            NodeInfo(self.node_id, NodeRole.ORIGIN, self.region, self.advertised),
            heartbeat_interval=self._heartbeat,
            ttl=self._ttl,
        )
        tasks: list[asyncio.Task[None]] = []
        async with self.topology:
            for ns in self.namespaces:
                publisher = Publisher(
                    f"moqt://{self.quic}",
                    ns,
                    tag=self.node_id,
                    tracks=self._tracks,
                    group_ms=self._group_ms,
                    objects=self._objects,
                    object_size=self._object_size,
                    priority=self._priority,
                )
                self.publishers.append(publisher)
                tasks.append(asyncio.create_task(publisher.run()))
                await asyncio.wait_for(publisher.ready.wait(), 5)
                await self.topology.announce("/".join(f.decode() for f in ns))
            try:
                yield self
            finally:
                # Like a crash: the sessions go first (no PUBLISH_DONE), then the rest.
                await self.node.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def subscriptions(self) -> int:
        return self.node.relay.statistics()["subscriptions"]


@dataclass
class Received:
    at: float
    group: int
    obj: int
    origin: str
    sent: float


class Viewer:
    """Our client watching one track through a POP; records objects and how it ended."""

    def __init__(
        self,
        url: str,
        namespace: tuple[bytes, ...],
        name: bytes = b"video",
        objects: list[Received] | None = None,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.name = name
        self.objects: list[Received] = [] if objects is None else objects
        self.closed: SessionClosed | None = None
        self.rejected: object | None = None
        self.got_object = asyncio.Event()

    async def watch(
        self,
        *,
        subscribe_token: str | None = None,
        setup_token: str | None = None,
        flt: SubscriptionFilter | None = None,
        transport: str = "moqt",
        versions: tuple[int, ...] | None = None,
        stack: str = "aioquic",
    ) -> None:
        from moqt.aio import SessionOptions

        options = SessionOptions(auth_token=setup_token.encode() if setup_token else None)
        url = self.url if transport == "moqt" else self.url.replace("moqt://", "https://", 1)
        try:
            extra: dict[str, Any] = {} if versions is None else {"versions": versions}
            async with connect(url, verify=False, options=options, stack=stack, **extra) as conn:
                self.conn = conn
                rid = conn.session.subscribe(
                    self.namespace,
                    self.name,
                    filter=flt or SubscriptionFilter.next_group_start(),
                    auth_token=subscribe_token.encode() if subscribe_token else None,
                )
                answer = await conn.wait_response(rid)
                if not isinstance(answer, SubscribeAccepted):
                    self.rejected = answer
                    return
                async for event in conn.events():
                    if isinstance(event, ObjectReceived) and event.payload:
                        sent, group, obj, origin = decode_payload(event.payload)
                        self.objects.append(Received(time.time(), group, obj, origin, sent))
                        self.got_object.set()
                    elif isinstance(event, SessionClosed):
                        self.closed = event
        except ConnectionClosed as exc:
            self.closed = SessionClosed(exc.code, exc.reason, exc.by_peer)
        except LocalError:
            conn_closed = getattr(self, "conn", None)
            if conn_closed is not None:
                self.closed = await conn_closed.wait_closed(grace=2.0)


async def closed_session(
    url: str,
    *,
    setup_token: str | None = None,
    subscribe_token: str | None = None,
    namespace: tuple[bytes, ...] = namespace_of("lv_a"),
    within: float = 10.0,
) -> SessionClosed | None:
    """Connect, subscribe, and return how the POP closed the session (None if it did not)."""
    viewer = Viewer(url, namespace)
    try:
        await asyncio.wait_for(
            viewer.watch(setup_token=setup_token, subscribe_token=subscribe_token), within
        )
    except TimeoutError:
        return None
    return viewer.closed
