"""Cluster topology over the bus: node registry, namespace routing, upstream resolution.

Every node runs one :class:`Topology`.  It heartbeats its own node record (TTL
keys, see docs/bus-contract.md and ``mesh.bus_contract``) and its entry in the node
index, refreshes the routes of the namespaces it hosts (origins), listens to
``clutchcall:topology`` and keeps a local snapshot of all nodes and routes.  The
snapshot is what :meth:`Topology.resolve` reads, so a node keeps routing new
requests from the last known topology while Redis is away and catches up
(re-registers itself, re-announces its routes, re-reads everything) as soon as it
is back.

Redis load per heartbeat does not grow with the cluster: a beat writes this node's
record and index entry and asks each index (nodes, routes) for the entries that
expired, which it removes and announces (``node_down`` / ``route_gone``: each
expired entry goes to one node only).  Everything else travels as messages: a node
publishes ``node_up`` when it (re)joins the index or its record changes (a load-only
change at most every ``load_publish_every`` beats), origins ``route_set``. A node that
begins draining says so in its record at once (:meth:`Topology.mark_draining`); the
choices below and the POP's GOAWAY target skip draining nodes.  Every
``resync_every`` beats a node re-reads all live records (two index reads, two MGETs)
in case a message was lost.  Nodes of the version before the indexes (records
without ``indexed``) are found by a keyspace scan at start and after a resync and
watched by their records while any is known (docs/bus-contract.md, rolling upgrades).

Upstream choice for a POP (:meth:`Topology.resolve`): see :mod:`mesh._topology_choice`.

:meth:`Topology.lookup` is the same choice, but reads a namespace the snapshot
does not know yet straight from Redis.  Redis coming back empty after an outage
does not make nodes or routes vanish: for one TTL the snapshot only grows, while
every node re-registers.  The ``hosts`` list in the node record is an
addition to the contract's record, read only by this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

import msgpack
import redis.exceptions
import structlog

from mesh._topology_choice import choose_origin, choose_parent
from mesh._topology_types import (
    HOPS_PARAM,
    NodeInfo,
    NodeRole,
    NoRoute,
    Route,
    RouteLoop,
    TopologyError,
    TopologyEvent,
    TopologyStatistics,
    Upstream,
    format_hop_path,
    hop_path_from,
    is_relay_link_path,
    parse_hop_path,
    with_hop_path,
)
from mesh.bus import Bus, BusMessage, BusUnavailable, Record
from mesh.bus_contract import (
    NODE_PREFIX,
    NODES_INDEX_KEY,
    ROUTE_PREFIX,
    ROUTES_INDEX_KEY,
    TOPOLOGY_CHANNEL,
    MalformedLog,
    TopologyMessage,
    node_key,
    route_key,
)

__all__ = [
    "HOPS_PARAM",
    "NODE_PREFIX",
    "ROUTE_PREFIX",
    "TOPOLOGY_CHANNEL",
    "NoRoute",
    "NodeInfo",
    "NodeRole",
    "Route",
    "RouteLoop",
    "Topology",
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

_log = structlog.get_logger(__name__)

# Everything a bus call can raise when Redis is away (RedisBus.keys iterates a SCAN
# whose connection errors are not wrapped in BusUnavailable).
_BUS_DOWN = (BusUnavailable, redis.exceptions.RedisError, OSError)
# What reading one record can raise when its bytes are not ours (msgpack) or malformed.
_BAD_RECORD = (ValueError, TypeError, msgpack.UnpackException)


def _without_load(record: Record) -> Record:
    return {k: v for k, v in record.items() if k != "load"}


Listener = Callable[[TopologyEvent], None]


class Topology:
    """This node's view of the cluster; see the module docstring.

    Run it with ``async with Topology(...)`` (or put :meth:`run` in a TaskGroup).
    ``clock`` is wall-clock time (records carry unix seconds).
    """

    def __init__(
        self,
        bus: Bus,
        node: NodeInfo,
        *,
        heartbeat_interval: float = 1.0,
        ttl: float = 3.0,
        parent_regions: Sequence[str] = (),
        max_hops: int = 3,
        resync_every: int = 30,
        load_publish_every: int = 5,
        drain_settle: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if heartbeat_interval <= 0 or ttl <= heartbeat_interval:
            raise ValueError("need 0 < heartbeat_interval < ttl")
        if max_hops < 1:
            raise ValueError("max_hops must be >= 1")
        self._bus = bus
        self._malformed = MalformedLog()
        self._announce_due = False
        self._clock = clock
        self.node = replace(node, started=node.started or clock(), indexed=True)
        self._interval = heartbeat_interval
        self._ttl = ttl
        self._parent_regions = tuple(parent_regions)
        self._max_hops = max_hops
        # Changes travel as messages and expiries from the indexes; the full re-read
        # (in case a message was lost) runs every few beats only.
        self._resync_every = max(1, resync_every)
        self._load_every = max(1, load_publish_every)
        # How long a draining node waits for others that begin draining at the same time.
        # (Pub/sub carries an announcement in milliseconds: half a second is ample.)
        settle = min(0.5, heartbeat_interval) if drain_settle is None else drain_settle
        self._drain_settle = max(0.0, settle)
        self._beat_waiters: list[asyncio.Future[None]] = []  # see _beat_now
        self._published: tuple[Record, int] | None = None  # our record as last published
        self._full_scan_due = True
        self._scan_due = True  # the keyspace scan for nodes of the previous version
        self._settle_until = 0.0
        self._nodes: dict[str, NodeInfo] = {}
        self._routes: dict[str, Route] = {}
        self._hosted: dict[str, float] = {}  # namespace -> announced at
        self._listeners: list[Listener] = []
        self._bus_up = False
        self._synced_at = 0.0
        self._generation = 0  # counts bus messages; see _resync
        self._touched: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._heartbeats = 0
        self._heartbeat_failures = 0
        self._resyncs = 0
        self._events = 0
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Topology:
        self._task = asyncio.create_task(self.run(), name=f"topology-{self.node.node_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.leave()

    async def run(self) -> None:
        """Heartbeat and listen until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._listen())
            tg.create_task(self._heartbeat_loop())

    async def wait_ready(self) -> None:
        """Until the first full snapshot has been read (or Redis was found down)."""
        await self._ready.wait()

    @property
    def bus_up(self) -> bool:
        return self._bus_up

    async def leave(self) -> None:
        """Graceful exit: withdraw hosted routes and the node record, tell the others."""
        hosted = list(self._hosted)
        self._hosted.clear()  # so that our own route_gone does not look like an expiry
        with contextlib.suppress(*_BUS_DOWN):
            for namespace in hosted:
                await self._drop_route(namespace)
            await self._bus.delete(node_key(self.node.node_id))
            await self._bus.index_remove(NODES_INDEX_KEY, self.node.node_id)
            await self._bus.publish(
                TOPOLOGY_CHANNEL, TopologyMessage.node_down(self.node.node_id).encode()
            )

    # -- origin side: hosting namespaces ------------------------------------------

    async def announce(self, namespace: str) -> None:
        """This origin now hosts ``namespace`` (a publisher is connected here)."""
        if self.node.role is not NodeRole.ORIGIN:
            raise TopologyError("only origins announce routes")
        self._hosted[namespace] = self._clock()
        self.node = replace(self.node, hosts=frozenset(self._hosted))
        route = self._own_route(namespace)
        self._apply_route(route)
        with contextlib.suppress(*_BUS_DOWN):  # the heartbeat re-writes it on recovery
            await self._bus.set(route_key(namespace), route.to_record(), ttl=self._ttl)
            await self._bus.index_touch(ROUTES_INDEX_KEY, namespace, self._ttl)
            await self._bus.publish(TOPOLOGY_CHANNEL, TopologyMessage.route_set(route).encode())
        self._wake.set()  # the node record lists it under hosts: publish that now

    async def withdraw(self, namespace: str) -> None:
        """The broadcast ended here; removes the route if it still points at us."""
        if self._hosted.pop(namespace, None) is None:
            return
        self.node = replace(self.node, hosts=frozenset(self._hosted))
        with contextlib.suppress(*_BUS_DOWN):
            await self._drop_route(namespace)
        if (r := self._routes.get(namespace)) is not None and r.origin == self.node.node_id:
            self._remove_route(namespace)
        self._wake.set()

    def set_certificate_hashes(self, hashes: Sequence[str]) -> None:
        """Publish new certificate hashes (a renewal) with a heartbeat now, announced
        with ``node_up`` so the other nodes need not wait for their next scan."""
        self.node = replace(self.node, certificate_hashes=tuple(hashes))
        self._announce_due = True
        self._wake.set()

    async def mark_draining(self) -> None:
        """This node drains: its record says ``draining`` from now on, so no other node
        picks it (a GOAWAY target, a parent POP, the control plane's relays list).

        Written and announced with a beat at once, not at the next one. Then, after
        ``drain_settle`` seconds, every live record is re-read, so that this node also
        knows the nodes that began draining at the same time (a rolling restart drains
        several at once): call it before choosing where to send the sessions. Returns at
        once while the bus is away (the first beat that reaches it publishes the flag)
        and waits at most one TTL for each beat.
        """
        if not self.node.draining:
            self.node = replace(self.node, draining=True)
            self._announce_due = True
        if not self._bus_up:
            return
        await self._beat_now()
        await asyncio.sleep(self._drain_settle)
        self._full_scan_due = True
        await self._beat_now()

    async def _beat_now(self) -> None:
        """Wake the heartbeat and wait (up to one TTL) for a beat that began after this."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._beat_waiters.append(waiter)
        self._wake.set()
        try:
            async with asyncio.timeout(self._ttl):
                await waiter
        except TimeoutError:
            _log.warning("beat_not_done", node=self.node.node_id, within=self._ttl)
        finally:
            if waiter in self._beat_waiters:
                self._beat_waiters.remove(waiter)

    def set_load(self, **load: float) -> None:
        """Numbers published with the next heartbeat (sessions, cpu, ...)."""
        self.node = replace(self.node, load=MappingProxyType(dict(load)))

    def _own_route(self, namespace: str) -> Route:
        at = self._hosted.get(namespace, self._clock())
        return Route(namespace, self.node.node_id, self.node.region, self.node.quic, at)

    async def _drop_route(self, namespace: str) -> None:
        current = await self._bus.get(route_key(namespace))
        if current is not None and current.get("origin") == self.node.node_id:
            await self._bus.delete(route_key(namespace))
            await self._bus.index_remove(ROUTES_INDEX_KEY, namespace)
            await self._bus.publish(
                TOPOLOGY_CHANNEL, TopologyMessage.route_gone(namespace, self.node.node_id).encode()
            )

    # -- snapshot reading -----------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every snapshot change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def nodes(self) -> Mapping[str, NodeInfo]:
        return MappingProxyType(dict(self._nodes))

    def routes(self) -> Mapping[str, Route]:
        return MappingProxyType(dict(self._routes))

    def route(self, namespace: str) -> Route | None:
        return self._routes.get(namespace)

    def resolve(
        self, namespace: str, path: Sequence[str] = (), *, avoid: Collection[str] = ()
    ) -> Upstream:
        """Pick the upstream for ``namespace`` for a request that passed through ``path``.

        ``avoid`` names nodes to steer clear of when there is a choice (an upstream
        that just failed but is still registered): an avoided origin is used only
        when no other origin hosts the namespace, an avoided parent POP never
        (the origin is dialed directly instead).  Raises :class:`RouteLoop` when
        this node is already on ``path`` and :class:`NoRoute` when no live origin
        hosts the namespace.
        """
        me = self.node.node_id
        if me in path:
            raise RouteLoop(f"{me} is already on the hop path {list(path)}")
        new_path = (*path, me)
        origin = choose_origin(
            self._nodes, self._routes, self.node, namespace, new_path, avoid, bus_up=self._bus_up
        )
        if origin.region != self.node.region and len(new_path) < self._max_hops:
            parent = choose_parent(self._nodes, self.node, self._parent_regions, new_path, avoid)
            if parent is not None:
                return Upstream(
                    parent.node_id,
                    NodeRole.POP,
                    parent.region,
                    parent.quic,
                    origin.node_id,
                    new_path,
                )
        return Upstream(
            origin.node_id, NodeRole.ORIGIN, origin.region, origin.quic, origin.node_id, new_path
        )

    async def lookup(
        self, namespace: str, path: Sequence[str] = (), *, avoid: Collection[str] = ()
    ) -> Upstream:
        """:meth:`resolve`, but a namespace the snapshot does not know is read from Redis.

        Covers a viewer arriving between an origin's announcement and the moment
        its message reaches us (or after a lost message).  While Redis is away
        this is exactly :meth:`resolve` on the last known topology.
        """
        try:
            return self.resolve(namespace, path, avoid=avoid)
        except NoRoute:
            if not self._bus_up:
                raise
        try:
            record = await self._bus.get(route_key(namespace))
            if record is None:
                raise NoRoute(f"no live origin hosts {namespace!r}")
            route = Route.from_record(namespace, record)
            node_record = await self._bus.get(node_key(route.origin))
            if node_record is None:
                raise NoRoute(f"the origin of {namespace!r} ({route.origin}) is gone")
            info = NodeInfo.from_record(route.origin, node_record)
        except _BUS_DOWN as exc:
            raise NoRoute(f"{namespace!r} is unknown and the bus is unreachable") from exc
        except _BAD_RECORD as exc:
            raise NoRoute(f"unreadable route for {namespace!r}: {exc}") from exc
        if self._nodes.get(info.node_id) != info:
            fresh = info.node_id not in self._nodes
            self._nodes[info.node_id] = info
            if fresh:
                self._emit(TopologyEvent("node_up", node_id=info.node_id))
        self._apply_route(route)
        return self.resolve(namespace, path, avoid=avoid)

    def statistics(self) -> TopologyStatistics:
        return TopologyStatistics(
            nodes=len(self._nodes),
            routes=len(self._routes),
            hosted=len(self._hosted),
            bus_up=self._bus_up,
            heartbeats=self._heartbeats,
            heartbeat_failures=self._heartbeat_failures,
            resyncs=self._resyncs,
            events=self._events,
            snapshot_age=(self._clock() - self._synced_at) if self._synced_at else float("inf"),
        )

    # -- background work ------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            was_up = self._bus_up
            # A wake-up from here on (a change to publish) is another beat right after this.
            self._wake.clear()
            waiters, self._beat_waiters = self._beat_waiters, []
            try:
                announce, self._announce_due = not was_up or self._announce_due, False
                await self._beat(announce=announce)
                if not was_up and self._ready.is_set():
                    # Back after an outage: Redis may have lost every record and the
                    # other nodes re-register on their next beat. Until they all had
                    # the chance (one TTL), a missing record proves nothing.
                    self._settle_until = self._clock() + self._ttl
                await self._reap()
                legacy = self._legacy_nodes()
                if self._full_scan_due or not was_up or self._heartbeats % self._resync_every == 0:
                    await self._resync(scan=self._scan_due or not was_up or bool(legacy))
                    self._full_scan_due = self._scan_due = False
                elif legacy:
                    await self._watch_legacy(legacy)
            except _BUS_DOWN as exc:
                self._requeue(waiters)  # they wait for a beat that made it
                self._heartbeat_failures += 1
                if was_up or not self._ready.is_set():
                    _log.warning("bus_down", node=self.node.node_id, error=str(exc))
                self._bus_up = False
            except Exception:  # never let one bad beat stop the heartbeat for good
                self._requeue(waiters)
                self._heartbeat_failures += 1
                _log.exception("heartbeat_failed", node=self.node.node_id)
            else:
                self._heartbeats += 1
                if not was_up:
                    _log.info("bus_up", node=self.node.node_id, nodes=len(self._nodes))
                self._bus_up = True
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            self._ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

    def _requeue(self, waiters: list[asyncio.Future[None]]) -> None:
        self._beat_waiters[:0] = [w for w in waiters if not w.done()]

    async def _beat(self, *, announce: bool) -> None:
        me = self.node
        await self._bus.set(node_key(me.node_id), me.to_record(), ttl=self._ttl)
        # Missing from the index: first beat, Redis lost it, or we were late and another
        # node announced us dead. Either way the others must hear from us now.
        if await self._bus.index_touch(NODES_INDEX_KEY, me.node_id, self._ttl):
            announce = True
        missing: list[str] = []  # hosted routes that were not in the index
        for namespace in list(self._hosted):
            route = self._own_route(namespace)
            try:
                current = await self._bus.get(route_key(namespace))
                newer = (
                    current is not None
                    and current.get("origin") != me.node_id
                    and float(current.get("at", 0.0)) > route.at
                )
            except _BAD_RECORD:
                newer = False  # a corrupt record is overwritten with ours
            if newer:
                continue  # the publisher moved to a newer origin; do not steal it back
            await self._bus.set(route_key(namespace), route.to_record(), ttl=self._ttl)
            if await self._bus.index_touch(ROUTES_INDEX_KEY, namespace, self._ttl):
                missing.append(namespace)
        # Our record changed (hosts, certificates): publish it; a change of load alone
        # at most every load_publish_every beats (the others read no records per beat).
        record, last = me.to_record(), self._published
        if (
            announce
            or last is None
            or _without_load(last[0]) != _without_load(record)
            or (last[0] != record and self._heartbeats - last[1] >= self._load_every)
        ):
            await self._bus.publish(TOPOLOGY_CHANNEL, TopologyMessage.node_up(me).encode())
            self._published = (record, self._heartbeats)
        for namespace in list(self._hosted) if announce else missing:
            route = self._own_route(namespace)
            await self._bus.publish(TOPOLOGY_CHANNEL, TopologyMessage.route_set(route).encode())

    async def _reap(self) -> None:
        """Take the expired entries out of the indexes and tell everyone (one node gets
        each entry, so each expiry is announced once)."""
        if self._clock() < self._settle_until:
            return  # after an outage every entry may look expired: let them re-register
        for node_id in await self._bus.index_expire(NODES_INDEX_KEY):
            if node_id == self.node.node_id:
                self._announce_due = True  # our own beat was late: re-announce next beat
                continue
            await self._bus.publish(TOPOLOGY_CHANNEL, TopologyMessage.node_down(node_id).encode())
        for namespace in await self._bus.index_expire(ROUTES_INDEX_KEY):
            if namespace in self._hosted:
                self._announce_due = True
                continue
            route = self._routes.get(namespace)
            origin = route.origin if route is not None else ""
            message = TopologyMessage.route_gone(namespace, origin)
            await self._bus.publish(TOPOLOGY_CHANNEL, message.encode())

    def _legacy_nodes(self) -> list[str]:
        """Known nodes of the version before the indexes (their records lack ``indexed``)."""
        me = self.node.node_id
        return sorted(n for n, info in self._nodes.items() if not info.indexed and n != me)

    async def _read(self, key: Callable[[str], str], names: list[str]) -> dict[str, Record]:
        """The records of ``names`` in one MGET; a corrupt one is logged and left out."""
        try:
            records = await self._bus.get_many([key(n) for n in names])
        except _BAD_RECORD:  # one undecodable record spoils the batch: read them one by one
            records = []
            for name in names:
                try:
                    records.append(await self._bus.get(key(name)))
                except _BAD_RECORD as exc:
                    self._malformed.report("bad_record", key(name), exc)
                    records.append(None)
        return {n: r for n, r in zip(names, records, strict=True) if r is not None}

    async def _watch_legacy(self, node_ids: list[str]) -> None:
        """Nodes of the previous version never enter the index: their records tell."""
        started = self._generation
        records = await self._read(node_key, node_ids)
        removals = self._clock() >= self._settle_until
        for node_id in node_ids:
            if self._touched.get("n:" + node_id, -1) > started:  # a message newer than this read
                continue
            if node_id not in records:
                if removals:
                    self._drop_node(node_id)
                continue
            try:
                self._nodes[node_id] = NodeInfo.from_record(node_id, records[node_id])
            except _BAD_RECORD as exc:
                self._malformed.report("bad_node_record", node_key(node_id), exc)

    async def _resync(self, *, scan: bool) -> None:
        """Re-read every live node and route; applied only on full success.

        Read are the members of both indexes and whatever the snapshot holds (nodes of
        the previous version are not in the index), plus with ``scan`` every key of the
        keyspace that looks like one (at start and after a resync: nodes of the previous
        version we have not heard of). Entries changed by a bus message while this ran
        are newer than what it read, so it leaves them alone.
        """
        started = self._generation
        node_ids = set(await self._bus.index_members(NODES_INDEX_KEY)) | set(self._nodes)
        namespaces = set(await self._bus.index_members(ROUTES_INDEX_KEY)) | set(self._routes)
        if scan:
            node_ids.update(k[len(NODE_PREFIX) :] for k in await self._bus.keys(NODE_PREFIX + "*"))
            namespaces.update(
                k[len(ROUTE_PREFIX) :] for k in await self._bus.keys(ROUTE_PREFIX + "*")
            )
        node_ids.discard(self.node.node_id)
        nodes: dict[str, NodeInfo] = {}
        for node_id, record in (await self._read(node_key, sorted(node_ids))).items():
            try:
                nodes[node_id] = NodeInfo.from_record(node_id, record)
            except _BAD_RECORD as exc:
                self._malformed.report("bad_node_record", node_key(node_id), exc)
        routes: dict[str, Route] = {}
        for namespace, record in (await self._read(route_key, sorted(namespaces))).items():
            try:
                routes[namespace] = Route.from_record(namespace, record)
            except _BAD_RECORD as exc:
                self._malformed.report("bad_route_record", route_key(namespace), exc)
        nodes[self.node.node_id] = self.node
        for namespace in self._hosted:
            routes.setdefault(namespace, self._own_route(namespace))

        def untouched(key: str) -> bool:
            return self._touched.get(key, -1) <= started  # no message since this read began

        removals = self._clock() >= self._settle_until

        for node_id in set(self._nodes) - set(nodes) if removals else ():
            if untouched("n:" + node_id):
                self._nodes.pop(node_id)
                self._emit(TopologyEvent("node_down", node_id=node_id))
        for node_id, info in nodes.items():
            if self._nodes.get(node_id) != info and untouched("n:" + node_id):
                fresh = node_id not in self._nodes
                self._nodes[node_id] = info
                if fresh:
                    self._emit(TopologyEvent("node_up", node_id=node_id))
        for namespace in set(self._routes) - set(routes) if removals else ():
            if untouched("r:" + namespace):
                self._remove_route(namespace)
        for route in routes.values():
            if untouched("r:" + route.namespace):
                self._apply_route(route)
        self._touched = {k: g for k, g in self._touched.items() if g > started}
        self._synced_at = self._clock()

    async def _listen(self) -> None:
        async with self._bus.subscribe(TOPOLOGY_CHANNEL) as messages:
            async for message in messages:
                self._events += 1
                if message.resync:
                    self._resyncs += 1
                    self._full_scan_due = self._scan_due = True
                    self._wake.set()  # beat + full re-read right away
                    continue
                try:
                    self._on_message(message)
                except (ValueError, KeyError, TypeError) as exc:
                    self._malformed.report("bad_topology_message", repr(message.data)[:120], exc)

    def _on_message(self, message: BusMessage) -> None:
        msg = TopologyMessage.decode(message.data)
        self._generation += 1
        if msg.node_id:
            self._touched["n:" + msg.node_id] = self._generation
        if msg.namespace:
            self._touched["r:" + msg.namespace] = self._generation
        if msg.node is not None:  # node_up
            fresh = msg.node_id not in self._nodes
            self._nodes[msg.node_id] = msg.node
            if fresh:
                self._emit(TopologyEvent("node_up", node_id=msg.node_id))
        elif msg.event == "node_down":
            if msg.node_id == self.node.node_id:
                self._reannounce()  # another node took us for dead (a late beat)
            else:
                self._drop_node(msg.node_id)
        elif msg.route is not None:  # route_set
            self._apply_route(msg.route)
        elif msg.event == "route_gone":
            if msg.namespace in self._hosted and msg.origin in ("", self.node.node_id):
                self._reannounce()
                return
            gone = self._routes.get(msg.namespace)
            if gone is not None and gone.origin == (msg.origin or gone.origin):
                self._remove_route(msg.namespace)

    def _reannounce(self) -> None:
        self._announce_due = True
        self._wake.set()

    def _drop_node(self, node_id: str) -> None:
        if self._nodes.pop(node_id, None) is not None:
            self._emit(TopologyEvent("node_down", node_id=node_id))
            for namespace, route in list(self._routes.items()):
                if route.origin == node_id:
                    self._remove_route(namespace)

    def _apply_route(self, route: Route) -> None:
        old = self._routes.get(route.namespace)
        if old is not None and old.origin != route.origin and old.at > route.at:
            return  # a stale announcement lost the race against a newer one
        self._routes[route.namespace] = route
        if old is None or (old.origin, old.quic) != (route.origin, route.quic):
            self._emit(TopologyEvent("route_set", node_id=route.origin, namespace=route.namespace))

    def _remove_route(self, namespace: str) -> None:
        route = self._routes.pop(namespace, None)
        if route is not None:
            self._emit(TopologyEvent("route_gone", node_id=route.origin, namespace=namespace))

    def _emit(self, event: TopologyEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the topology
                _log.exception("topology_listener_failed", topology_event=event.event)
