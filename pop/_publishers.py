"""Publishing at the edge: a publisher that connects to a POP is carried to an origin.

Recipe 1 gives the browser one URL, the POP's, for publishing and for watching.
A POP does not ingest: it has no stream-key records, no validation, no broadcast.
:class:`EdgePublisher` hands one publishing session to an origin of the mesh
(docs/edge-publishing.md):

* on the session's first PUBLISH_NAMESPACE or PUBLISH it opens a session of its
  own to an origin (:func:`choose_ingest_origin`: the origin already hosting the
  namespace, else the least loaded one, in this POP's region first), with the
  publisher's stream key (the AUTHORIZATION TOKEN of the request or of CLIENT_SETUP,
  or ``?key=`` on the connection URL) as the AUTHORIZATION TOKEN of CLIENT_SETUP, and
  forwards the request with the key;
* the origin's answer goes back as is (REQUEST_OK, or REQUEST_ERROR with the
  origin's code and reason: ``invalid stream key for lv_...``), so a wrong key
  reads the same through a POP as at the origin;
* then it is a two-session splice: the origin's SUBSCRIBEs (with their filters)
  become SUBSCRIBEs on the publisher's session, their answers go back, and every
  subgroup stream of the publisher is written object by object, ids unchanged, on
  a subgroup stream to the origin; PUBLISH is forwarded the same way, and
  PUBLISH_DONE, PUBLISH_NAMESPACE_DONE, UNSUBSCRIBE and cancellations too;
* the origin closing its session (a malformed track, a revoked key) closes the
  publisher's with the same code and reason; the publisher leaving closes the
  origin's; an origin's GOAWAY becomes a GOAWAY without a URI, so the publisher
  reconnects to this POP, which picks another origin.

Nothing is cached or dropped here: every object goes to the origin, which is the
only one to judge it.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from mesh.settings import parse_hostport
from mesh.topology import NodeInfo, NodeRole
from moqt.aio import ConnectionClosed, MoqtConnection, SessionOptions, connect
from moqt.errors import LocalError, RequestErrorCode, SessionCloseCode
from moqt.events import (
    Event,
    FetchRequested,
    GoawayReceived,
    ObjectReceived,
    PublishAccepted,
    PublishDoneReceived,
    PublishNamespaceAccepted,
    PublishNamespaceCancelled,
    PublishNamespaceDone,
    PublishNamespaceRequested,
    PublishRequested,
    RequestRejected,
    SessionClosed,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
    SubscribeRequested,
    SubscriptionUpdated,
    TrackStatusRequested,
    Unsubscribed,
)
from moqt.session import SubgroupHandle
from moqt.types import AuthToken, Namespace

__all__ = [
    "EdgePublisher",
    "EdgePublishing",
    "choose_ingest_origin",
    "is_stream_key",
    "stream_key_from",
    "stream_key_from_path",
]

_log = structlog.get_logger("pop.publishers")

# The downstream events that belong to an edge publisher once it exists.
_PUBLISHER_EVENTS = (
    ObjectReceived,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
    RequestRejected,
    PublishDoneReceived,
    PublishNamespaceDone,
)
_MAX_NAMESPACES = 8


def is_stream_key(token: str) -> bool:
    """A stream key, not a playback JWT: keys are one base64url word (``sk_...``), a
    JWT is three dot-separated parts. The POP leaves keys to the origin."""
    return bool(token) and "." not in token


def stream_key_from(tokens: Sequence[AuthToken]) -> str | None:
    """The first AUTHORIZATION TOKEN that is a stream key, if any."""
    for token in tokens:
        try:
            text = token.value.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if is_stream_key(text):
            return text
    return None


def stream_key_from_path(path: str | None) -> str | None:
    """A stream key given as ``?key=`` (or a non-JWT ``?token=``) on the connection URL."""
    if not path:
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    for name in ("key", "token"):
        for value in query.get(name, []):
            if is_stream_key(value):
                return value
    return None


def choose_ingest_origin(
    nodes: Mapping[str, NodeInfo], region: str, hosting: str | None = None
) -> NodeInfo | None:
    """The origin a publisher arriving here is carried to: ``hosting`` (the origin the
    namespace is routed to: it decides whether the input is already live), else the
    least loaded origin that is not draining, in ``region`` first."""
    origins = [n for n in nodes.values() if n.role is NodeRole.ORIGIN]
    if hosting is not None:
        for node in origins:
            if node.node_id == hosting:
                return node
    if not origins:
        return None
    return min(
        origins,
        key=lambda n: (
            n.draining,  # it would GOAWAY the publisher (used only when no other is left)
            n.region != region,
            n.load.get("broadcasts", 0.0),
            n.load.get("sessions", 0.0),
            n.node_id,
        ),
    )


@dataclass(frozen=True, slots=True)
class EdgePublishing:
    """How a POP reaches origins for publishers (shared by its edge publishers)."""

    choose: Callable[[str], NodeInfo | None]  # namespace text -> origin
    verify: bool = False
    cafile: str | None = None
    stack: str = "aioquic"
    congestion_control: str | None = None  # picoquic's controller; None: its default
    connect_timeout: float = 5.0


@dataclass(slots=True, eq=False)
class _Upstream:
    node_id: str
    connection: MoqtConnection | None = None
    ready: asyncio.Future[MoqtConnection] | None = None
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class EdgePublisher:
    """One publishing session at this POP, spliced to a session of its own at an origin."""

    def __init__(self, downstream: MoqtConnection, name: str, publishing: EdgePublishing) -> None:
        self._down = downstream
        self.name = name
        self._publishing = publishing
        self._setup_key: str | None = None
        self._up: _Upstream | None = None
        self._closing = False
        # publisher's PUBLISH_NAMESPACE request id <-> ours at the origin
        self._namespaces: dict[int, int] = {}
        self._namespaces_up: dict[int, int] = {}
        # subscriptions: origin's SUBSCRIBE id <-> ours on the publisher's session, and the
        # publisher's PUBLISH id <-> ours at the origin: downstream id -> upstream id
        self._down_to_up: dict[int, int] = {}
        self._up_to_down: dict[int, int] = {}
        self._publishes: set[int] = set()  # downstream ids that are the publisher's PUBLISH
        self._streams: dict[tuple[int, int], SubgroupHandle] = {}
        self.objects = 0
        self.bytes = 0
        self._log = _log.bind(session=name)

    # --- what the POP node calls -------------------------------------------------------

    def set_setup(self, tokens: Sequence[AuthToken], path: str | None = None) -> None:
        """The session's CLIENT_SETUP tokens and connection path (``?key=`` / ``?token=``)."""
        self._setup_key = stream_key_from(tokens) or stream_key_from_path(path)

    @property
    def active(self) -> bool:
        """Something was accepted: the publisher is admitted (by an origin)."""
        return bool(self._namespaces or self._publishes)

    def owns(self, event: Event) -> bool:
        """Whether this downstream event belongs to the splice (not to the viewer side)."""
        if not isinstance(event, _PUBLISHER_EVENTS):
            return False
        rid = getattr(event, "request_id", None)
        return rid in self._down_to_up or rid in self._namespaces

    async def on_publish_namespace(self, ev: PublishNamespaceRequested) -> bool:
        """Forward the publisher's PUBLISH_NAMESPACE; True when the origin accepted it."""
        key = stream_key_from(ev.auth_tokens) or self._setup_key
        up = await self._upstream(ev.request_id, ev.namespace, key)
        if up is None:
            return False
        if len(self._namespaces) >= _MAX_NAMESPACES:
            self._reject(ev.request_id, RequestErrorCode.INTERNAL_ERROR, "too many namespaces")
            return False
        assert key is not None
        try:
            rid = up.session.publish_namespace(ev.namespace, auth_token=key.encode())
            answer = await up.wait_response(rid)
        except (LocalError, ConnectionClosed) as exc:
            self._reject(ev.request_id, *self._lost(exc))
            return False
        if isinstance(answer, RequestRejected):
            self._reject(ev.request_id, answer.code, answer.reason)
            self._close_idle_upstream()
            return False
        if not isinstance(answer, PublishNamespaceAccepted):
            self._reject(ev.request_id, RequestErrorCode.INTERNAL_ERROR, "unexpected answer")
            return False
        self._namespaces[ev.request_id] = rid
        self._namespaces_up[rid] = ev.request_id
        self._call(self._down.session.accept_publish_namespace, ev.request_id)
        self._log.info("edge_publisher_admitted", namespace=_text(ev.namespace))
        return True

    async def on_publish(self, ev: PublishRequested) -> bool:
        """Forward the publisher's PUBLISH of one track; True when the origin accepted it."""
        key = stream_key_from(ev.auth_tokens) or self._setup_key
        up = await self._upstream(ev.request_id, ev.namespace, key)
        if up is None:
            return False
        assert key is not None
        try:
            rid = up.session.publish(
                ev.namespace, ev.name, group_order=ev.group_order, largest=ev.largest,
                forward=ev.forward, auth_token=key.encode(), extensions=ev.extensions,
            )  # fmt: skip
        except LocalError as exc:
            self._reject(ev.request_id, *self._lost(exc))
            return False
        # Its objects may come at once: they go to the origin's pending PUBLISH.
        self._link(ev.request_id, rid)
        self._publishes.add(ev.request_id)
        try:
            answer = await up.wait_response(rid)
        except ConnectionClosed as exc:
            self._unlink(ev.request_id)
            self._reject(ev.request_id, *self._lost(exc))
            return False
        if isinstance(answer, RequestRejected):
            self._unlink(ev.request_id)
            self._reject(ev.request_id, answer.code, answer.reason)
            self._close_idle_upstream()
            return False
        if not isinstance(answer, PublishAccepted):
            return False
        self._call(
            self._down.session.accept_publish, ev.request_id, forward=answer.forward,
            group_order=answer.group_order, filter=answer.filter,
        )  # fmt: skip
        self._log.info("edge_track_admitted", track=_text((*ev.namespace, ev.name)))
        return True

    def on_event(self, event: Event) -> None:
        """An event of the publisher's session that :meth:`owns` said is ours."""
        if isinstance(event, ObjectReceived):
            self._on_object(event)
        elif isinstance(event, SubgroupStreamEnded | SubgroupStreamReset):
            self._on_stream_end(event)
        elif isinstance(event, SubscribeAccepted):
            up_rid = self._down_to_up.get(event.request_id)
            if up_rid is not None:
                self._call_up(
                    "accept_subscribe", up_rid, expires=event.expires,
                    group_order=event.group_order, largest=event.largest,
                    extensions=event.extensions,
                )  # fmt: skip
        elif isinstance(event, RequestRejected):
            up_rid = self._unlink(event.request_id)
            if up_rid is not None:
                self._call_up("reject_request", up_rid, event.code, event.reason)
        elif isinstance(event, PublishDoneReceived):
            self._end_streams(event.request_id)
            up_rid = self._unlink(event.request_id)
            if up_rid is not None:
                self._call_up("publish_done", up_rid, event.code, event.reason)
        elif isinstance(event, PublishNamespaceDone):
            up_rid = self._namespaces.pop(event.request_id, None)
            if up_rid is not None:
                self._namespaces_up.pop(up_rid, None)
                self._call_up("publish_namespace_done", up_rid)

    def close(self, reason: str = "publisher went away") -> None:
        """The publisher's session ended: end ours at the origin."""
        self._closing = True
        up = self._up
        if up is None:
            return
        if up.connection is not None and not up.connection.is_closed:
            up.connection.close(SessionCloseCode.NO_ERROR, reason)
        up.stop.set()

    async def wait_closed(self) -> None:
        if self._up is not None and self._up.task is not None:
            with contextlib.suppress(BaseException):
                await self._up.task

    # --- the origin side ---------------------------------------------------------------

    async def _upstream(
        self, request_id: int, namespace: Namespace, key: str | None
    ) -> MoqtConnection | None:
        if key is None:
            self._reject(
                request_id, RequestErrorCode.UNAUTHORIZED,
                "missing stream key (the AUTHORIZATION TOKEN of CLIENT_SETUP or the request)",
            )  # fmt: skip
            return None
        up = self._up
        if (
            up is None
            or up.ready is None
            or (up.connection is not None and up.connection.is_closed)
        ):
            origin = self._publishing.choose(_text(namespace))
            if origin is None:
                self._reject(
                    request_id, RequestErrorCode.INTERNAL_ERROR,
                    "no origin is available to take the broadcast, retry later",
                )  # fmt: skip
                return None
            up = self._up = _Upstream(origin.node_id)
            up.ready = asyncio.get_running_loop().create_future()
            up.task = asyncio.create_task(self._run_upstream(up, origin.quic, key))
        assert up.ready is not None
        try:
            return await asyncio.shield(up.ready)
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            self._reject(request_id, *self._lost(exc))
            return None

    async def _run_upstream(self, up: _Upstream, quic: str, key: str) -> None:
        assert up.ready is not None
        host, port = parse_hostport(quic)
        url = f"moqt://[{host}]:{port}" if ":" in host else f"moqt://{host}:{port}"
        options = SessionOptions(auth_token=key.encode(), implementation="clutchcall-pop")
        p = self._publishing
        try:
            async with connect(
                url, verify=p.verify, cafile=p.cafile, options=options,
                setup_timeout=p.connect_timeout, stack=p.stack,
                congestion_control=p.congestion_control,
            ) as conn:  # fmt: skip
                up.connection = conn
                conn.set_event_handler(lambda _c, event: self._on_upstream(up, event))
                self._log.info("edge_upstream_connected", origin=up.node_id, quic=quic)
                up.ready.set_result(conn)
                closed = asyncio.ensure_future(conn.wait_closed())
                stop = asyncio.ensure_future(up.stop.wait())
                try:
                    await asyncio.wait({closed, stop}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    closed.cancel()
                    stop.cancel()
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            self._log.warning("edge_upstream_failed", origin=up.node_id, error=str(exc))
            if not up.ready.done():
                up.ready.set_exception(exc)
            elif not self._closing and up is self._up:
                self._upstream_gone(exc)
        finally:
            if not up.ready.done():
                up.ready.set_exception(ConnectionClosed(0, "stopped", False))
            with contextlib.suppress(BaseException):
                up.ready.exception()

    def _on_upstream(self, up: _Upstream, event: Event) -> None:
        """An event of our session at the origin (one we gave up on says nothing more)."""
        if up is not self._up:
            return
        down = self._down.session
        if isinstance(event, SubscribeRequested):
            try:
                rid = down.subscribe(
                    event.namespace, event.name, filter=event.filter,
                    priority=event.subscriber_priority, group_order=event.group_order,
                    forward=event.forward, delivery_timeout=event.delivery_timeout,
                )  # fmt: skip
            except LocalError as exc:
                self._call_up("reject_request", event.request_id,
                              RequestErrorCode.INTERNAL_ERROR, str(exc))  # fmt: skip
                return
            self._link(rid, event.request_id)
        elif isinstance(event, Unsubscribed):
            down_rid = self._up_to_down.get(event.request_id)
            if down_rid is not None and down_rid not in self._publishes:
                self._unlink(down_rid)
                self._end_streams(down_rid)
                self._call(down.unsubscribe, down_rid)
        elif isinstance(event, SubscriptionUpdated):
            self._call_up("accept_update", event.update_request_id)
        elif isinstance(event, PublishNamespaceCancelled):
            down_rid = self._namespaces_up.pop(event.request_id, None)
            if down_rid is not None:
                self._namespaces.pop(down_rid, None)
                self._call(down.cancel_publish_namespace, down_rid, event.code, event.reason)
        elif isinstance(event, FetchRequested | TrackStatusRequested):
            self._call_up("reject_request", event.request_id, RequestErrorCode.NOT_SUPPORTED,
                          "not offered by an edge publisher")  # fmt: skip
        elif isinstance(event, GoawayReceived):
            # Reconnect to this POP (which picks another origin), not to the origin itself.
            self._call(down.goaway, "")
        elif isinstance(event, SessionClosed) and not self._closing:
            self._upstream_gone(ConnectionClosed(event.code, event.reason, event.by_peer))

    def _upstream_gone(self, exc: ConnectionClosed | OSError | TimeoutError) -> None:
        """The origin ended our session: the publisher's ends the same way."""
        code: int = SessionCloseCode.INTERNAL_ERROR
        reason = f"the origin went away: {exc}"
        if isinstance(exc, ConnectionClosed):
            if exc.by_peer:
                code, reason = exc.code, exc.reason or "closed by the origin"
            else:
                code, reason = exc.code, f"the origin session ended: {exc.reason}"
        self._log.info("edge_upstream_closed", code=code, reason=reason)
        self._closing = True
        if not self._down.is_closed:
            self._down.close(code, reason[:1000])

    def _close_idle_upstream(self) -> None:
        """A refused publisher keeps its session: the next request opens a new upstream."""
        up = self._up
        if not self._namespaces and not self._down_to_up and up is not None:
            self._up = None
            if up.connection is not None and not up.connection.is_closed:
                up.connection.close(SessionCloseCode.NO_ERROR, "nothing to publish")
            up.stop.set()

    # --- objects -----------------------------------------------------------------------

    def _on_object(self, ev: ObjectReceived) -> None:
        up_rid = self._down_to_up.get(ev.request_id)
        up = self._up.connection if self._up is not None else None
        if up_rid is None or up is None or ev.stream_id is None:
            return  # datagrams are not forwarded: CMAF ingest uses subgroup streams
        key = (ev.request_id, ev.stream_id)
        session = up.session
        try:
            handle = self._streams.get(key)
            if handle is None:
                handle = session.open_subgroup(
                    up_rid, ev.group_id, ev.subgroup_id or 0, priority=ev.publisher_priority
                )
                self._streams[key] = handle
            session.write_object(
                handle, ev.object_id, ev.payload, extensions=ev.extensions, status=ev.status
            )
        except LocalError as exc:
            self._log.debug("edge_forward_failed", error=str(exc))
            return
        self.objects += 1
        self.bytes += len(ev.payload)

    def _on_stream_end(self, ev: SubgroupStreamEnded | SubgroupStreamReset) -> None:
        handle = self._streams.pop((ev.request_id, ev.stream_id), None)
        up = self._up.connection if self._up is not None else None
        if handle is None or up is None:
            return
        if isinstance(ev, SubgroupStreamReset):
            self._call(up.session.reset_subgroup, handle, ev.error_code)
        else:
            self._call(up.session.end_subgroup, handle)

    def _end_streams(self, down_rid: int) -> None:
        up = self._up.connection if self._up is not None else None
        for key in [k for k in self._streams if k[0] == down_rid]:
            handle = self._streams.pop(key)
            if up is not None:
                self._call(up.session.end_subgroup, handle)

    # --- helpers -----------------------------------------------------------------------

    def _link(self, down_rid: int, up_rid: int) -> None:
        self._down_to_up[down_rid] = up_rid
        self._up_to_down[up_rid] = down_rid

    def _unlink(self, down_rid: int) -> int | None:
        up_rid = self._down_to_up.pop(down_rid, None)
        if up_rid is not None:
            self._up_to_down.pop(up_rid, None)
        self._publishes.discard(down_rid)
        return up_rid

    def _reject(self, request_id: int, code: int, reason: str) -> None:
        self._log.info("edge_publish_refused", code=int(code), reason=reason)
        self._call(self._down.session.reject_request, request_id, code, reason)

    def _lost(self, exc: BaseException) -> tuple[int, str]:
        if isinstance(exc, ConnectionClosed) and exc.by_peer:
            code = (
                RequestErrorCode.UNAUTHORIZED
                if exc.code == SessionCloseCode.UNAUTHORIZED
                else RequestErrorCode.INTERNAL_ERROR
            )
            return code, f"the origin refused: {exc.reason or exc.code}"
        return RequestErrorCode.INTERNAL_ERROR, f"cannot reach an origin: {exc or 'timeout'}"

    def _call_up(self, method: str, *args: object, **kwargs: object) -> None:
        up = self._up.connection if self._up is not None else None
        if up is not None:
            self._call(getattr(up.session, method), *args, **kwargs)

    def _call(self, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
        try:
            fn(*args, **kwargs)
        except LocalError as exc:
            self._log.debug("edge_call_failed", call=getattr(fn, "__name__", "?"), error=str(exc))


def _text(namespace: Sequence[bytes]) -> str:
    return "/".join(f.decode("utf-8", "replace") for f in namespace)
