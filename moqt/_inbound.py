"""Control messages from the peer: one handler per message, the state machines they drive.

Section names in comments are draft-16's unless a draft-14 section is named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import messages as m
from ._codes import publish_done_from_wire, request_error_from_wire, request_error_to_wire
from ._core import SessionCore
from ._state import (
    FetchReq,
    NamespaceReq,
    Req,
    State,
    SubNamespaceReq,
    SubReq,
    TrackStatusReq,
    UpdateReq,
)
from .errors import ProtocolViolation, RequestErrorCode, SessionCloseCode, SessionError
from .events import (
    FetchAccepted,
    FetchCancelled,
    FetchRequested,
    GoawayReceived,
    NamespaceAnnounced,
    NamespaceWithdrawn,
    PublishAccepted,
    PublishDoneReceived,
    PublishNamespaceAccepted,
    PublishNamespaceCancelled,
    PublishNamespaceDone,
    PublishNamespaceRequested,
    PublishRequested,
    RequestKind,
    RequestRejected,
    RequestsUnblocked,
    SubscribeAccepted,
    SubscribeNamespaceAccepted,
    SubscribeNamespaceEnded,
    SubscribeNamespaceRequested,
    SubscribeRequested,
    SubscriptionUpdated,
    TrackStatusReceived,
    TrackStatusRequested,
    Unsubscribed,
    UpdateAccepted,
)
from .types import (
    AuthToken,
    FetchType,
    FilterType,
    GroupOrder,
    Location,
    Namespace,
    SubscriptionFilter,
)

__all__ = ["UNFILTERED", "InboundMixin", "prefixes_overlap"]

# Draft-16 "SUBSCRIPTION FILTER Parameter": omitted means unfiltered, which
# "Subscription Filters" defines as AbsoluteStart {0, 0}.
UNFILTERED = SubscriptionFilter.absolute_start(Location(0, 0))
DEFAULT_PRIORITY = 128


def prefixes_overlap(a: Namespace, b: Namespace) -> bool:
    """True when one namespace prefix is a prefix of (or equal to) the other."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


class InboundMixin(SessionCore):
    """Handlers for every control message (control stream and draft-16 namespace streams)."""

    # --- dispatch ------------------------------------------------------------------------

    def _on_control_message(self, msg: m.ControlMessage, ns_stream: int | None) -> None:
        if isinstance(msg, (m.ClientSetup, m.ServerSetup)):
            raise ProtocolViolation(f"{type(msg).__name__} after setup")
        if ns_stream is not None:
            self._on_ns_stream_message(msg, ns_stream)
            return
        if isinstance(msg, (m.SubscribeNamespace, m.Namespace, m.NamespaceDone)) and self._draft16:
            # Draft-16 "SUBSCRIBE_NAMESPACE": these live on their own bidi stream.
            raise ProtocolViolation(f"{type(msg).__name__} on the control stream")
        handler = _HANDLERS.get(type(msg))
        if handler is None:  # pragma: no cover - every registered type has a handler
            raise ProtocolViolation(f"unexpected {type(msg).__name__}")
        handler(self, msg)

    def _tokens_of(self, params: m.MessageParameters) -> tuple[AuthToken, ...]:
        return self._tokens.resolve(params.auth_tokens)

    # --- session-wide ----------------------------------------------------------------------

    def _h_goaway(self, msg: m.Goaway) -> None:
        if self._peer_goaway:
            raise ProtocolViolation("second GOAWAY")
        if not self._is_client and msg.new_session_uri:
            raise ProtocolViolation("GOAWAY with a URI from a client")
        self._peer_goaway = True
        self._emit(GoawayReceived(msg.new_session_uri))

    def _h_max_request_id(self, msg: m.MaxRequestId) -> None:
        if msg.max_request_id <= self._peer_max_request_id:
            raise ProtocolViolation(
                f"MAX_REQUEST_ID {msg.max_request_id} does not increase {self._peer_max_request_id}"
            )
        self._peer_max_request_id = msg.max_request_id
        if self._blocked_on is not None:
            self._blocked_on = None
            self._emit(RequestsUnblocked(msg.max_request_id))

    def _h_requests_blocked(self, msg: m.RequestsBlocked) -> None:
        self._maybe_grant(force=True)

    # --- replies (draft-16 generic, draft-14 specific) --------------------------------------

    def _any_ours(self, request_id: int, what: str) -> Req | None:
        req = self._lookup(request_id, Req, what=what)
        if req is not None and not req.ours:
            raise ProtocolViolation(f"{what} for the peer's own request {request_id}")
        return req

    def _rejected(self, req: Req, code: int, reason: str, retry: int = 0) -> None:
        if req.state is not State.PENDING and not isinstance(req, UpdateReq):
            raise ProtocolViolation(
                f"error for {req.kind.value} {req.request_id} after it was answered"
            )
        kind = req.kind
        self._emit(
            RequestRejected(
                req.request_id,
                kind,
                code,
                reason,
                request_error_from_wire(code, kind, self._draft16),
                retry,
            )
        )
        self._end_request(req)

    def _end_request(self, req: Req) -> None:
        """Forget a request and whatever data state hangs off it."""
        if isinstance(req, SubReq):
            self._drop_subscription(req)
        elif isinstance(req, FetchReq):
            self._drop_fetch(req)
        elif isinstance(req, SubNamespaceReq) and req.stream_id is not None:
            self._ns_streams.pop(req.stream_id, None)
            self._ns_bufs.pop(req.stream_id, None)
        self._finish(req)

    def _h_request_error(self, msg: m.RequestError) -> None:
        req = self._any_ours(msg.request_id, "REQUEST_ERROR")
        if req is None:
            return
        if isinstance(req, SubNamespaceReq):
            raise ProtocolViolation("REQUEST_ERROR for SUBSCRIBE_NAMESPACE on the control stream")
        self._rejected(req, msg.error_code, msg.reason, msg.retry_interval)

    def _h_error14(self, msg: Any) -> None:
        cls, is_publish = _ERROR14_KINDS[type(msg)]
        what = type(msg).__name__
        req = self._lookup(msg.request_id, cls, what=what)
        if req is None:
            return
        if not req.ours or (isinstance(req, SubReq) and req.is_publish != is_publish):
            raise ProtocolViolation(f"{what} for a request we did not send")
        self._rejected(req, msg.error_code, msg.reason)

    def _h_request_ok(self, msg: m.RequestOk) -> None:
        req = self._any_ours(msg.request_id, "REQUEST_OK")
        if req is None:
            return
        params = msg.parameters
        if isinstance(req, UpdateReq):
            self._emit(UpdateAccepted(req.target, req.request_id, params.largest_object))
            self._finish(req)
        elif isinstance(req, TrackStatusReq):
            self._emit(
                TrackStatusReceived(
                    req.request_id,
                    params.largest_object,
                    params.expires or 0,
                    params.group_order or GroupOrder.ASCENDING,
                )
            )
            self._finish(req)
        elif isinstance(req, NamespaceReq):
            self._namespace_accepted(req)
        elif isinstance(req, SubNamespaceReq):
            raise ProtocolViolation("REQUEST_OK for SUBSCRIBE_NAMESPACE on the control stream")
        else:
            raise ProtocolViolation(f"REQUEST_OK for a {req.kind.value} request")

    # --- SUBSCRIBE -----------------------------------------------------------------------

    def _h_subscribe(self, msg: m.Subscribe) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        flt = msg.filter if msg.filter is not None else UNFILTERED
        sub = SubReq(
            msg.request_id,
            ours=False,
            namespace=msg.namespace,
            name=msg.name,
            receiving=False,
            filter=flt,
            priority=DEFAULT_PRIORITY
            if msg.subscriber_priority is None
            else msg.subscriber_priority,
            group_order=msg.group_order or GroupOrder.ORIGINAL,
            forward=True if msg.forward is None else msg.forward,
            delivery_timeout=msg.parameters.delivery_timeout,
        )
        self._requests[sub.request_id] = sub
        if self._publishing_track(msg.namespace, msg.name, exclude=sub) is not None:
            # "Subscriptions": at most one subscription per track and role.
            if not self._draft16:
                # Draft-14 "SUBSCRIBE": publishers SHOULD treat it as a protocol violation.
                raise ProtocolViolation("second SUBSCRIBE for the same track")
            self._send(
                m.RequestError(
                    sub.request_id,
                    RequestErrorCode.DUPLICATE_SUBSCRIPTION,
                    "already subscribed to this track",
                )
            )
            self._finish(sub)
            return
        self._emit(
            SubscribeRequested(
                sub.request_id,
                sub.namespace,
                sub.name,
                flt,
                sub.priority,
                sub.group_order,
                sub.forward,
                sub.delivery_timeout,
                tokens,
            )
        )

    def _publishing_track(
        self, namespace: Namespace, name: bytes, *, exclude: Req | None
    ) -> SubReq | None:
        for req in self._requests.values():
            if (
                req is not exclude
                and isinstance(req, SubReq)
                and not req.receiving
                and req.state is not State.DONE
                and req.namespace == namespace
                and req.name == name
            ):
                return req
        return None

    def _h_subscribe_ok(self, msg: m.SubscribeOk) -> None:
        sub = self._lookup(msg.request_id, SubReq, what="SUBSCRIBE_OK")
        if sub is None:
            return
        if not sub.ours or sub.is_publish:
            raise ProtocolViolation("SUBSCRIBE_OK for a request that is not our SUBSCRIBE")
        if sub.state is not State.PENDING:
            raise ProtocolViolation(f"second SUBSCRIBE_OK for request {sub.request_id}")
        ext = msg.track_extensions
        self._claim_rx_alias(sub, msg.track_alias)
        sub.state = State.ESTABLISHED
        sub.largest = msg.largest
        sub.default_priority = ext.default_publisher_priority or DEFAULT_PRIORITY
        order = msg.group_order or ext.default_publisher_group_order or GroupOrder.ASCENDING
        self._emit(
            SubscribeAccepted(
                sub.request_id,
                msg.track_alias,
                msg.expires or 0,
                order,
                msg.largest,
                ext.items,
            )
        )
        self._alias_ready(sub)

    def _claim_rx_alias(self, sub: SubReq, alias: int) -> None:
        """Bind ``alias`` to ``sub`` for incoming data ("Track Alias"; DUPLICATE_TRACK_ALIAS)."""
        current = self._rx_aliases.get(alias)
        if current is not None and current is not sub:
            same_track = current.namespace == sub.namespace and current.name == sub.name
            if current.state is not State.DONE and not same_track:
                raise SessionError(
                    f"track alias {alias} is already in use", SessionCloseCode.DUPLICATE_TRACK_ALIAS
                )
            self._forget_rx_alias(current)
        sub.track_alias = alias
        self._rx_aliases[alias] = sub

    def _update_fields(self, msg: m.RequestUpdate | m.SubscribeUpdate, sub: SubReq) -> None:
        if isinstance(msg, m.SubscribeUpdate):
            # Draft-14 "SUBSCRIBE_UPDATE": narrowing only; End Group is "plus 1", 0 = open.
            old = sub.filter or UNFILTERED
            old_start = old.start if old.start is not None else Location(0, 0)
            if msg.start < old_start:
                raise ProtocolViolation("SUBSCRIBE_UPDATE moves the start location backwards")
            if msg.end_group:
                end = msg.end_group - 1
                if end < msg.start.group:
                    raise ProtocolViolation("SUBSCRIBE_UPDATE end group before its start")
                if old.end_group is not None and end > old.end_group:
                    raise ProtocolViolation("SUBSCRIBE_UPDATE widens the end group")
                sub.filter = SubscriptionFilter.absolute_range(msg.start, end)
            else:
                if old.end_group is not None:
                    raise ProtocolViolation("SUBSCRIBE_UPDATE widens the end group")
                sub.filter = SubscriptionFilter.absolute_start(msg.start)
            sub.priority = msg.subscriber_priority
            sub.forward = msg.forward
            if msg.parameters.delivery_timeout is not None:
                sub.delivery_timeout = msg.parameters.delivery_timeout
            return
        params = msg.parameters
        if params.subscription_filter is not None:
            sub.filter = params.subscription_filter
        if params.subscriber_priority is not None:
            sub.priority = params.subscriber_priority
        if params.forward is not None:
            sub.forward = params.forward
        if params.delivery_timeout is not None:
            sub.delivery_timeout = params.delivery_timeout

    def _h_update(self, msg: m.RequestUpdate | m.SubscribeUpdate) -> None:
        self._check_new_peer_request(msg.request_id)
        target_id = (
            msg.existing_request_id
            if isinstance(msg, m.RequestUpdate)
            else msg.subscription_request_id
        )
        self._tokens_of(msg.parameters)
        update = UpdateReq(msg.request_id, ours=False, target=target_id)
        self._requests[update.request_id] = update
        target = self._requests.get(target_id)
        if target is None:
            if not self._issued(target_id) or target_id == msg.request_id:
                raise ProtocolViolation(f"update of unknown request {target_id}")
            # The request ended while the update was in flight.
            if self._draft16:
                self._send(
                    m.RequestError(
                        update.request_id, RequestErrorCode.DOES_NOT_EXIST, "request ended"
                    )
                )
            self._finish(update)
            return
        if isinstance(target, SubReq) and not target.receiving:
            self._update_fields(msg, target)
            assert target.filter is not None
            self._emit(
                SubscriptionUpdated(
                    target.request_id,
                    update.request_id,
                    target.filter,
                    target.priority,
                    target.forward,
                    target.delivery_timeout,
                )
            )
            if not self._draft16:
                self._finish(update)  # draft-14 updates have no answer
            return
        if not self._draft16 or target.ours:
            # Draft-14 updates only subscriptions; draft-16 updates the sender's own
            # requests or a subscription it accepted through PUBLISH_OK.
            raise ProtocolViolation(
                f"update of request {target_id}, a {target.kind.value} it cannot change"
            )
        # Draft-16 REQUEST_UPDATE of a fetch, track status or namespace request: the
        # changes (priority, tokens) need nothing from the application.
        self._send(m.RequestOk(update.request_id))
        self._finish(update)

    def _h_unsubscribe(self, msg: m.Unsubscribe) -> None:
        sub = self._lookup(msg.request_id, SubReq, what="UNSUBSCRIBE")
        if sub is None:
            return
        if sub.receiving:
            raise ProtocolViolation("UNSUBSCRIBE for a subscription the peer publishes")
        self._emit(Unsubscribed(sub.request_id))
        self._end_request(sub)

    def _h_publish_done(self, msg: m.PublishDone) -> None:
        sub = self._lookup(msg.request_id, SubReq, what="PUBLISH_DONE")
        if sub is None:
            return
        if not sub.receiving:
            raise ProtocolViolation("PUBLISH_DONE for a subscription we publish")
        if sub.state is State.DONE:
            raise ProtocolViolation(f"second PUBLISH_DONE for request {sub.request_id}")
        code = publish_done_from_wire(msg.status_code, self._draft16)
        self._emit(PublishDoneReceived(sub.request_id, code, msg.stream_count, msg.reason))
        self._publish_done_received(sub, msg.stream_count)

    # --- PUBLISH -------------------------------------------------------------------------

    def _h_publish(self, msg: m.Publish) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        ext = msg.track_extensions
        sub = SubReq(
            msg.request_id,
            ours=False,
            namespace=msg.namespace,
            name=msg.name,
            receiving=True,
            is_publish=True,
            group_order=msg.group_order
            or ext.default_publisher_group_order
            or GroupOrder.ASCENDING,
            forward=True if msg.forward is None else msg.forward,
            largest=msg.largest,
            default_priority=ext.default_publisher_priority or DEFAULT_PRIORITY,
        )
        self._requests[sub.request_id] = sub
        self._claim_rx_alias(sub, msg.track_alias)
        self._emit(
            PublishRequested(
                sub.request_id,
                sub.namespace,
                sub.name,
                msg.track_alias,
                sub.group_order,
                msg.largest,
                sub.forward,
                msg.parameters.expires or 0,
                tokens,
                ext.items,
            )
        )
        # "Subscriptions": the publisher may send objects before PUBLISH_OK.
        self._alias_ready(sub)

    def _h_publish_ok(self, msg: m.PublishOk) -> None:
        sub = self._lookup(msg.request_id, SubReq, what="PUBLISH_OK")
        if sub is None:
            return
        if not sub.ours or not sub.is_publish:
            raise ProtocolViolation("PUBLISH_OK for a request that is not our PUBLISH")
        if sub.state is not State.PENDING:
            raise ProtocolViolation(f"second PUBLISH_OK for request {sub.request_id}")
        sub.state = State.ESTABLISHED
        sub.forward = True if msg.forward is None else msg.forward
        sub.priority = (
            DEFAULT_PRIORITY if msg.subscriber_priority is None else msg.subscriber_priority
        )
        if msg.group_order is not None:
            sub.group_order = msg.group_order
        sub.filter = msg.filter
        sub.delivery_timeout = msg.parameters.delivery_timeout
        self._emit(
            PublishAccepted(
                sub.request_id,
                sub.forward,
                sub.priority,
                sub.group_order,
                msg.filter,
                sub.delivery_timeout,
            )
        )

    # --- PUBLISH_NAMESPACE ------------------------------------------------------------------

    def _h_publish_namespace(self, msg: m.PublishNamespace) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        req = NamespaceReq(msg.request_id, ours=False, namespace=msg.namespace)
        self._requests[req.request_id] = req
        self._emit(PublishNamespaceRequested(req.request_id, req.namespace, tokens))

    def _namespace_accepted(self, req: NamespaceReq) -> None:
        if req.state is not State.PENDING:
            raise ProtocolViolation(f"second answer to PUBLISH_NAMESPACE {req.request_id}")
        req.state = State.ESTABLISHED
        self._emit(PublishNamespaceAccepted(req.request_id, req.namespace))

    def _h_publish_namespace_ok(self, msg: m.PublishNamespaceOk) -> None:
        req = self._lookup(msg.request_id, NamespaceReq, what="PUBLISH_NAMESPACE_OK")
        if req is None:
            return
        if not req.ours:
            raise ProtocolViolation("PUBLISH_NAMESPACE_OK for the peer's own request")
        self._namespace_accepted(req)

    def _namespace_req(
        self, request_id: int | None, namespace: Namespace | None, *, ours: bool, what: str
    ) -> NamespaceReq | None:
        if request_id is not None:  # draft-16 names the request
            req = self._lookup(request_id, NamespaceReq, what=what)
            if req is not None and req.ours != ours:
                raise ProtocolViolation(f"{what} for request {request_id} of the wrong side")
            return req
        # Draft-14 names the namespace; a namespace we do not know was already withdrawn.
        for other in self._requests.values():
            if (
                isinstance(other, NamespaceReq)
                and other.ours == ours
                and other.namespace == namespace
            ):
                return other
        return None

    def _h_publish_namespace_done(self, msg: m.PublishNamespaceDone) -> None:
        req = self._namespace_req(
            msg.request_id, msg.namespace, ours=False, what="PUBLISH_NAMESPACE_DONE"
        )
        if req is None:
            return
        self._emit(PublishNamespaceDone(req.request_id, req.namespace))
        self._finish(req)

    def _h_publish_namespace_cancel(self, msg: m.PublishNamespaceCancel) -> None:
        req = self._namespace_req(
            msg.request_id, msg.namespace, ours=True, what="PUBLISH_NAMESPACE_CANCEL"
        )
        if req is None:
            return
        self._emit(
            PublishNamespaceCancelled(req.request_id, req.namespace, msg.error_code, msg.reason)
        )
        self._finish(req)

    # --- SUBSCRIBE_NAMESPACE ------------------------------------------------------------------

    def _h_subscribe_namespace(
        self, msg: m.SubscribeNamespace, stream_id: int | None = None
    ) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        req = SubNamespaceReq(
            msg.request_id,
            ours=False,
            prefix=msg.prefix,
            options=int(msg.subscribe_options),
            stream_id=stream_id,
        )
        self._requests[req.request_id] = req
        if stream_id is not None:
            self._ns_streams[stream_id] = req
        for other in self._requests.values():
            if (
                other is not req
                and isinstance(other, SubNamespaceReq)
                and not other.ours
                and prefixes_overlap(other.prefix, req.prefix)
            ):
                # "SUBSCRIBE_NAMESPACE": overlapping prefixes get PREFIX_OVERLAP.
                self._reject_peer(req, RequestErrorCode.PREFIX_OVERLAP, "prefix overlaps another")
                return
        forward = msg.parameters.forward
        self._emit(
            SubscribeNamespaceRequested(
                req.request_id,
                req.prefix,
                req.options,
                True if forward is None else forward,
                tokens,
            )
        )

    def _reject_peer(
        self, req: Req, code: RequestErrorCode | int, reason: str, retry: int = 0
    ) -> None:
        """Send the error answering the peer's request ``req`` and forget it."""
        wire = request_error_to_wire(code, req.kind, self._draft16)
        if self._draft16:
            error = m.RequestError(req.request_id, wire, reason, retry)
            if isinstance(req, SubNamespaceReq) and req.stream_id is not None:
                # "SUBSCRIBE_NAMESPACE": on error the stream is closed with FIN.
                self._send_on(req.stream_id, error, end_stream=True)
                self._ns_streams.pop(req.stream_id, None)
                self._ns_bufs.pop(req.stream_id, None)
            else:
                self._send(error)
        else:
            self._send(_ERROR14_MESSAGES[req.kind](req.request_id, wire, reason))
        self._end_request(req)

    def _h_subscribe_namespace_ok(self, msg: m.SubscribeNamespaceOk) -> None:
        req = self._lookup(msg.request_id, SubNamespaceReq, what="SUBSCRIBE_NAMESPACE_OK")
        if req is None:
            return
        self._sub_namespace_accepted(req)

    def _sub_namespace_accepted(self, req: SubNamespaceReq) -> None:
        if not req.ours:
            raise ProtocolViolation("answer to the peer's own SUBSCRIBE_NAMESPACE")
        if req.state is not State.PENDING:
            raise ProtocolViolation(f"second answer to SUBSCRIBE_NAMESPACE {req.request_id}")
        req.state = State.ESTABLISHED
        self._emit(SubscribeNamespaceAccepted(req.request_id, req.prefix))

    def _h_unsubscribe_namespace(self, msg: m.UnsubscribeNamespace) -> None:
        for req in list(self._requests.values()):
            if isinstance(req, SubNamespaceReq) and not req.ours and req.prefix == msg.prefix:
                self._emit(SubscribeNamespaceEnded(req.request_id, req.prefix, by_peer=True))
                self._finish(req)
                return

    def _on_ns_stream_message(self, msg: m.ControlMessage, stream_id: int) -> None:
        """Draft-16 SUBSCRIBE_NAMESPACE streams: the request, then its answer and NAMESPACE*."""
        req = self._ns_streams.get(stream_id)
        if req is None:
            if not isinstance(msg, m.SubscribeNamespace):
                raise ProtocolViolation(f"{type(msg).__name__} before SUBSCRIBE_NAMESPACE")
            self._h_subscribe_namespace(msg, stream_id)
            return
        if not req.ours:
            raise ProtocolViolation(
                f"{type(msg).__name__} from the subscriber on its namespace stream"
            )
        if isinstance(msg, m.RequestOk) and msg.request_id == req.request_id:
            self._sub_namespace_accepted(req)
        elif isinstance(msg, m.RequestError) and msg.request_id == req.request_id:
            self._rejected(req, msg.error_code, msg.reason, msg.retry_interval)
        elif isinstance(msg, (m.Namespace, m.NamespaceDone)):
            if req.state is not State.ESTABLISHED:
                raise ProtocolViolation(f"{type(msg).__name__} before REQUEST_OK")
            full = req.prefix + msg.suffix
            if isinstance(msg, m.Namespace):
                req.announced.add(full)
                self._emit(NamespaceAnnounced(req.request_id, full))
            else:
                if full not in req.announced:
                    raise ProtocolViolation("NAMESPACE_DONE before its NAMESPACE")
                req.announced.discard(full)
                self._emit(NamespaceWithdrawn(req.request_id, full))
        else:
            raise ProtocolViolation(f"{type(msg).__name__} on a SUBSCRIBE_NAMESPACE stream")

    def _ns_stream_ended(self, stream_id: int) -> None:
        req = self._ns_streams.pop(stream_id, None)
        self._ns_bufs.pop(stream_id, None)
        if req is None or req.state is State.DONE:
            return
        if req.ours:
            if req.state is State.PENDING:
                raise ProtocolViolation("SUBSCRIBE_NAMESPACE stream ended without an answer")
            self._emit(SubscribeNamespaceEnded(req.request_id, req.prefix, by_peer=True))
            self._finish(req)
        else:
            # "Subscribing to Namespaces": FIN or RESET_STREAM cancels the subscription.
            self._emit(SubscribeNamespaceEnded(req.request_id, req.prefix, by_peer=True))
            if req.stream_id is not None:
                self._transport.send_stream_data(req.stream_id, b"", True)
            self._finish(req)

    # --- FETCH ---------------------------------------------------------------------------------

    def _h_fetch(self, msg: m.Fetch) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        req = FetchReq(
            msg.request_id,
            ours=False,
            fetch_type=msg.fetch_type,
            priority=DEFAULT_PRIORITY
            if msg.subscriber_priority is None
            else msg.subscriber_priority,
            group_order=msg.group_order or GroupOrder.ASCENDING,
        )
        self._requests[req.request_id] = req
        joining_start: int | None = None
        if msg.standalone is not None:
            req.namespace, req.name = msg.standalone.namespace, msg.standalone.name
            req.start, req.end = msg.standalone.start, msg.standalone.end
        else:
            assert msg.joining is not None
            joining_start = msg.joining.joining_start
            req.joining_request_id = msg.joining.joining_request_id
            joined = self._requests.get(req.joining_request_id)
            if not (
                isinstance(joined, SubReq)
                and not joined.receiving
                and not joined.is_publish
                and joined.state in (State.PENDING, State.ESTABLISHED)
            ):
                # "Joining Fetches": not an Established/Pending subscription of this session.
                self._reject_peer(
                    req, RequestErrorCode.INVALID_JOINING_REQUEST_ID, "no such subscription"
                )
                return
            if joined.filter is None or joined.filter.type is not FilterType.LARGEST_OBJECT:
                raise ProtocolViolation(
                    "joining FETCH for a subscription without a LargestObject filter"
                )
            req.namespace, req.name = joined.namespace, joined.name
            if joined.state is State.ESTABLISHED:
                largest = joined.largest
                if largest is None:
                    self._reject_peer(
                        req, RequestErrorCode.INVALID_RANGE, "the track has no objects yet"
                    )
                    return
                # "Joining Fetch Range Calculation".
                if msg.fetch_type is FetchType.RELATIVE_JOINING:
                    req.start = Location(max(0, largest.group - joining_start), 0)
                else:
                    req.start = Location(joining_start, 0)
                req.end = Location(largest.group, largest.object + 1)
        self._emit(
            FetchRequested(
                req.request_id,
                req.fetch_type,
                req.namespace,
                req.name,
                req.start,
                req.end,
                req.priority,
                req.group_order,
                req.joining_request_id,
                joining_start,
                tokens,
            )
        )

    def _h_fetch_ok(self, msg: m.FetchOk) -> None:
        req = self._lookup(msg.request_id, FetchReq, what="FETCH_OK")
        if req is None:
            return
        if not req.ours:
            raise ProtocolViolation("FETCH_OK for the peer's own FETCH")
        if req.answered:
            raise ProtocolViolation(f"second answer to FETCH {req.request_id}")
        if (
            req.start is not None
            and msg.end < req.start
            and not (msg.end.object == 0 and msg.end.group >= req.start.group)
        ):
            # FETCH_OK: an End Location smaller than the Start Location is a violation
            # (object 0 means the whole group, so {g, 0} covers a start inside group g).
            raise ProtocolViolation("FETCH_OK end location is before the fetch's start")
        req.answered = True
        req.state = State.ESTABLISHED
        order = msg.group_order or req.group_order
        if order is GroupOrder.ORIGINAL:
            order = GroupOrder.ASCENDING
        self._emit(
            FetchAccepted(
                req.request_id, msg.end_of_track, msg.end, order, msg.track_extensions.items
            )
        )

    def _h_fetch_cancel(self, msg: m.FetchCancel) -> None:
        req = self._lookup(msg.request_id, FetchReq, what="FETCH_CANCEL")
        if req is None:
            return
        if req.ours:
            raise ProtocolViolation("FETCH_CANCEL for our own FETCH")
        self._emit(FetchCancelled(req.request_id))
        self._end_request(req)

    # --- TRACK_STATUS ---------------------------------------------------------------------------

    def _h_track_status(self, msg: m.TrackStatus) -> None:
        self._check_new_peer_request(msg.request_id)
        tokens = self._tokens_of(msg.parameters)
        req = TrackStatusReq(msg.request_id, ours=False, namespace=msg.namespace, name=msg.name)
        self._requests[req.request_id] = req
        self._emit(TrackStatusRequested(req.request_id, req.namespace, req.name, tokens))

    def _h_track_status_ok(self, msg: m.TrackStatusOk) -> None:
        req = self._lookup(msg.request_id, TrackStatusReq, what="TRACK_STATUS_OK")
        if req is None:
            return
        if not req.ours:
            raise ProtocolViolation("TRACK_STATUS_OK for the peer's own TRACK_STATUS")
        self._emit(
            TrackStatusReceived(
                req.request_id,
                msg.largest,
                msg.expires or 0,
                msg.group_order or GroupOrder.ASCENDING,
            )
        )
        self._finish(req)

    # --- hooks the data plane implements -----------------------------------------------------------

    def _alias_ready(self, sub: SubReq) -> None:
        raise NotImplementedError

    def _forget_rx_alias(self, sub: SubReq) -> None:
        raise NotImplementedError

    def _drop_subscription(self, sub: SubReq) -> None:
        raise NotImplementedError

    def _drop_fetch(self, req: FetchReq) -> None:
        raise NotImplementedError

    def _publish_done_received(self, sub: SubReq, stream_count: int) -> None:
        raise NotImplementedError


# Draft-14 error message -> (request record type, whether the SubReq is a PUBLISH).
_ERROR14_KINDS: dict[type, tuple[type[Req], bool]] = {
    m.SubscribeError: (SubReq, False),
    m.PublishError: (SubReq, True),
    m.FetchError: (FetchReq, False),
    m.PublishNamespaceError: (NamespaceReq, False),
    m.SubscribeNamespaceError: (SubNamespaceReq, False),
    m.TrackStatusError: (TrackStatusReq, False),
}

_ERROR14_MESSAGES: dict[RequestKind, Callable[[int, int, str], m.ControlMessage]] = {
    RequestKind.SUBSCRIBE: m.SubscribeError,
    RequestKind.PUBLISH: m.PublishError,
    RequestKind.FETCH: m.FetchError,
    RequestKind.PUBLISH_NAMESPACE: m.PublishNamespaceError,
    RequestKind.SUBSCRIBE_NAMESPACE: m.SubscribeNamespaceError,
    RequestKind.TRACK_STATUS: m.TrackStatusError,
}

_HANDLERS: dict[type, Callable[[Any, Any], None]] = {
    m.Goaway: InboundMixin._h_goaway,
    m.MaxRequestId: InboundMixin._h_max_request_id,
    m.RequestsBlocked: InboundMixin._h_requests_blocked,
    m.RequestError: InboundMixin._h_request_error,
    m.RequestOk: InboundMixin._h_request_ok,
    m.Subscribe: InboundMixin._h_subscribe,
    m.SubscribeOk: InboundMixin._h_subscribe_ok,
    m.SubscribeUpdate: InboundMixin._h_update,
    m.RequestUpdate: InboundMixin._h_update,
    m.Unsubscribe: InboundMixin._h_unsubscribe,
    m.PublishDone: InboundMixin._h_publish_done,
    m.Publish: InboundMixin._h_publish,
    m.PublishOk: InboundMixin._h_publish_ok,
    m.PublishNamespace: InboundMixin._h_publish_namespace,
    m.PublishNamespaceOk: InboundMixin._h_publish_namespace_ok,
    m.PublishNamespaceDone: InboundMixin._h_publish_namespace_done,
    m.PublishNamespaceCancel: InboundMixin._h_publish_namespace_cancel,
    m.SubscribeNamespace: InboundMixin._h_subscribe_namespace,
    m.SubscribeNamespaceOk: InboundMixin._h_subscribe_namespace_ok,
    m.UnsubscribeNamespace: InboundMixin._h_unsubscribe_namespace,
    m.Fetch: InboundMixin._h_fetch,
    m.FetchOk: InboundMixin._h_fetch_ok,
    m.FetchCancel: InboundMixin._h_fetch_cancel,
    m.TrackStatus: InboundMixin._h_track_status,
    m.TrackStatusOk: InboundMixin._h_track_status_ok,
    **{cls: InboundMixin._h_error14 for cls in _ERROR14_KINDS},
}
