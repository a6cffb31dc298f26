"""Control messages from the peer: one handler per message, the state machines they drive.

Section names in comments are draft-16's unless a draft-14 section is named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import messages as m
from ._codes import publish_done_from_wire
from ._inbound_fetch import FetchHandlers
from ._inbound_ns import NamespaceHandlers
from ._replies import DEFAULT_PRIORITY, UNFILTERED
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
    GoawayReceived,
    PublishAccepted,
    PublishDoneReceived,
    PublishRequested,
    RequestsUnblocked,
    SubscribeAccepted,
    SubscribeRequested,
    SubscriptionUpdated,
    TrackStatusReceived,
    Unsubscribed,
    UpdateAccepted,
)
from .types import (
    GroupOrder,
    Location,
    Namespace,
    SubscriptionFilter,
)

__all__ = ["UNFILTERED", "InboundMixin"]


class InboundMixin(NamespaceHandlers, FetchHandlers):
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
            original_filter=flt,
            priority=DEFAULT_PRIORITY
            if msg.subscriber_priority is None
            else msg.subscriber_priority,
            group_order=msg.group_order or GroupOrder.ORIGINAL,
            forward=True if msg.forward is None else msg.forward,
            delivery_timeout=msg.parameters.delivery_timeout,
        )
        self._requests[sub.request_id] = sub
        existing = self._publishing_track(msg.namespace, msg.name, exclude=sub)
        if existing is not None and self._draft16:
            # "Subscriptions": at most one subscription per track and role; a SUBSCRIBE
            # for a track with our PUBLISH pending or established fails the same way.
            self._send(
                m.RequestError(
                    sub.request_id,
                    RequestErrorCode.DUPLICATE_SUBSCRIPTION,
                    "already subscribed to this track",
                )
            )
            self._finish(sub)
            return
        if (
            existing is not None
            and self._publishing_track(msg.namespace, msg.name, exclude=sub, subscribes_only=True)
            is not None
        ):
            # Draft-14 "SUBSCRIBE": a second SUBSCRIBE for a track SHOULD be treated as a
            # protocol violation.  (A SUBSCRIBE for a track we offered with PUBLISH is
            # not one: draft-14 has no rule against it, and peers do it after
            # SUBSCRIBE_NAMESPACE; the application sees both.)
            raise ProtocolViolation("second SUBSCRIBE for the same track")
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
                msg.parameters.new_group_request if self._draft16 else None,
            )
        )

    def _publishing_track(
        self,
        namespace: Namespace,
        name: bytes,
        *,
        exclude: Req | None,
        subscribes_only: bool = False,
    ) -> SubReq | None:
        """A live subscription we publish for this track (the peer's SUBSCRIBE or our
        PUBLISH; only SUBSCRIBEs with ``subscribes_only``)."""
        for req in self._requests.values():
            if (
                req is not exclude
                and isinstance(req, SubReq)
                and not req.receiving
                and not (subscribes_only and req.is_publish)
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
                    msg.parameters.new_group_request if isinstance(msg, m.RequestUpdate) else None,
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
        existing = self._find_receiving(msg.namespace, msg.name, exclude=sub)
        if self._draft16 and existing is not None and existing.state is State.ESTABLISHED:
            # "Subscriptions": a second subscription to a track in the same role fails
            # with DUPLICATE_SUBSCRIPTION (a Pending one is the application's to end).
            self._reject_peer(
                sub, RequestErrorCode.DUPLICATE_SUBSCRIPTION, "already subscribed to this track"
            )
            return
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


# Draft-14 error message -> (request record type, whether the SubReq is a PUBLISH).
_ERROR14_KINDS: dict[type, tuple[type[Req], bool]] = {
    m.SubscribeError: (SubReq, False),
    m.PublishError: (SubReq, True),
    m.FetchError: (FetchReq, False),
    m.PublishNamespaceError: (NamespaceReq, False),
    m.SubscribeNamespaceError: (SubNamespaceReq, False),
    m.TrackStatusError: (TrackStatusReq, False),
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
