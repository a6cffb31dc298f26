"""MoQT fMP4 ingest: a publisher proves its stream key, the origin validates and re-publishes.

A publisher reaches the origin like any MoQT client and publishes namespace
``stream/<org_id>/<external_input_id>`` either way the drafts allow:

* PUBLISH_NAMESPACE: the origin SUBSCRIBEs to ``.catalog`` (then ``catalog``, the
  MSF name, if that does not exist) from the start, then to every track the catalog
  lists, from the next group start. One subscription per track, whatever the number
  of viewers: the publisher's upload never grows with the audience.
* PUBLISH of each track (the catalog track included): the origin accepts and reads.

The stream key is the AUTHORIZATION TOKEN (any token type; the value is the key
in UTF-8) on PUBLISH_NAMESPACE / PUBLISH, or in CLIENT_SETUP for the whole session,
or ``?key=`` on the connection URL (the CONNECT path, or the PATH setup parameter):
whichever a client can set (aiomoqt's pub_example sends a bare PUBLISH, no token on it).
An authorizer whose ``requires_key`` is False (``--publish-auth none``) admits
publishers that present no key at all.
Refusals are REQUEST_ERROR UNAUTHORIZED with the reason (no key, wrong key, a
namespace the key does not own, an input already live through RTMP). A second MoQT
publish with the input's key takes the input over at its first valid media object:
the old broadcast ends with GOING_AWAY (no final catalog: viewers re-subscribe) and its
publisher is kicked; so a publisher that lost its session reconnects at once.
A publisher whose session is gone (without PUBLISH_NAMESPACE_DONE / PUBLISH_DONE) leaves
its broadcast held for ``publisher_reconnect_window`` seconds (:mod:`origin._reconnect`):
back within it, viewers simply go on; else the broadcast ends.

Nothing reaches the relay unchecked: the publisher's tracks are *not* attached to
the relay. Each object is validated first (the catalog parses as CMSF and every
track has a one-track CMAF ``initData``; each media object is whole CMAF chunks of
its track, a group starting at a SAP: :func:`media.parse_object`), then re-published
through the input's :class:`~origin.broadcast.Broadcast` with the publisher's group
and object ids. The broadcast (catalog included) opens with the first media object
that validates, so a publisher malformed from the start shows viewers nothing;
media objects are taken from a group start on. A malformed stream closes the publisher's session
(PROTOCOL_VIOLATION, reason ``malformed track <name>: ...``) and ends the broadcast
with PUBLISH_DONE MALFORMED_TRACK; the offending object is never forwarded.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from media import (
    CATALOG_TRACK,
    MSF_CATALOG_TRACK,
    Catalog,
    InitSegment,
    MediaError,
    is_catalog_track,
    parse_object,
    split_fmp4,
)
from moqt.aio import MoqtConnection
from moqt.errors import LocalError, PublishDoneCode, RequestErrorCode, SessionCloseCode
from moqt.events import (
    Event,
    ObjectReceived,
    PublishDoneReceived,
    PublishNamespaceDone,
    PublishNamespaceRequested,
    PublishRequested,
    RequestRejected,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
)
from moqt.session import Session
from moqt.types import AuthToken, Location, Namespace, ObjectStatus, SubscriptionFilter

from ._inputs import LiveInputs
from ._reconnect import adopt_input, hold_input
from .admission import Admission
from .broadcast import Broadcast, namespace_text
from .status import InputStatus

__all__ = ["MAX_TRACKS", "MalformedStream", "MoqtIngest", "PublisherAuthorizer"]

_log = structlog.get_logger("origin.moqt_ingest")

#: Media tracks one broadcast may declare (each costs an ingest subscription).
MAX_TRACKS = 32
# Media held while no catalog has arrived yet (see _hold): about a group of a high rendition.
_EARLY_OBJECTS = 512
_EARLY_BYTES = 16 << 20
# Objects of a group this many groups behind the newest one are too late to forward.
_LATE_GROUPS = 3


class PublisherAuthorizer(Protocol):
    async def authorize(self, external_input_id: str, stream_key: str) -> Admission: ...


def stream_key_from_path(path: str | None) -> str | None:
    """The ``?key=`` (or ``?token=``) of a connection URL or path, if any."""
    if not path:
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    for name in ("key", "token"):
        values = [v for v in query.get(name, []) if v]
        if values:
            return values[-1]
    return None


class MalformedStream(Exception):
    """What the publisher sent is not a valid CMSF broadcast."""

    def __init__(self, track: str, detail: str) -> None:
        super().__init__(f"malformed track {track}: {detail}")
        self.track = track
        self.detail = detail


@dataclass(slots=True, eq=False)
class _Input:
    external_input_id: str
    namespace: Namespace
    text: str
    announce_request: int | None = None
    catalog: Catalog | None = None
    inits: dict[str, InitSegment] = field(default_factory=dict)
    # request id (our SUBSCRIBE or their PUBLISH) -> track name
    tracks: dict[int, str] = field(default_factory=dict)
    subscribed: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    last_group: dict[str, int] = field(default_factory=dict)
    ours: set[int] = field(default_factory=set)  # our SUBSCRIBE request ids
    broadcast: Broadcast | None = None
    catalog_tries: list[bytes] = field(default_factory=list)
    dropped: int = 0
    # Media that arrived before any catalog, held until it comes (bounded).
    early: list[ObjectReceived | SubgroupStreamEnded | SubgroupStreamReset] = field(
        default_factory=list
    )
    early_bytes: int = 0


def stream_key_from(tokens: Sequence[AuthToken]) -> str | None:
    for token in tokens:
        try:
            text = token.value.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text:
            return text
    return None


def parse_stream_namespace(namespace: Namespace) -> str | None:
    """The external input id of ``stream/<org_id>/<external_input_id>``, else None."""
    if len(namespace) != 3 or namespace[0] != b"stream" or not all(namespace):
        return None
    try:
        return namespace[2].decode("ascii")
    except UnicodeDecodeError:
        return None


class MoqtIngest:
    """The publishing side of one MoQT session (see the module docstring)."""

    def __init__(
        self,
        connection: MoqtConnection,
        name: str,
        *,
        authorizer: PublisherAuthorizer,
        inputs: LiveInputs,
        reconnect_window: float = 10.0,
    ) -> None:
        self._conn = connection
        self.name = name
        self._authorizer = authorizer
        self._inputs = inputs
        self._reconnect_window = reconnect_window
        self._setup_tokens: tuple[AuthToken, ...] = ()
        self._path_key: str | None = None
        self._by_namespace: dict[Namespace, _Input] = {}
        self._by_request: dict[int, _Input] = {}
        self._closed = False
        self.refused = 0
        self.malformed = 0
        self._log = _log.bind(session=name)

    @property
    def session(self) -> Session:
        return self._conn.session

    def set_setup_tokens(self, tokens: tuple[AuthToken, ...], path: str | None = None) -> None:
        """The session's CLIENT_SETUP tokens and connection path (``?key=``)."""
        self._setup_tokens = tokens
        self._path_key = stream_key_from_path(path)

    def inputs(self) -> list[str]:
        return [i.external_input_id for i in self._by_namespace.values()]

    def owns(self, event: Event) -> bool:
        request_id = getattr(event, "request_id", None)
        return request_id is not None and request_id in self._by_request

    # --- admission -----------------------------------------------------------------------

    async def _admit(
        self, namespace: Namespace, tokens: tuple[AuthToken, ...]
    ) -> _Input | tuple[int, str]:
        state = self._by_namespace.get(namespace)
        if state is not None:
            return state
        input_id = parse_stream_namespace(namespace)
        if input_id is None:
            return RequestErrorCode.UNAUTHORIZED, (
                "publish under stream/<org_id>/<external_input_id>"
            )
        key = stream_key_from(tokens) or stream_key_from(self._setup_tokens) or self._path_key
        if key is None and getattr(self._authorizer, "requires_key", True):
            return RequestErrorCode.UNAUTHORIZED, (
                "missing stream key (AUTHORIZATION TOKEN, or ?key= on the URL)"
            )
        admission = await self._authorizer.authorize(input_id, key or "")
        if not admission.ok:
            return RequestErrorCode.UNAUTHORIZED, admission.reason or "invalid stream key"
        text = namespace_text(namespace)
        if admission.namespace != text:
            return RequestErrorCode.UNAUTHORIZED, f"this stream key does not own {text}"
        current = self._inputs.get(input_id)
        if current is not None and current.kind != "moqt" and not current.broadcast.held:
            return RequestErrorCode.UNAUTHORIZED, "the input is already being published"
        # Live through MoQT: the holder of the key takes it over at its first media object
        # (a publisher reconnecting before its lost session timed out); held (its publisher
        # dropped, the reconnect window runs): this publisher continues it (_open).
        if self._closed or self._conn.is_closed:
            return RequestErrorCode.INTERNAL_ERROR, "session closed"
        state = _Input(input_id, namespace, text)
        self._by_namespace[namespace] = state
        self._log.info("publisher_admitted", input=input_id, track=text)
        return state

    def _refuse(self, request_id: int, code: int, reason: str) -> None:
        self.refused += 1
        self._log.warning("publish_refused", code=int(code), reason=reason)
        try:
            self.session.reject_request(request_id, code, reason)
        except LocalError as exc:
            self._log.debug("reject_failed", error=str(exc))

    async def on_publish_namespace(self, ev: PublishNamespaceRequested) -> None:
        admitted = await self._admit(ev.namespace, ev.auth_tokens)
        if isinstance(admitted, tuple):
            self._refuse(ev.request_id, *admitted)
            return
        if admitted.announce_request is not None:
            self._refuse(
                ev.request_id, RequestErrorCode.UNAUTHORIZED, "namespace already published"
            )
            return
        admitted.announce_request = ev.request_id
        self._by_request[ev.request_id] = admitted
        try:
            self.session.accept_publish_namespace(ev.request_id)
        except LocalError as exc:
            self._log.debug("accept_failed", error=str(exc))
            return
        if not any(is_catalog_track(name) for name in admitted.tracks.values()):
            admitted.catalog_tries = [CATALOG_TRACK.encode(), MSF_CATALOG_TRACK.encode()]
            self._subscribe_catalog(admitted)

    async def on_publish(self, ev: PublishRequested) -> None:
        admitted = await self._admit(ev.namespace, ev.auth_tokens)
        if isinstance(admitted, tuple):
            self._refuse(ev.request_id, *admitted)
            return
        name = ev.name.decode("utf-8", "replace")
        if name in admitted.subscribed or name in admitted.tracks.values():
            self._refuse(ev.request_id, RequestErrorCode.UNAUTHORIZED, "track already published")
            return
        admitted.tracks[ev.request_id] = name
        admitted.subscribed.add(name)
        self._by_request[ev.request_id] = admitted
        try:
            self.session.accept_publish(ev.request_id, forward=True)
        except LocalError as exc:
            self._log.debug("accept_failed", error=str(exc))

    def _subscribe_catalog(self, state: _Input) -> None:
        name = state.catalog_tries.pop(0)
        self._subscribe(state, name, SubscriptionFilter.absolute_start(Location(0, 0)))

    def _subscribe(self, state: _Input, name: bytes, flt: SubscriptionFilter) -> None:
        try:
            rid = self.session.subscribe(state.namespace, name, filter=flt)
        except LocalError as exc:
            self._log.warning("ingest_subscribe_failed", rendition=name.decode(), error=str(exc))
            return
        state.tracks[rid] = name.decode("utf-8", "replace")
        state.subscribed.add(name.decode("utf-8", "replace"))
        state.ours.add(rid)
        self._by_request[rid] = state

    # --- events of our subscriptions / their publishes -------------------------------------

    def on_event(self, event: Event) -> None:
        state = self._by_request.get(getattr(event, "request_id", -1))
        if state is None:
            return
        try:
            if isinstance(event, ObjectReceived):
                self._on_object(state, event)
            elif isinstance(event, SubgroupStreamEnded | SubgroupStreamReset):
                self._on_subgroup_end(state, event)
            elif isinstance(event, RequestRejected):
                self._on_rejected(state, event)
            elif isinstance(event, PublishDoneReceived):
                self._on_done(state, event)
            elif isinstance(event, PublishNamespaceDone):
                self._end(state, PublishDoneCode.TRACK_ENDED, "publisher ended the broadcast")
            elif isinstance(event, SubscribeAccepted):
                pass
        except MalformedStream as exc:
            self._malformed(state, exc)

    def _on_rejected(self, state: _Input, event: RequestRejected) -> None:
        track = state.tracks.pop(event.request_id, None)
        self._by_request.pop(event.request_id, None)
        if track is None:
            return
        state.subscribed.discard(track)
        if is_catalog_track(track) and state.catalog is None:
            if state.catalog_tries:
                self._subscribe_catalog(state)
                return
            raise MalformedStream(track, f"no catalog track ({event.reason or 'refused'})")
        self._log.warning("ingest_track_refused", rendition=track, reason=event.reason)

    def _on_done(self, state: _Input, event: PublishDoneReceived) -> None:
        track = state.tracks.pop(event.request_id, None)
        self._by_request.pop(event.request_id, None)
        if track is None:
            return
        state.subscribed.discard(track)
        if is_catalog_track(track) or not any(
            not is_catalog_track(t) for t in state.tracks.values()
        ):
            self._end(state, PublishDoneCode.TRACK_ENDED, event.reason or "publisher ended")

    def _on_subgroup_end(
        self, state: _Input, event: SubgroupStreamEnded | SubgroupStreamReset
    ) -> None:
        if state.early:  # it may end a held subgroup: in order, after its objects
            if len(state.early) < _EARLY_OBJECTS:
                state.early.append(event)
            return
        track = state.tracks.get(event.request_id)
        if track is not None and state.broadcast is not None:
            state.broadcast.end_subgroup(track, event.group_id, event.subgroup_id)

    def _on_object(self, state: _Input, ev: ObjectReceived) -> None:
        track = state.tracks.get(ev.request_id)
        if track is None or ev.status is not ObjectStatus.NORMAL or not ev.payload:
            return
        if is_catalog_track(track):
            self._on_catalog(state, track, ev.payload)
            return
        init = state.inits.get(track)
        if init is None:
            if state.catalog is None and _hold(state, ev):
                return  # played once the catalog arrives
            state.dropped += 1  # not declared by the catalog
            return
        if track not in state.started:
            if ev.object_id != 0:
                state.dropped += 1  # joined mid-group: wait for the next group start
                return
            state.started.add(track)
        last = state.last_group.get(track)
        if last is not None and ev.group_id < last:
            # Groups travel on independent streams: the last objects of a group may come
            # after the next group began (a publisher sending newer groups first, a POP on
            # the way). A recent group's are media like any other; older ones are dropped.
            if ev.group_id < last - _LATE_GROUPS:
                state.dropped += 1
                return
        else:
            state.last_group[track] = ev.group_id
        try:
            parse_object(ev.payload, init, group_start=ev.object_id == 0)
        except MediaError as exc:
            raise MalformedStream(track, str(exc)) from exc
        if state.broadcast is None:
            # The first valid media object opens the broadcast: a publisher whose media
            # is malformed from the start never shows viewers anything, not even its catalog.
            assert state.catalog is not None
            state.broadcast = self._open(state)
            state.broadcast.set_catalog(state.catalog)
        elif state.broadcast.owner is not self:
            # Another publish of the input took the broadcast over: this one is kicked.
            state.dropped += 1
            return
        state.broadcast.send_object(
            track, ev.group_id, ev.object_id, ev.payload, subgroup_id=ev.subgroup_id or 0
        )

    def _open(self, state: _Input) -> Broadcast:
        """The input's broadcast for this publisher: the held one of a publisher that
        dropped within the reconnect window (it goes on with the same tracks), else a new
        one (replacing one another publish of the input still feeds: LiveInputs.begin)."""
        broadcast = adopt_input(
            self._inputs, state.external_input_id, state.text, "moqt", self.kick,
            owner=self,
        )  # fmt: skip
        if broadcast is None:
            broadcast = self._inputs.begin(state.external_input_id, state.text, "moqt", self.kick)
            broadcast.owner = self
            self._inputs.report(state.external_input_id, InputStatus.LIVE)
        return broadcast

    def _on_catalog(self, state: _Input, track: str, payload: bytes) -> None:
        try:
            catalog = Catalog.parse_update(payload, state.catalog)
        except MediaError as exc:
            raise MalformedStream(track, f"catalog: {exc}") from exc
        inits = _catalog_inits(catalog, state.text, track)
        state.catalog = catalog
        state.inits = inits
        if state.broadcast is not None and state.broadcast.owner is self:
            state.broadcast.set_catalog(catalog)
        early, state.early, state.early_bytes = state.early, [], 0
        for held in early:
            if isinstance(held, ObjectReceived):
                self._on_object(state, held)
            else:
                self._on_subgroup_end(state, held)
        if state.announce_request is not None:
            for name in inits:
                if name not in state.subscribed:
                    self._subscribe(state, name.encode(), SubscriptionFilter.next_group_start())

    # --- endings ---------------------------------------------------------------------------

    def _malformed(self, state: _Input, exc: MalformedStream) -> None:
        self.malformed += 1
        self._log.warning("publisher_malformed", input=state.external_input_id, error=str(exc))
        if state.broadcast is None:  # refused before it went live: still tell the owner why
            self._inputs.report(state.external_input_id, InputStatus.ERROR, str(exc))
        self._end(state, PublishDoneCode.MALFORMED_TRACK, str(exc))
        self._conn.close(SessionCloseCode.PROTOCOL_VIOLATION, str(exc)[:1000])

    def _end(self, state: _Input, code: int, reason: str, *, hold: bool = False) -> None:
        if self._by_namespace.get(state.namespace) is not state:
            return
        del self._by_namespace[state.namespace]
        for rid in [r for r, s in self._by_request.items() if s is state]:
            del self._by_request[rid]
            if rid in state.ours and not self._closed:
                try:
                    self.session.unsubscribe(rid)  # the publisher may stop sending
                except LocalError as exc:
                    self._log.debug("unsubscribe_failed", error=str(exc))
        broadcast = state.broadcast
        if broadcast is not None and broadcast.owner is not self:
            return  # taken over by another publish of the input: it goes on
        if broadcast is not None:
            window = self._reconnect_window if hold else 0.0
            if not hold_input(self._inputs, state.external_input_id, broadcast, window, reason):
                self._inputs.finish(state.external_input_id, broadcast, code, reason)
        elif (release := getattr(self._authorizer, "release", None)) is not None:
            release(state.external_input_id)

    def on_closed(self, reason: str = "publisher went away") -> None:
        """The publisher's session is gone: its broadcasts are held for the reconnect
        window (it said nothing: it may come back), then end."""
        self._closed = True
        for state in list(self._by_namespace.values()):
            self._end(state, PublishDoneCode.TRACK_ENDED, reason, hold=True)

    async def kick(self, reason: str) -> None:
        """The stream key was revoked: close the publisher's session."""
        self._conn.close(SessionCloseCode.UNAUTHORIZED, reason)


def _hold(state: _Input, ev: ObjectReceived) -> bool:
    """Keep a media object that came before the first catalog. The publisher wrote the
    catalog first, but QUIC streams are independent: a group's stream can overtake the
    catalog's. Without this the group is lost, and a publisher that then pauses never
    goes live."""
    if len(state.early) >= _EARLY_OBJECTS or state.early_bytes + len(ev.payload) > _EARLY_BYTES:
        return False
    state.early.append(ev)
    state.early_bytes += len(ev.payload)
    return True


def _catalog_inits(catalog: Catalog, namespace: str, track: str) -> dict[str, InitSegment]:
    media = [t for t in catalog.tracks if not is_catalog_track(t.name)]
    if not media:
        raise MalformedStream(track, "the catalog lists no media track")
    if len(media) > MAX_TRACKS:
        raise MalformedStream(track, f"the catalog lists more than {MAX_TRACKS} tracks")
    inits: dict[str, InitSegment] = {}
    for t in media:
        if t.namespace not in (None, namespace):
            raise MalformedStream(track, f"track {t.name!r} is outside {namespace}")
        if t.packaging != "cmaf":
            raise MalformedStream(track, f"track {t.name!r}: packaging must be cmaf")
        if not t.init_data:
            raise MalformedStream(track, f"track {t.name!r} has no initData")
        try:
            items = split_fmp4(t.init_data)
        except MediaError as exc:
            raise MalformedStream(track, f"track {t.name!r}: initData: {exc}") from exc
        if len(items) != 1 or not isinstance(items[0], InitSegment) or len(items[0].tracks) != 1:
            raise MalformedStream(
                track, f"track {t.name!r}: initData is not a one-track CMAF header"
            )
        inits[t.name] = items[0]
    return inits
