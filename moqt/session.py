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
  with nothing sent (except :class:`RequestBlockedError`, which sends
  REQUESTS_BLOCKED once per limit).  After the session closed, new requests raise
  ``LocalError`` while answers, data writes and ``close`` are silently ignored (they
  race with the close and are not misuse); so are answers to, and cancellations of,
  requests that already ended.
* Request ids: ours are returned by the request methods; the peer's arrive in the
  ``*Requested`` events.  Every method taking a request id documents which kind.

A subscriber, in short::

    session = Session(transport, is_client=True, version=DRAFT_16)
    events = session.initiate(now)                 # CLIENT_SETUP
    ...                                            # feed input until SetupCompleted
    rid = session.subscribe((b"live",), b"video")  # -> SubscribeAccepted, ObjectReceived...

and a publisher answers ``SubscribeRequested`` with ``accept_subscribe(rid)`` (or
``reject_request(rid, RequestErrorCode.DOES_NOT_EXIST)``), then sends with
``h = open_subgroup(rid, group)``, ``write_object(h, object_id, payload)``,
``end_subgroup(h)`` and finally ``publish_done(rid)``.

The inputs and our requests are defined here; the answers to the peer's requests
(``accept_*``, ``reject_request``, ``publish_done``, ...) in ``moqt._answers`` and the
outgoing data (``open_subgroup``, ``write_object``, ...) in ``moqt._sending``: all
are public methods of :class:`Session`.
"""

from __future__ import annotations

from . import messages as m
from ._answers import AnswersMixin, default_priority
from ._apiutil import check_priority, check_timeout, effective_start, local_errors, our_tokens
from ._core import RequestBlockedError, SessionStatistics
from ._handles import FetchHandle, SubgroupHandle
from ._inbound import UNFILTERED
from ._sending import SendingMixin
from ._state import (
    FetchReq,
    NamespaceReq,
    State,
    SubNamespaceReq,
    SubReq,
    TrackStatusReq,
    UpdateReq,
)
from ._transport import Transport
from .errors import (
    DataStreamResetCode,
    LocalError,
    SessionCloseCode,
)
from .events import Event, SessionClosed
from .types import (
    Extensions,
    FetchType,
    FilterType,
    GroupOrder,
    Location,
    Namespace,
    SubscriptionFilter,
    TrackName,
    validate_namespace,
)

__all__ = [
    "FetchHandle",
    "RequestBlockedError",
    "Session",
    "SessionStatistics",
    "SubgroupHandle",
]

_CANCELLED = int(DataStreamResetCode.CANCELLED)


class Session(AnswersMixin, SendingMixin):
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
    :param strict_parameters: close the session on an unknown draft-16 *message*
        parameter, as the draft says. Off by default: independent clients send
        parameters from other drafts (aiomoqt 0.13.3 puts MAX_CACHE_DURATION, a
        track extension, in SUBSCRIBE); unknown ones are kept and ignored.
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
        strict_parameters: bool = False,
    ) -> None:
        super().__init__(
            transport,
            is_client=is_client,
            version=version,
            max_request_id=max_request_id,
            max_object_size=max_object_size,
            path=path,
            authority=authority,
            auth_token=auth_token,
            implementation=implementation,
            webtransport=webtransport,
            max_auth_token_cache_size=max_auth_token_cache_size,
            alias_wait=alias_wait,
            done_linger=done_linger,
            strict_parameters=strict_parameters,
        )
        self._init_dataplane()

    # --- state -------------------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        return self._is_client

    @property
    def version(self) -> int | None:
        """The negotiated draft; None on a moq-00 server until CLIENT_SETUP arrived."""
        return self._version

    @property
    def setup_complete(self) -> bool:
        return self._setup_complete

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def peer_goaway(self) -> bool:
        """True once the peer sent GOAWAY (new requests then raise LocalError)."""
        return self._peer_goaway

    @property
    def goaway_sent(self) -> bool:
        """True once we sent GOAWAY."""
        return self._goaway_sent

    @property
    def requests_available(self) -> int:
        """How many more requests the peer's MAX_REQUEST_ID lets us send now."""
        return max(0, (self._peer_max_request_id - self._next_local_id + 1) // 2)

    def statistics(self) -> SessionStatistics:
        """Counters since the session started (control messages, objects, bytes, ...)."""
        c = self._counters
        return SessionStatistics(
            control_messages_sent=c[0],
            control_messages_received=c[1],
            objects_sent=c[2],
            object_bytes_sent=c[3],
            objects_received=c[4],
            object_bytes_received=c[5],
            subgroup_streams_opened=c[6],
            open_requests=len(self._requests),
            held_bytes=self._held_bytes,
        )

    # --- inputs (adapter -> session) ---------------------------------------------------

    def initiate(self, now: float) -> list[Event]:
        """Start the session.  Client: open the control stream and send CLIENT_SETUP.
        Server: nothing to send (it waits for CLIENT_SETUP).  LocalError if called twice."""
        if self._is_client and self._control_stream is not None and not self._closed:
            raise LocalError("initiate() was already called")

        def run() -> None:
            if self._is_client:
                self._client_initiate()

        return self._run(now, run)

    def stream_data_received(
        self, stream_id: int, data: bytes, end_stream: bool, now: float
    ) -> list[Event]:
        """Bytes (possibly empty, with ``end_stream`` for a bare FIN) arrived on a stream."""
        return self._run(now, lambda: self._stream_data(stream_id, data, end_stream))

    def stream_reset(self, stream_id: int, error_code: int, now: float) -> list[Event]:
        """The peer reset (RESET_STREAM) the sending side of ``stream_id``."""
        return self._run(now, lambda: self._on_stream_reset(stream_id, error_code))

    def stop_sending_received(self, stream_id: int, error_code: int, now: float) -> list[Event]:
        """The peer sent STOP_SENDING for a stream we send on; the session resets it."""
        return self._run(now, lambda: self._on_stop_sending(stream_id, error_code))

    def datagram_received(self, data: bytes, now: float) -> list[Event]:
        """A QUIC/WebTransport datagram arrived."""

        def run() -> None:
            if self._setup_complete:
                self._datagram(data)

        return self._run(now, run)

    def connection_lost(self, code: int, reason: str, now: float) -> list[Event]:
        """The connection went away (peer close, idle timeout, ...): SessionClosed(by_peer=True)."""
        if self._closed:
            return []
        self._mark_closed()
        return [SessionClosed(code, reason, by_peer=True)]

    def handle_timer(self, now: float) -> list[Event]:
        """Call when ``get_timer()``'s deadline passed (calling early is harmless)."""

        def run() -> None:
            self._on_timer(now)
            if not self._closed:
                self._data_timer(now)

        return self._run(now, run)

    def get_timer(self) -> float | None:
        """The next deadline (same clock as ``now``) or None."""
        if self._closed:
            return None
        deadlines = self._deadlines() + self._data_deadlines()
        return min(deadlines) if deadlines else None

    # --- our requests (each returns its request id) ------------------------------------

    @local_errors
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
        new_group_request: int | None = None,
    ) -> int:
        """SUBSCRIBE to a track.  ``filter`` None means LargestObject.
        ``delivery_timeout`` is in milliseconds; ``new_group_request`` (draft-16 only)
        asks a dynamic-groups publisher to start a new group.  Answers: SubscribeAccepted or
        RequestRejected; then ObjectReceived..., PublishDoneReceived."""
        validate_namespace(namespace)
        check_priority(priority)
        flt = filter if filter is not None else SubscriptionFilter.largest_object()
        if self._find_receiving(namespace, name) is not None:
            raise LocalError("already subscribed to this track in this session")
        request_id = self._new_request_id()
        if new_group_request is not None and not self._draft16:
            raise LocalError("NEW_GROUP_REQUEST is draft-16 only")
        params = m.MessageParameters.build(
            auth_tokens=our_tokens(auth_token),
            delivery_timeout=check_timeout(delivery_timeout),
            new_group_request=new_group_request,
        )
        self._send(
            m.Subscribe(request_id, namespace, name, priority, group_order, forward, flt, params)
        )
        self._requests[request_id] = SubReq(
            request_id,
            ours=True,
            namespace=namespace,
            name=name,
            receiving=True,
            filter=flt,
            original_filter=flt,
            priority=priority,
            group_order=group_order,
            forward=forward,
            delivery_timeout=delivery_timeout,
        )
        return request_id

    @local_errors
    def update_subscription(
        self,
        request_id: int,
        *,
        start: Location | None = None,
        end_group: int | None = None,
        priority: int | None = None,
        forward: bool | None = None,
        delivery_timeout: int | None = None,
        new_group_request: int | None = None,
    ) -> int:
        """Change our subscription ``request_id`` (a SUBSCRIBE of ours, or a PUBLISH we
        accepted): REQUEST_UPDATE (16) / SUBSCRIBE_UPDATE (14).  None keeps a value.
        ``end_group`` is inclusive; it turns the filter into AbsoluteRange.
        ``new_group_request`` is draft-16 only.
        Returns the update's own request id (draft-16 answers with UpdateAccepted or
        RequestRejected for that id; draft-14 has no answer)."""
        sub = self._receiving_sub(request_id, "update_subscription")
        if priority is not None:
            check_priority(priority)
        old = sub.filter or UNFILTERED
        # Where the subscription starts now ("Subscription Filters"): LargestObject and
        # NextGroupStart are relative to the Largest Location in SUBSCRIBE_OK.
        old_start = effective_start(old, sub.largest)
        new_end = end_group if end_group is not None else old.end_group
        new_filter = old
        if start is not None or end_group is not None:
            base = start if start is not None else old_start
            try:
                new_filter = (
                    SubscriptionFilter.absolute_range(base, new_end)
                    if new_end is not None
                    else SubscriptionFilter.absolute_start(base)
                )
            except ValueError as exc:
                raise LocalError(str(exc)) from None
        if not self._draft16:
            # Draft-14 "SUBSCRIBE_UPDATE": narrowing only, all fields present.
            fstart = effective_start(new_filter, sub.largest)
            if fstart < old_start or (
                old.end_group is not None
                and (new_filter.end_group is None or new_filter.end_group > old.end_group)
            ):
                raise LocalError("draft-14 SUBSCRIBE_UPDATE can only narrow a subscription")
        if new_group_request is not None and not self._draft16:
            raise LocalError("NEW_GROUP_REQUEST is draft-16 only")
        update_id = self._new_request_id()
        if self._draft16:
            params = m.MessageParameters.build(
                subscription_filter=new_filter if new_filter is not old else None,
                subscriber_priority=priority,
                forward=forward,
                delivery_timeout=check_timeout(delivery_timeout),
                new_group_request=new_group_request,
            )
            self._send(m.RequestUpdate(update_id, request_id, params))
            self._requests[update_id] = UpdateReq(update_id, ours=True, target=request_id)
        else:
            fstart = effective_start(new_filter, sub.largest)
            end_plus_one = 0 if new_filter.end_group is None else new_filter.end_group + 1
            params = m.MessageParameters.build(delivery_timeout=check_timeout(delivery_timeout))
            self._send(
                m.SubscribeUpdate(
                    update_id,
                    request_id,
                    fstart,
                    end_plus_one,
                    sub.priority if priority is None else priority,
                    sub.forward if forward is None else forward,
                    params,
                )
            )
        sub.filter = new_filter
        if priority is not None:
            sub.priority = priority
        if forward is not None:
            sub.forward = forward
        if delivery_timeout is not None:
            sub.delivery_timeout = delivery_timeout
        return update_id

    @local_errors
    def unsubscribe(self, request_id: int) -> None:
        """UNSUBSCRIBE subscription ``request_id`` (our SUBSCRIBE, or a PUBLISH we
        received); the session forgets it (late objects for its alias are dropped quietly).
        A subscription that already ended (PUBLISH_DONE, an error) is a no-op."""
        if self._closed or self._ended(request_id):
            return
        sub = self._receiving_sub(request_id, "unsubscribe")
        self._send(m.Unsubscribe(request_id))
        self._end_request(sub)

    @local_errors
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
        validate_namespace(namespace)
        check_priority(priority)
        if end < start and not (end.object == 0 and end.group >= start.group):
            # "Fetch Handling": End Location MUST NOT be smaller than Start Location
            # ({g, 0} means all of group g).
            raise LocalError(f"fetch end {end} is before its start {start}")
        request_id = self._new_request_id()
        params = m.MessageParameters.build(auth_tokens=our_tokens(auth_token))
        self._send(
            m.Fetch(
                request_id,
                FetchType.STANDALONE,
                standalone=m.StandaloneFetch(namespace, name, start, end),
                subscriber_priority=priority,
                group_order=group_order,
                parameters=params,
            )
        )
        self._requests[request_id] = FetchReq(
            request_id,
            ours=True,
            namespace=namespace,
            name=name,
            start=start,
            end=end,
            priority=priority,
            group_order=group_order,
        )
        return request_id

    @local_errors
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
        check_priority(priority)
        sub = self._own(subscribe_request_id, SubReq, "joining_fetch")
        if not sub.receiving or sub.is_publish or sub.state is State.DONE:
            raise LocalError(f"request {subscribe_request_id} is not our active SUBSCRIBE")
        if sub.original_filter is None or sub.original_filter.type is not FilterType.LARGEST_OBJECT:
            # "Joining Fetches": only for a LargestObject subscription.
            raise LocalError("a joining fetch needs a LargestObject subscription")
        if joining_start < 0:
            raise LocalError("joining_start must not be negative")
        request_id = self._new_request_id()
        fetch_type = FetchType.ABSOLUTE_JOINING if absolute else FetchType.RELATIVE_JOINING
        params = m.MessageParameters.build(auth_tokens=our_tokens(auth_token))
        self._send(
            m.Fetch(
                request_id,
                fetch_type,
                joining=m.JoiningFetch(subscribe_request_id, joining_start),
                subscriber_priority=priority,
                group_order=group_order,
                parameters=params,
            )
        )
        self._requests[request_id] = FetchReq(
            request_id,
            ours=True,
            namespace=sub.namespace,
            name=sub.name,
            fetch_type=fetch_type,
            priority=priority,
            group_order=group_order,
            joining_request_id=subscribe_request_id,
        )
        return request_id

    @local_errors
    def fetch_cancel(self, request_id: int) -> None:
        """FETCH_CANCEL our fetch ``request_id`` (and STOP_SENDING its stream if open);
        a no-op once the fetch ended (its stream's FIN, an error)."""
        if self._closed or self._ended(request_id):
            return
        req = self._own(request_id, FetchReq, "fetch_cancel")
        self._send(m.FetchCancel(request_id))
        self._end_request(req)

    @local_errors
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
        validate_namespace(namespace)
        if self._publishing_track(namespace, name, exclude=None) is not None:
            raise LocalError("this track is already published in this session")
        alias = self._pick_alias(track_alias)
        request_id = self._new_request_id()
        params = m.MessageParameters.build(
            auth_tokens=our_tokens(auth_token), expires=expires or None
        )
        if self._draft16:
            ext = m.TrackExtensions(
                tuple(extensions)
                + (
                    ((m.TrackExtensionType.DEFAULT_PUBLISHER_GROUP_ORDER, int(group_order)),)
                    if group_order is not GroupOrder.ORIGINAL
                    and m.TrackExtensionType.DEFAULT_PUBLISHER_GROUP_ORDER
                    not in {k for k, _ in extensions}
                    else ()
                )
            )
            msg = m.Publish(request_id, namespace, name, alias, None, largest, forward, params, ext)
        else:
            if extensions:
                raise LocalError("draft-14 PUBLISH carries no track extensions")
            order = GroupOrder.ASCENDING if group_order is GroupOrder.ORIGINAL else group_order
            msg = m.Publish(request_id, namespace, name, alias, order, largest, forward, params)
        self._send(msg)
        sub = SubReq(
            request_id,
            ours=True,
            namespace=namespace,
            name=name,
            receiving=False,
            is_publish=True,
            group_order=group_order,
            forward=forward,
            track_alias=alias,
            largest=largest,
        )
        self._requests[request_id] = sub
        sub.default_priority = default_priority(extensions)
        self._tx_aliases[alias] = sub
        return request_id

    @local_errors
    def publish_namespace(self, namespace: Namespace, *, auth_token: bytes | None = None) -> int:
        """PUBLISH_NAMESPACE.  Answers: PublishNamespaceAccepted or RequestRejected;
        maybe later PublishNamespaceCancelled."""
        validate_namespace(namespace)
        request_id = self._new_request_id()
        params = m.MessageParameters.build(auth_tokens=our_tokens(auth_token))
        self._send(m.PublishNamespace(request_id, namespace, params))
        self._requests[request_id] = NamespaceReq(request_id, ours=True, namespace=namespace)
        return request_id

    @local_errors
    def publish_namespace_done(self, request_id: int) -> None:
        """PUBLISH_NAMESPACE_DONE for our PUBLISH_NAMESPACE ``request_id``."""
        if self._closed or self._ended(request_id):
            return
        req = self._own(request_id, NamespaceReq, "publish_namespace_done")
        if self._draft16:
            self._send(m.PublishNamespaceDone(request_id=request_id))
        else:
            self._send(m.PublishNamespaceDone(namespace=req.namespace))
        self._finish(req)

    @local_errors
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
        validate_namespace(prefix, allow_empty=self._draft16)
        if options not in (0, 1, 2):
            raise LocalError("options is 0 (PUBLISH), 1 (NAMESPACE) or 2 (both)")
        if not self._draft16 and options != 2:
            raise LocalError("draft-14 SUBSCRIBE_NAMESPACE always asks for both")
        request_id = self._new_request_id()
        params = m.MessageParameters.build(
            auth_tokens=our_tokens(auth_token), forward=None if forward else False
        )
        if not self._draft16 and not forward:
            params = m.MessageParameters.build(auth_tokens=our_tokens(auth_token))
        msg = m.SubscribeNamespace(request_id, prefix, m.SubscribeOptions(options), params)
        req = SubNamespaceReq(request_id, ours=True, prefix=prefix, options=options)
        if self._draft16:
            # Draft-16 "SUBSCRIBE_NAMESPACE": on a new bidirectional stream.
            stream_id = self._transport.open_stream(unidirectional=False)
            req.stream_id = stream_id
            self._ns_streams[stream_id] = req
            self._send_on(stream_id, msg)
        else:
            self._send(msg)
        self._requests[request_id] = req
        return request_id

    @local_errors
    def unsubscribe_namespace(self, request_id: int) -> None:
        """End our namespace subscription (16: FIN its stream; 14: UNSUBSCRIBE_NAMESPACE)."""
        if self._closed or self._ended(request_id):
            return
        req = self._own(request_id, SubNamespaceReq, "unsubscribe_namespace")
        if self._draft16:
            assert req.stream_id is not None
            # "Subscribing to Namespaces": cancelled by closing the stream.
            self._transport.send_stream_data(req.stream_id, b"", True)
            self._transport.stop_sending(req.stream_id, _CANCELLED)
            self._ns_streams.pop(req.stream_id, None)
            self._ns_bufs.pop(req.stream_id, None)
            self._ignored_streams.add(req.stream_id)
        else:
            self._send(m.UnsubscribeNamespace(req.prefix))
        self._finish(req)

    @local_errors
    def track_status(
        self, namespace: Namespace, name: TrackName, *, auth_token: bytes | None = None
    ) -> int:
        """TRACK_STATUS.  Answers: TrackStatusReceived or RequestRejected."""
        validate_namespace(namespace)
        request_id = self._new_request_id()
        params = m.MessageParameters.build(auth_tokens=our_tokens(auth_token))
        self._send(m.TrackStatus(request_id, namespace, name, parameters=params))
        self._requests[request_id] = TrackStatusReq(
            request_id, ours=True, namespace=namespace, name=name
        )
        return request_id

    @local_errors
    def goaway(self, new_uri: str = "", *, timeout: float | None = None) -> None:
        """Send GOAWAY (once).  Only a server may give ``new_uri``.  With ``timeout``
        (seconds), a server closes with GOAWAY_TIMEOUT if the peer still has the session
        open that long after the GOAWAY.  A no-op after close; LocalError before setup
        completes (there is nothing to migrate: ``close()`` such a session) or when sent
        twice (check :attr:`goaway_sent`)."""
        if self._closed:
            return
        self._require_open()
        if self._goaway_sent:
            raise LocalError("GOAWAY was already sent")
        if new_uri and self._is_client:
            raise LocalError("only a server may name a new session URI")
        self._goaway_sent = True
        self._send(m.Goaway(new_uri))
        if timeout is not None and not self._is_client:
            self._goaway_deadline = self._now + timeout

    @local_errors
    def close(self, code: int = SessionCloseCode.NO_ERROR, reason: str = "") -> list[Event]:
        """Close the session (transport.close) and return ``[SessionClosed(by_peer=False)]``
        (``[]`` if already closed)."""
        if self._closed:
            return []
        self._events = []
        self._fail(int(code), reason)
        events, self._events = self._events, []
        return events
