"""The Session's answers to the peer's requests (public methods of
:class:`~moqt.session.Session`; see there for the rules they follow)."""

from __future__ import annotations

from . import messages as m
from ._apiutil import check_priority, check_timeout, local_errors
from ._codes import request_error_to_wire
from ._dataplane import DataPlaneMixin
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
from .errors import (
    DataStreamResetCode,
    LocalError,
    PublishDoneCode,
    RequestErrorCode,
)
from .events import RequestKind
from .types import (
    Extensions,
    GroupOrder,
    Location,
    Namespace,
    SubscriptionFilter,
)

__all__ = ["AnswersMixin", "default_priority"]

_CANCELLED = int(DataStreamResetCode.CANCELLED)


def default_priority(extensions: Extensions) -> int:
    """The track's DEFAULT_PUBLISHER_PRIORITY extension (draft-16), else 128."""
    for key, value in extensions:
        if key == m.TrackExtensionType.DEFAULT_PUBLISHER_PRIORITY and isinstance(value, int):
            return value
    return 128


class AnswersMixin(DataPlaneMixin):
    """SUBSCRIBE_OK, PUBLISH_OK, FETCH_OK, REQUEST_OK/ERROR, PUBLISH_DONE, NAMESPACE..."""

    # --- answers to the peer's requests ------------------------------------------------

    @local_errors
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
        this subscription are computed from.  If the peer already ended the request
        (UNSUBSCRIBE crossed the answer) nothing is sent and the alias is not reserved."""
        sub = self._peers(request_id, SubReq, "accept_subscribe")
        if sub is None:
            return track_alias if track_alias is not None else 0
        if sub.receiving or sub.is_publish or sub.state is not State.PENDING:
            raise LocalError(f"request {request_id} is not a pending SUBSCRIBE")
        if group_order is GroupOrder.ORIGINAL:
            raise LocalError("SUBSCRIBE_OK's group order is ASCENDING or DESCENDING")
        alias = self._pick_alias(track_alias)
        if self._draft16:
            ext = tuple(extensions)
            if m.TrackExtensionType.DEFAULT_PUBLISHER_GROUP_ORDER not in {k for k, _ in ext}:
                ext += ((m.TrackExtensionType.DEFAULT_PUBLISHER_GROUP_ORDER, int(group_order)),)
            msg = m.SubscribeOk(
                request_id,
                alias,
                expires or None,
                None,
                largest,
                track_extensions=m.TrackExtensions(ext),
            )
        else:
            if extensions:
                raise LocalError("draft-14 SUBSCRIBE_OK carries no track extensions")
            msg = m.SubscribeOk(request_id, alias, expires, group_order, largest)
        self._send(msg)
        sub.track_alias = alias
        sub.largest = largest
        sub.default_priority = default_priority(extensions)
        sub.state = State.ESTABLISHED
        self._tx_aliases[alias] = sub
        return alias

    @local_errors
    def accept_update(self, update_request_id: int, *, largest: Location | None = None) -> None:
        """Draft-16 REQUEST_OK for the peer's REQUEST_UPDATE ``update_request_id``
        (see SubscriptionUpdated).  A no-op in draft-14 (SUBSCRIBE_UPDATE has no answer)."""
        if self._closed or not self._draft16:
            return
        req = self._peers(update_request_id, UpdateReq, "accept_update")
        if req is None:
            return
        params = m.MessageParameters.build(largest_object=largest)
        self._send(m.RequestOk(update_request_id, params))
        self._finish(req)

    @local_errors
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
        req = self._peers(request_id, Req, "reject_request")
        if req is None:
            return
        if isinstance(req, UpdateReq):
            if not self._draft16:
                return
            self._send(m.RequestError(request_id, int(code), reason, retry_interval))
            self._finish(req)
            target = self._requests.get(req.target)
            if isinstance(target, SubReq) and not target.receiving:
                # "REQUEST_UPDATE": a failed update also ends the subscription.
                self._end_publishing(target, PublishDoneCode.UPDATE_FAILED, "update failed")
            return
        if req.state is not State.PENDING:
            raise LocalError(f"request {request_id} was already answered")
        self._reject_peer(req, code, reason, retry_interval)

    @local_errors
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
        """PUBLISH_OK for the peer's PUBLISH ``request_id`` (``filter`` None = unfiltered;
        draft-14 writes it as AbsoluteStart {0, 0}).  Its objects arrive as ObjectReceived."""
        sub = self._peers(request_id, SubReq, "accept_publish")
        if sub is None:
            return
        if not sub.is_publish or sub.state is not State.PENDING:
            raise LocalError(f"request {request_id} is not a pending PUBLISH")
        check_priority(priority)
        order = None if group_order is GroupOrder.ORIGINAL else group_order
        params = m.MessageParameters.build(delivery_timeout=check_timeout(delivery_timeout))
        self._send(m.PublishOk(request_id, forward, priority, order, filter, params))
        sub.state = State.ESTABLISHED
        sub.forward = forward
        sub.priority = priority
        sub.filter = filter
        sub.delivery_timeout = delivery_timeout

    @local_errors
    def accept_publish_namespace(self, request_id: int) -> None:
        """Accept the peer's PUBLISH_NAMESPACE ``request_id``."""
        req = self._peers(request_id, NamespaceReq, "accept_publish_namespace")
        if req is None:
            return
        if req.state is not State.PENDING:
            raise LocalError(f"PUBLISH_NAMESPACE {request_id} was already answered")
        self._send(m.RequestOk(request_id) if self._draft16 else m.PublishNamespaceOk(request_id))
        req.state = State.ESTABLISHED

    @local_errors
    def cancel_publish_namespace(
        self,
        request_id: int,
        code: RequestErrorCode | int = RequestErrorCode.INTERNAL_ERROR,
        reason: str = "",
    ) -> None:
        """PUBLISH_NAMESPACE_CANCEL: revoke our acceptance of the peer's namespace."""
        req = self._peers(request_id, NamespaceReq, "cancel_publish_namespace")
        if req is None:
            return
        if req.state is not State.ESTABLISHED:
            raise LocalError(f"PUBLISH_NAMESPACE {request_id} is not accepted")
        wire = request_error_to_wire(code, RequestKind.PUBLISH_NAMESPACE, self._draft16)
        if self._draft16:
            self._send(m.PublishNamespaceCancel(wire, reason, request_id=request_id))
        else:
            self._send(m.PublishNamespaceCancel(wire, reason, namespace=req.namespace))
        self._finish(req)

    @local_errors
    def accept_subscribe_namespace(self, request_id: int) -> None:
        """Accept the peer's SUBSCRIBE_NAMESPACE ``request_id``."""
        req = self._peers(request_id, SubNamespaceReq, "accept_subscribe_namespace")
        if req is None:
            return
        if req.state is not State.PENDING:
            raise LocalError(f"SUBSCRIBE_NAMESPACE {request_id} was already answered")
        if self._draft16:
            assert req.stream_id is not None
            self._send_on(req.stream_id, m.RequestOk(request_id))
        else:
            self._send(m.SubscribeNamespaceOk(request_id))
        req.state = State.ESTABLISHED

    @local_errors
    def announce_namespace(self, request_id: int, namespace: Namespace) -> None:
        """Draft-16 NAMESPACE on the peer's accepted SUBSCRIBE_NAMESPACE ``request_id``;
        ``namespace`` must start with its prefix.  (Draft-14 has no NAMESPACE message: use
        :meth:`publish_namespace`.)"""
        req = self._ns_target(request_id, namespace, "announce_namespace")
        if req is None or namespace in req.announced:
            return
        req.announced.add(namespace)
        assert req.stream_id is not None
        self._send_on(req.stream_id, m.Namespace(namespace[len(req.prefix) :]))

    @local_errors
    def withdraw_namespace(self, request_id: int, namespace: Namespace) -> None:
        """Draft-16 NAMESPACE_DONE for a namespace announced with :meth:`announce_namespace`."""
        req = self._ns_target(request_id, namespace, "withdraw_namespace")
        if req is None:
            return
        if namespace not in req.announced:
            raise LocalError("withdraw_namespace for a namespace that was not announced")
        req.announced.discard(namespace)
        assert req.stream_id is not None
        self._send_on(req.stream_id, m.NamespaceDone(namespace[len(req.prefix) :]))

    @local_errors
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
        req = self._peers(request_id, FetchReq, "accept_fetch")
        if req is None:
            return
        if req.answered:
            raise LocalError(f"FETCH {request_id} was already answered")
        if group_order is GroupOrder.ORIGINAL:
            raise LocalError("FETCH_OK's group order is ASCENDING or DESCENDING")
        if self._draft16:
            msg = m.FetchOk(
                request_id,
                end_of_track,
                end_location,
                track_extensions=m.TrackExtensions(tuple(extensions)),
            )
        else:
            if extensions:
                raise LocalError("draft-14 FETCH_OK carries no track extensions")
            msg = m.FetchOk(request_id, end_of_track, end_location, group_order)
        self._send(msg)
        req.answered = True
        req.state = State.ESTABLISHED
        if req.handle is not None and req.handle.closed:
            self._fetch_stream_closed(req)

    @local_errors
    def answer_track_status(
        self,
        request_id: int,
        *,
        largest: Location | None = None,
        expires: int = 0,
        group_order: GroupOrder = GroupOrder.ASCENDING,
    ) -> None:
        """Answer the peer's TRACK_STATUS (REQUEST_OK in 16, TRACK_STATUS_OK in 14)."""
        req = self._peers(request_id, TrackStatusReq, "answer_track_status")
        if req is None:
            return
        if group_order is GroupOrder.ORIGINAL:
            raise LocalError("the group order is ASCENDING or DESCENDING")
        if self._draft16:
            params = m.MessageParameters.build(largest_object=largest, expires=expires or None)
            self._send(m.RequestOk(request_id, params))
        else:
            # Draft-14 "TRACK_STATUS_OK": as SUBSCRIBE_OK, Track Alias 0.
            self._send(m.TrackStatusOk(request_id, 0, expires, group_order, largest))
        self._finish(req)

    @local_errors
    def publish_done(
        self,
        request_id: int,
        code: PublishDoneCode | int = PublishDoneCode.TRACK_ENDED,
        reason: str = "",
    ) -> None:
        """PUBLISH_DONE for a subscription we publish (an accepted SUBSCRIBE or our
        PUBLISH).  Open subgroup streams of it are reset first (CANCELLED), as the
        draft requires them closed; Stream Count is what we opened."""
        if self._closed:
            return
        sub = self._requests.get(request_id)
        if not isinstance(sub, SubReq) or sub.receiving:
            if self._issued(request_id):
                return  # already ended (e.g. the peer unsubscribed meanwhile)
            raise LocalError(f"request {request_id} is not a subscription we publish")
        if sub.state is State.PENDING and not sub.is_publish:
            raise LocalError("answer the SUBSCRIBE first (reject_request refuses it)")
        self._end_publishing(sub, code, reason)
