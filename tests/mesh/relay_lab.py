"""Socket-free relay tests: real sessions over in-memory pipes, one relay in the middle.

Each client is the client half of a SESSION ``session_pair``; the server half
is attached to one :class:`Relay`. :meth:`RelayLab.run` moves bytes and feeds
the server-side events to the relay until nothing moves any more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.relay import CacheLimits, Peer, Relay, RelayConfig
from moqt.events import Event
from moqt.session import Session, SubgroupHandle
from tests.moqt.harness import SessionPair, session_pair

NS = (b"live", b"show")


@dataclass
class Client:
    pair: SessionPair
    peer: Peer
    seen: int = 0
    events: list[Event] = field(default_factory=list)
    # the relay the server half is attached to
    peer_relay: Relay | None = None
    # a link between relays: the client half is attached to a (downstream) relay too
    upstream_of: tuple[Relay, Peer] | None = None

    @property
    def session(self) -> Session:
        return self.pair.client

    def coalesce_outbox(self) -> None:
        """Merge queued writes per stream, as QUIC does when they leave in one packet
        (e.g. a SUBSCRIBE and its joining FETCH arrive in one read)."""
        outbox = self.pair.c.transport.outbox
        merged: list[object] = []
        for op in outbox:
            last = merged[-1] if merged else None
            if (
                last is not None
                and op.kind == "data"
                and last.kind == "data"  # type: ignore[attr-defined]
                and last.stream_id == op.stream_id  # type: ignore[attr-defined]
                and not last.fin  # type: ignore[attr-defined]
            ):
                last.data += op.data  # type: ignore[attr-defined]
                last.fin = op.fin  # type: ignore[attr-defined]
            else:
                merged.append(op)
        outbox.clear()
        outbox.extend(merged)  # type: ignore[arg-type]

    def take(self) -> list[Event]:
        out, self.events = self.events, []
        return out


class RelayLab:
    def __init__(self, version: int, **config: object) -> None:
        self.version = version
        self.now = 100.0
        cache = config.pop("cache", CacheLimits(max_bytes=1 << 20, max_age=60))
        self.relay = Relay(RelayConfig(cache=cache, **config), clock=lambda: self.now)  # type: ignore[arg-type]
        self.clients: list[Client] = []

    def new_relay(self, **config: object) -> Relay:
        cache = config.pop("cache", CacheLimits(max_bytes=1 << 20, max_age=60))
        return Relay(RelayConfig(cache=cache, **config), clock=lambda: self.now)  # type: ignore[arg-type]

    def link(self, downstream: Relay, upstream: Relay | None = None) -> Client:
        """A session from ``downstream`` (client side) to ``upstream`` (default: the lab's relay)."""
        return self.client(relay=upstream, downstream=downstream)

    def client(
        self,
        *,
        relay: Relay | None = None,
        downstream: Relay | None = None,
        **server_kwargs: object,
    ) -> Client:
        pair = session_pair(self.version, connect=False, server_kwargs=server_kwargs)
        peer = (relay or self.relay).attach(pair.server, f"c{len(self.clients)}")
        client = Client(pair, peer, peer_relay=relay or self.relay)
        if downstream is not None:
            client.upstream_of = (
                downstream,
                downstream.attach(pair.client, f"up{len(self.clients)}"),
            )
        self.clients.append(client)
        pair.c.events += pair.client.initiate(pair.now)
        pair.s.events += pair.server.initiate(pair.now)
        self.run()
        return client

    def run(self, max_rounds: int = 100_000) -> None:
        for _ in range(max_rounds):
            moved = False
            for c in self.clients:
                c.pair.now = self.now
                if c.pair.step():
                    moved = True
                new = c.pair.s.events[c.seen :]
                c.seen = len(c.pair.s.events)
                for event in new:
                    (c.peer_relay or self.relay).handle_event(c.peer, event)
                    moved = True
                if c.upstream_of is not None:
                    for event in c.pair.c.events:
                        c.upstream_of[0].handle_event(c.upstream_of[1], event)
                        moved = True
                else:
                    c.events += c.pair.c.events
                c.pair.c.events = []
            if not moved:
                return
        raise AssertionError("the lab never went idle")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        relays = {id(r): r for c in self.clients for r in (c.peer_relay, self.relay) if r}
        for relay in relays.values():
            relay.poll()
        self.run()


def write_group(
    session: Session, request_id: int, group: int, objects: int, *, first: int = 0, end: bool = True
) -> SubgroupHandle:
    handle = session.open_subgroup(request_id, group, 0)
    for i in range(first, first + objects):
        session.write_object(handle, i, b"g%d-o%d" % (group, i))
    if end:
        session.end_subgroup(handle)
    return handle
