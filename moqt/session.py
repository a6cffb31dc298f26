"""The sans-I/O MoQT session (drafts 16 and 14).

A :class:`Session` is one MoQT session over one QUIC connection or WebTransport
session.  It never does I/O: the adapter (``moqt.aio``) feeds it what arrived
(``stream_data_received``, ``datagram_received``, ...) and gets back a list of
:mod:`moqt.events`; everything the session sends goes through the
:class:`~moqt._transport.Transport` it was given, synchronously.

Rules every method follows:

* A peer fault (:class:`~moqt.errors.PeerError`) never escapes: the session closes
  (``transport.close(code, reason)``) and returns :class:`~moqt.events.SessionClosed`
  as the last event.  After that every input returns ``[]``.
* Application misuse raises :class:`~moqt.errors.LocalError` (and nothing else),
  with nothing sent.  After the session closed, new requests raise ``LocalError``
  while answers, data writes and ``close`` are silently ignored (they race with
  the close and are not misuse).
* Request ids: ours are returned by the request methods; the peer's arrive in the
  ``*Requested`` events.  Every method taking a request id documents which kind.
"""

from __future__ import annotations

from ._handles import FetchHandle, SubgroupHandle
from ._transport import Transport
from .errors import DataStreamResetCode, PublishDoneCode, RequestErrorCode, SessionCloseCode
from .events import Event
from .types import (
    Extensions,
    GroupOrder,
    Location,
    Namespace,
    ObjectStatus,
    SubscriptionFilter,
    TrackName,
)

__all__ = ["FetchHandle", "Session", "SubgroupHandle"]


class Session:
    """One MoQT session, client or server side.

    :param transport: where bytes go (see :class:`~moqt._transport.Transport`).
    :param is_client: True on the side that opened the connection.
    :param version: the draft selected by ALPN/WT protocol: ``DRAFT_16`` for ALPN
        ``moqt-16``; for ALPN ``moq-00`` pass ``DRAFT_14`` on a client (it offers
        draft-14 in CLIENT_SETUP) and ``None`` or ``DRAFT_14`` on a server (it picks
        draft-14 from the client's list, or closes with VERSION_NEGOTIATION_FAILED).
    :param max_request_id: the MAX_REQUEST_ID we grant at setup (the peer may use
        request ids below it).  As the peer's requests finish, the session raises
        the limit so the peer keeps ``max_request_id // 2`` requests of headroom.
    :param max_object_size: larger incoming objects close the session (PROTOCOL_VIOLATION).
    :param path: client only, raw QUIC only: the PATH setup parameter (URI path + query).
    :param authority: client only, raw QUIC only: the AUTHORITY setup parameter.
    :param auth_token: client only: an AUTHORIZATION TOKEN for CLIENT_SETUP (token type 0).
    :param implementation: the MOQT_IMPLEMENTATION setup parameter.
    :param webtransport: True over WebTransport (PATH/AUTHORITY are then refused).
    :param max_auth_token_cache_size: the MAX_AUTH_TOKEN_CACHE_SIZE we grant the peer.
    :param alias_wait: seconds to hold data for a track alias we do not know yet
        (it may precede the SUBSCRIBE_OK/PUBLISH that defines it) before dropping it.
    :param done_linger: seconds to keep a subscription after PUBLISH_DONE while its
        streams still arrive.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        is_client: bool,
        version: int | None,
        max_request_id: int = 100,
        max_object_size: int = 8 << 20,
        path: str | None = None,
        authority: str | None = None,
        auth_token: bytes | None = None,
        implementation: str = "clutchcall",
        webtransport: bool = False,
        max_auth_token_cache_size: int = 4096,
        alias_wait: float = 2.0,
        done_linger: float = 5.0,
    ) -> None:
        raise NotImplementedError

    # --- state -------------------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        raise NotImplementedError

    @property
    def version(self) -> int | None:
        """The negotiated draft; None on a moq-00 server until CLIENT_SETUP arrived."""
        raise NotImplementedError

    @property
    def setup_complete(self) -> bool:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    @property
    def peer_goaway(self) -> bool:
        """True once the peer sent GOAWAY (new requests then raise LocalError)."""
        raise NotImplementedError

    @property
    def requests_available(self) -> int:
        """How many more requests the peer's MAX_REQUEST_ID lets us send now."""
        raise NotImplementedError

    # --- inputs (adapter -> session) ---------------------------------------------------

    def initiate(self, now: float) -> list[Event]:
        """Start the session.  Client: open the control stream and send CLIENT_SETUP.
        Server: nothing to send (it waits for CLIENT_SETUP)."""
        raise NotImplementedError

    def stream_data_received(
        self, stream_id: int, data: bytes, end_stream: bool, now: float
    ) -> list[Event]:
        """Bytes (possibly empty, with ``end_stream`` for a bare FIN) arrived on a stream."""
        raise NotImplementedError

    def stream_reset(self, stream_id: int, error_code: int, now: float) -> list[Event]:
        """The peer reset (RESET_STREAM) the sending side of ``stream_id``."""
        raise NotImplementedError

    def stop_sending_received(self, stream_id: int, error_code: int, now: float) -> list[Event]:
        """The peer sent STOP_SENDING for a stream we send on; the session resets it."""
        raise NotImplementedError

    def datagram_received(self, data: bytes, now: float) -> list[Event]:
        """A QUIC/WebTransport datagram arrived."""
        raise NotImplementedError

    def connection_lost(self, code: int, reason: str, now: float) -> list[Event]:
        """The connection went away (peer close, idle timeout, ...): SessionClosed(by_peer=True)."""
        raise NotImplementedError

    def handle_timer(self, now: float) -> list[Event]:
        """Call when ``get_timer()``'s deadline passed (calling early is harmless)."""
        raise NotImplementedError

    def get_timer(self) -> float | None:
        """The next deadline (same clock as ``now``) or None."""
        raise NotImplementedError

    # --- our requests (each returns its request id) ------------------------------------

    def subscribe(
        self,
        namespace: Namespace,
        name: TrackName,
        *,
        filter: SubscriptionFilter | None = None,
        priority: int = 128,
        group_order: GroupOrder = GroupOrder.ORIGINAL,
        forward: bool = True,
        delivery_timeout: int | None = None,
        auth_token: bytes | None = None,
    ) -> int:
        """SUBSCRIBE to a track.  ``filter`` None means LargestObject.
        ``delivery_timeout`` is in milliseconds.  Answers: SubscribeAccepted or
        RequestRejected; then ObjectReceived..., PublishDoneReceived."""
        raise NotImplementedError

    def update_subscription(
        self,
        request_id: int,
        *,
        start: Location | None = None,
        end_group: int | None = None,
        priority: int | None = None,
        forward: bool | None = None,
        delivery_timeout: int | None = None,
    ) -> int:
        """Change our subscription ``request_id`` (a SUBSCRIBE of ours, or a PUBLISH we
        accepted): REQUEST_UPDATE (16) / SUBSCRIBE_UPDATE (14).  None keeps a value.
        ``end_group`` is inclusive; it turns the filter into AbsoluteRange.
        Returns the update's own request id (draft-16 answers with UpdateAccepted or
        RequestRejected for that id; draft-14 has no answer)."""
        raise NotImplementedError

    def unsubscribe(self, request_id: int) -> None:
        """UNSUBSCRIBE our subscription ``request_id``; the session forgets it (late
        objects for its alias are dropped quietly)."""
        raise NotImplementedError

    def fetch(
        self,
        namespace: Namespace,
        name: TrackName,
        start: Location,
        end: Location,
        *,
        priority: int = 128,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        auth_token: bytes | None = None,
    ) -> int:
        """Standalone FETCH of ``start`` (inclusive) .. ``end`` (the draft's "End
        Location, plus 1": object 0 means all of group ``end.group``).  Answers:
        FetchAccepted or RequestRejected; ObjectReceived(source=FETCH)...; FetchStreamEnded."""
        raise NotImplementedError

    def joining_fetch(
        self,
        subscribe_request_id: int,
        joining_start: int,
        *,
        absolute: bool = False,
        priority: int = 128,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        auth_token: bytes | None = None,
    ) -> int:
        """Joining FETCH for our LargestObject subscription ``subscribe_request_id``:
        relative (``joining_start`` groups before the subscription's largest group) or
        ``absolute`` (from group ``joining_start``).  Answers as for :meth:`fetch`."""
        raise NotImplementedError

    def fetch_cancel(self, request_id: int) -> None:
        """FETCH_CANCEL our fetch ``request_id`` (and STOP_SENDING its stream if open)."""
        raise NotImplementedError

    def publish(
        self,
        namespace: Namespace,
        name: TrackName,
        *,
        track_alias: int | None = None,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        largest: Location | None = None,
        forward: bool = True,
        expires: int = 0,
        auth_token: bytes | None = None,
        extensions: Extensions = (),
    ) -> int:
        """PUBLISH a track to the peer (we are the publisher).  ``track_alias`` None
        picks an unused one.  Objects may be sent at once with :meth:`open_subgroup`.
        Answers: PublishAccepted or RequestRejected; later Unsubscribed or
        SubscriptionUpdated.  End it with :meth:`publish_done`."""
        raise NotImplementedError

    def publish_namespace(self, namespace: Namespace, *, auth_token: bytes | None = None) -> int:
        """PUBLISH_NAMESPACE.  Answers: PublishNamespaceAccepted or RequestRejected;
        maybe later PublishNamespaceCancelled."""
        raise NotImplementedError

    def publish_namespace_done(self, request_id: int) -> None:
        """PUBLISH_NAMESPACE_DONE for our PUBLISH_NAMESPACE ``request_id``."""
        raise NotImplementedError

    def subscribe_namespace(
        self,
        prefix: Namespace,
        *,
        options: int = 2,
        forward: bool = True,
        auth_token: bytes | None = None,
    ) -> int:
        """SUBSCRIBE_NAMESPACE for ``prefix`` (draft-16: on its own bidi stream;
        ``options`` 0 = PUBLISH, 1 = NAMESPACE, 2 = both; draft-14: control stream,
        options ignored).  Answers: SubscribeNamespaceAccepted or RequestRejected;
        then NamespaceAnnounced/NamespaceWithdrawn (16) or PublishNamespaceRequested (14),
        and PublishRequested for matching tracks."""
        raise NotImplementedError

    def unsubscribe_namespace(self, request_id: int) -> None:
        """End our namespace subscription (16: FIN its stream; 14: UNSUBSCRIBE_NAMESPACE)."""
        raise NotImplementedError

    def track_status(
        self, namespace: Namespace, name: TrackName, *, auth_token: bytes | None = None
    ) -> int:
        """TRACK_STATUS.  Answers: TrackStatusReceived or RequestRejected."""
        raise NotImplementedError

    def goaway(self, new_uri: str = "", *, timeout: float | None = None) -> None:
        """Send GOAWAY (once).  Only a server may give ``new_uri``.  With ``timeout``
        (seconds), a server closes with GOAWAY_TIMEOUT if the peer still has the session
        open that long after the GOAWAY."""
        raise NotImplementedError

    def close(self, code: int = SessionCloseCode.NO_ERROR, reason: str = "") -> list[Event]:
        """Close the session (transport.close) and return ``[SessionClosed(by_peer=False)]``
        (``[]`` if already closed)."""
        raise NotImplementedError

    # --- answers to the peer's requests ------------------------------------------------

    def accept_subscribe(
        self,
        request_id: int,
        *,
        track_alias: int | None = None,
        expires: int = 0,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        largest: Location | None = None,
        extensions: Extensions = (),
    ) -> int:
        """SUBSCRIBE_OK for the peer's SUBSCRIBE ``request_id``; returns the track alias
        (``track_alias`` None picks an unused one).  ``largest`` is the track's largest
        Location (None if nothing was published); it is also what joining fetches for
        this subscription are computed from."""
        raise NotImplementedError

    def accept_update(self, update_request_id: int, *, largest: Location | None = None) -> None:
        """Draft-16 REQUEST_OK for the peer's REQUEST_UPDATE ``update_request_id``
        (see SubscriptionUpdated).  A no-op in draft-14 (SUBSCRIBE_UPDATE has no answer)."""
        raise NotImplementedError

    def reject_request(
        self,
        request_id: int,
        code: RequestErrorCode | int = RequestErrorCode.INTERNAL_ERROR,
        reason: str = "",
        *,
        retry_interval: int = 0,
    ) -> None:
        """Refuse any pending request of the peer (SUBSCRIBE, FETCH, PUBLISH,
        PUBLISH_NAMESPACE, SUBSCRIBE_NAMESPACE, TRACK_STATUS, REQUEST_UPDATE).

        Draft-16 sends REQUEST_ERROR; draft-14 sends the request's own *_ERROR message
        with ``code`` translated to that message's code space (a plain int is sent as
        is).  ``retry_interval`` (ms + 1, 0 = never) exists only in draft-16.
        Rejecting a REQUEST_UPDATE also ends its subscription with PUBLISH_DONE
        UPDATE_FAILED (draft-16 "REQUEST_UPDATE")."""
        raise NotImplementedError

    def accept_publish(
        self,
        request_id: int,
        *,
        forward: bool = True,
        priority: int = 128,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        filter: SubscriptionFilter | None = None,
        delivery_timeout: int | None = None,
    ) -> None:
        """PUBLISH_OK for the peer's PUBLISH ``request_id`` (``filter`` None = LargestObject
        in draft-14, unfiltered in draft-16).  Its objects arrive as ObjectReceived."""
        raise NotImplementedError

    def accept_publish_namespace(self, request_id: int) -> None:
        """Accept the peer's PUBLISH_NAMESPACE ``request_id``."""
        raise NotImplementedError

    def cancel_publish_namespace(
        self,
        request_id: int,
        code: RequestErrorCode | int = RequestErrorCode.INTERNAL_ERROR,
        reason: str = "",
    ) -> None:
        """PUBLISH_NAMESPACE_CANCEL: revoke our acceptance of the peer's namespace."""
        raise NotImplementedError

    def accept_subscribe_namespace(self, request_id: int) -> None:
        """Accept the peer's SUBSCRIBE_NAMESPACE ``request_id``."""
        raise NotImplementedError

    def announce_namespace(self, request_id: int, namespace: Namespace) -> None:
        """Draft-16 NAMESPACE on the peer's accepted SUBSCRIBE_NAMESPACE ``request_id``;
        ``namespace`` must start with its prefix.  (Draft-14 has no NAMESPACE message: use
        :meth:`publish_namespace`.)"""
        raise NotImplementedError

    def withdraw_namespace(self, request_id: int, namespace: Namespace) -> None:
        """Draft-16 NAMESPACE_DONE for a namespace announced with :meth:`announce_namespace`."""
        raise NotImplementedError

    def accept_fetch(
        self,
        request_id: int,
        *,
        end_location: Location,
        end_of_track: bool = False,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        extensions: Extensions = (),
    ) -> None:
        """FETCH_OK for the peer's FETCH ``request_id``.  ``end_location`` as the draft's
        FETCH_OK defines it (exclusive object; object 0 = whole group)."""
        raise NotImplementedError

    def answer_track_status(
        self,
        request_id: int,
        *,
        largest: Location | None = None,
        expires: int = 0,
        group_order: GroupOrder = GroupOrder.ASCENDING,
    ) -> None:
        """Answer the peer's TRACK_STATUS (REQUEST_OK in 16, TRACK_STATUS_OK in 14)."""
        raise NotImplementedError

    def publish_done(
        self,
        request_id: int,
        code: PublishDoneCode | int = PublishDoneCode.TRACK_ENDED,
        reason: str = "",
    ) -> None:
        """PUBLISH_DONE for a subscription we publish (an accepted SUBSCRIBE or our
        PUBLISH).  Open subgroup streams of it are reset first (CANCELLED), as the
        draft requires them closed; Stream Count is what we opened."""
        raise NotImplementedError

    # --- data out ----------------------------------------------------------------------

    def open_subgroup(
        self,
        request_id: int,
        group_id: int,
        subgroup_id: int = 0,
        *,
        priority: int | None = 128,
        extensions: bool = True,
        end_of_group: bool = False,
    ) -> SubgroupHandle:
        """Open a subgroup stream for subscription ``request_id`` (accepted SUBSCRIBE or
        our PUBLISH) and write its SUBGROUP_HEADER.  ``priority`` is the publisher
        priority (None = inherit the track's default: draft-16 only).  ``extensions``
        False uses a header type without per-object extension fields.
        ``end_of_group`` marks that this subgroup holds the group's last object."""
        raise NotImplementedError

    def write_object(
        self,
        handle: SubgroupHandle,
        object_id: int,
        payload: bytes,
        *,
        extensions: Extensions = (),
        status: ObjectStatus = ObjectStatus.NORMAL,
    ) -> None:
        """Write one object; ids must increase within the stream.  A non-NORMAL
        ``status`` needs an empty payload.  Dropped quietly if the handle is closed by
        the peer/session (STOP_SENDING, UNSUBSCRIBE, close)."""
        raise NotImplementedError

    def end_subgroup(self, handle: SubgroupHandle) -> None:
        """FIN the subgroup stream (every object was written)."""
        raise NotImplementedError

    def reset_subgroup(
        self, handle: SubgroupHandle, code: int = DataStreamResetCode.CANCELLED
    ) -> None:
        """RESET_STREAM the subgroup stream."""
        raise NotImplementedError

    def send_object_datagram(
        self,
        request_id: int,
        group_id: int,
        object_id: int,
        payload: bytes,
        *,
        priority: int | None = 128,
        extensions: Extensions = (),
        status: ObjectStatus = ObjectStatus.NORMAL,
        end_of_group: bool = False,
    ) -> None:
        """Send one object as OBJECT_DATAGRAM for subscription ``request_id``."""
        raise NotImplementedError

    def open_fetch_stream(self, request_id: int) -> FetchHandle:
        """Open the stream answering the peer's FETCH ``request_id`` (FETCH_HEADER)."""
        raise NotImplementedError

    def write_fetch_object(
        self,
        handle: FetchHandle,
        group_id: int,
        subgroup_id: int | None,
        object_id: int,
        payload: bytes,
        *,
        priority: int = 128,
        extensions: Extensions = (),
        status: ObjectStatus = ObjectStatus.NORMAL,
    ) -> None:
        """Write one fetched object (``subgroup_id`` None = it was a datagram object).
        Dropped quietly if the fetch was cancelled or the session closed."""
        raise NotImplementedError

    def end_fetch_stream(self, handle: FetchHandle) -> None:
        """FIN the fetch stream: every available object in the range was written."""
        raise NotImplementedError

    def reset_fetch_stream(
        self, handle: FetchHandle, code: int = DataStreamResetCode.CANCELLED
    ) -> None:
        """RESET_STREAM the fetch stream."""
        raise NotImplementedError
