"""Client sessions from a POP to its upstream nodes (origins or a regional parent POP).

One :class:`UpstreamLink` per (upstream node, hop path): a ``moqt.aio`` client
session attached to the :class:`~pop._relay.PopRelay` as an upstream peer, so
every track routed through it shares it.  The link's URL carries the hop path
(``moqt://host:port/relay?hops=a,b``) so a parent POP can refuse loops.  Each
link lives in its own task inside the pool's task group; when its session ends
(the node died, Redis said so, its live tracks went silent for ``stall_timeout``
seconds: the POP's ``upstream_stall`` setting, or we closed it) the relay orphans its tracks and ``on_lost`` tells the
node to re-route them.  When the node has a cluster key, every link presents a
fresh node credential (:mod:`mesh.node_credential`) in its CLIENT_SETUP, which is
what makes the parent treat it as a relay link rather than as a viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from mesh._topology_types import Upstream, format_hop_path
from mesh.relay import Peer
from mesh.settings import parse_hostport
from moqt.aio import ConnectionClosed, MoqtConnection, SessionOptions, connect
from moqt.errors import SessionCloseCode
from moqt.events import Event, GoawayReceived, ObjectReceived, SessionClosed

from ._relay import PopRelay

__all__ = ["LinkKey", "UpstreamLink", "UpstreamPool", "UpstreamUnavailable"]

_log = structlog.get_logger("pop.upstream")


class UpstreamUnavailable(Exception):
    """No session to the chosen upstream node could be set up."""


@dataclass(frozen=True, slots=True)
class LinkKey:
    node_id: str
    quic: str
    path: tuple[str, ...]  # hop path sent upstream (ends with this POP)


@dataclass(slots=True, eq=False)
class UpstreamLink:
    key: LinkKey
    role: str
    ready: asyncio.Future[UpstreamLink]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    connection: MoqtConnection | None = None
    peer: Peer | None = None
    idle_since: float | None = None
    # request id -> (previous, last) arrival of its objects (monotonic): its cadence
    arrivals: dict[int, tuple[float, float]] = field(default_factory=dict)
    closed: bool = False
    failed: bool = False  # could not connect, or the upstream ended the session
    # Set by every control event from the upstream (answers free request ids).
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def request_path(self) -> tuple[str, ...]:
        """The hop path of the requests this link serves (without this POP)."""
        return self.key.path[:-1]


def link_url(key: LinkKey) -> str:
    host, port = parse_hostport(key.quic)
    if ":" in host:
        host = f"[{host}]"
    return f"moqt://{host}:{port}/relay?hops={format_hop_path(key.path)}"


class UpstreamPool:
    """The upstream links of one POP; :meth:`run` must be running for :meth:`get`."""

    def __init__(
        self,
        relay: PopRelay,
        *,
        options: SessionOptions,
        on_lost: Callable[[UpstreamLink], None],
        connect_timeout: float = 2.0,
        verify: bool = False,
        cafile: str | None = None,
        idle_timeout: float = 30.0,
        stall_timeout: float | None = 1.5,
        observe_forwarding: Callable[[float], None] | None = None,
        on_goaway: Callable[[UpstreamLink], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stack: str = "aioquic",
        congestion_control: str | None = None,
        credential: Callable[[], str | None] | None = None,
    ) -> None:
        if stall_timeout is not None and not stall_timeout > 0:
            raise ValueError("stall_timeout must be > 0 seconds, or None (off)")
        self._relay = relay
        self._credential = credential  # a fresh node credential per link, if any
        self._stack = stack  # the QUIC stack of the links (moqt.aio.QUIC_STACKS)
        self._congestion_control = congestion_control  # picoquic's; None: its default
        self._options = options
        self._on_lost = on_lost
        self._connect_timeout = connect_timeout
        self._verify = verify
        self._cafile = cafile
        self._idle_timeout = idle_timeout
        self._stall_timeout = stall_timeout
        self._observe = observe_forwarding
        self._on_goaway = on_goaway
        self._clock = clock
        self._links: dict[LinkKey, UpstreamLink] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._names = itertools.count(1)
        self.connects = 0
        self.failures = 0

    async def run(self) -> None:
        """Host the link tasks until cancelled (then every link is closed)."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._idle_loop())
            if self._stall_timeout is not None:
                tg.create_task(self._stall_loop(self._stall_timeout))
            try:
                await asyncio.Event().wait()
            finally:
                self._tg = None
                for link in list(self._links.values()):
                    link.stop.set()

    def links(self) -> list[UpstreamLink]:
        return [link for link in self._links.values() if not link.closed]

    def link_for_peer(self, peer: Peer) -> UpstreamLink | None:
        for link in self._links.values():
            if link.peer is peer:
                return link
        return None

    async def get(self, upstream: Upstream) -> UpstreamLink:
        """A ready link to ``upstream`` (shared); raises :class:`UpstreamUnavailable`."""
        key = LinkKey(upstream.node_id, upstream.quic, upstream.path)
        link = self._links.get(key)
        if link is None or link.closed:
            if self._tg is None:
                raise UpstreamUnavailable("the upstream pool is not running")
            link = UpstreamLink(
                key, upstream.role.value, asyncio.get_running_loop().create_future()
            )
            self._links[key] = link
            self._tg.create_task(self._run_link(link), name=f"upstream-{key.node_id}")
        try:
            return await asyncio.shield(link.ready)
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"{key.node_id} at {key.quic}: {exc}") from exc

    def close_node(self, node_id: str, reason: str) -> int:
        """Close every link to ``node_id`` (its tracks get re-routed); returns how many."""
        count = 0
        for link in list(self._links.values()):
            if link.key.node_id == node_id and not link.closed:
                _log.info("upstream_closing", upstream=node_id, reason=reason)
                self._close_link(link, reason)
                count += 1
        return count

    def _close_link(self, link: UpstreamLink, reason: str) -> None:
        if link.connection is not None and not link.connection.is_closed:
            link.connection.close(SessionCloseCode.NO_ERROR, reason)
        link.stop.set()

    async def _run_link(self, link: UpstreamLink) -> None:
        key = link.key
        url = link_url(key)
        name = f"up{next(self._names)}:{key.node_id}"
        self.connects += 1
        options = self._options
        credential = self._credential() if self._credential is not None else None
        if credential is not None:
            options = dataclasses.replace(options, auth_token=credential.encode())
        try:
            async with connect(
                url,
                verify=self._verify,
                cafile=self._cafile,
                options=options,
                setup_timeout=self._connect_timeout,
                stack=self._stack,
                congestion_control=self._congestion_control,
            ) as conn:
                link.connection = conn
                link.peer = self._relay.attach_upstream(conn.session, name, key.node_id)
                conn.set_event_handler(lambda c, ev: self._on_event(link, ev))
                _log.info("upstream_connected", upstream=key.node_id, quic=key.quic, link=name)
                link.ready.set_result(link)
                closed = asyncio.ensure_future(conn.wait_closed())
                stop = asyncio.ensure_future(link.stop.wait())
                try:
                    await asyncio.wait({closed, stop}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for f in (closed, stop):
                        f.cancel()
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            self.failures += 1
            link.failed = True
            _log.warning("upstream_failed", upstream=key.node_id, quic=key.quic, error=str(exc))
            if not link.ready.done():
                link.ready.set_exception(exc)
        finally:
            if not link.ready.done():
                link.ready.set_exception(UpstreamUnavailable("link stopped"))
            self._finish(link)

    def _on_event(self, link: UpstreamLink, event: Event) -> None:
        assert link.peer is not None
        if isinstance(event, ObjectReceived):
            started = self._clock()
            previous = link.arrivals.get(event.request_id)
            link.arrivals[event.request_id] = (
                previous[1] if previous is not None else started - 3600.0,
                started,
            )
            self._relay.handle_event(link.peer, event)
            if self._observe is not None:
                # Arrival to written into every viewer's session (this hop's forwarding time).
                self._observe(self._clock() - started)
            return
        self._relay.handle_event(link.peer, event)
        link.progress.set()
        if isinstance(event, GoawayReceived) and self._on_goaway is not None:
            _log.info("upstream_goaway", upstream=link.key.node_id)
            self._on_goaway(link)
        if isinstance(event, SessionClosed):
            link.failed = link.failed or event.by_peer
            _log.info(
                "upstream_closed", upstream=link.key.node_id, code=event.code, reason=event.reason
            )
            self._finish(link)

    def _finish(self, link: UpstreamLink) -> None:
        if link.closed:
            return
        link.closed = True
        link.stop.set()
        if self._links.get(link.key) is link:
            del self._links[link.key]
        if link.peer is not None:
            self._relay.detach(link.peer)  # orphans its tracks (no-op if already detached)
        # Retrieve a failure nobody awaited, so asyncio does not log it as lost.
        if link.ready.done() and not link.ready.cancelled():
            with contextlib.suppress(BaseException):
                link.ready.exception()
        self._on_lost(link)

    async def _idle_loop(self) -> None:
        """Close links that carried no track for ``idle_timeout`` seconds."""
        while True:
            await asyncio.sleep(min(1.0, self._idle_timeout / 2))
            now = self._clock()
            for link in list(self._links.values()):
                if link.peer is None or link.closed:
                    continue
                if link.peer.upstream:
                    link.idle_since = None
                elif link.idle_since is None:
                    link.idle_since = now
                elif now - link.idle_since >= self._idle_timeout:
                    self._close_link(link, "idle")

    async def _stall_loop(self, silence: float) -> None:
        """A link whose streaming tracks went silent for ``silence`` s is presumed dead.

        A SIGKILLed upstream never closes its QUIC connection (that takes the idle
        timeout) and its registry record lives until its TTL: silence on a live
        broadcast is the quickest sign.  Only tracks with a steady cadence count
        (their last two objects came less than ``silence / 2`` apart), so a track
        that is quiet by nature, like a catalog, never looks stalled.  The link is
        closed as failed: its tracks are re-routed and the node avoids that
        upstream for a while if it can.
        """
        while True:
            await asyncio.sleep(min(0.25, silence / 4))
            now = self._clock()
            for link in list(self._links.values()):
                if link.peer is None or link.closed:
                    continue
                live = {
                    t.upstream.request_id
                    for t in self._relay.tracks_on(link.peer)
                    if t.live and t.upstream is not None
                }
                for rid in [r for r in link.arrivals if r not in live]:
                    del link.arrivals[rid]
                silent = [
                    now - last
                    for previous, last in link.arrivals.values()
                    if last - previous < silence / 2 and now - last >= silence
                ]
                if silent:
                    _log.warning(
                        "upstream_stalled", upstream=link.key.node_id, silent=round(max(silent), 2)
                    )
                    link.failed = True
                    self._close_link(link, "stalled")
