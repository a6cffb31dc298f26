"""Shared machinery of the control handlers: answering and forgetting requests.

Section names in comments are draft-16's unless a draft-14 section is named.
"""

from __future__ import annotations

from collections.abc import Callable

from . import messages as m
from ._codes import request_error_from_wire, request_error_to_wire
from ._core import SessionCore
from ._state import (
    FetchReq,
    Req,
    State,
    SubNamespaceReq,
    SubReq,
    UpdateReq,
)
from .errors import ProtocolViolation, RequestErrorCode
from .events import (
    RequestKind,
    RequestRejected,
)
from .types import (
    AuthToken,
    Location,
    Namespace,
    SubscriptionFilter,
)

__all__ = ["DEFAULT_PRIORITY", "UNFILTERED", "RequestsMixin"]

# Draft-16 "SUBSCRIPTION FILTER Parameter": omitted means unfiltered, which
# "Subscription Filters" defines as AbsoluteStart {0, 0}.
UNFILTERED = SubscriptionFilter.absolute_start(Location(0, 0))
DEFAULT_PRIORITY = 128


class RequestsMixin(SessionCore):
    """Rejecting, ending and forgetting requests; the data-plane hooks they call."""

    def _tokens_of(self, params: m.MessageParameters) -> tuple[AuthToken, ...]:
        return self._tokens.resolve(params.auth_tokens)

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
            if self._ns_streams.pop(req.stream_id, None) is not None and req.ours:
                self._transport.send_stream_data(req.stream_id, b"", True)  # our half
            self._ns_bufs.pop(req.stream_id, None)
            # Whatever still arrives on it (the publisher's FIN) is not a new stream.
            self._ignored_streams.add(req.stream_id)
        self._finish(req)

    def _find_receiving(
        self, namespace: Namespace, name: bytes, *, exclude: Req | None = None
    ) -> SubReq | None:
        """Our live subscription receiving this track (our SUBSCRIBE or an accepted PUBLISH)."""
        for req in self._requests.values():
            if (
                req is not exclude
                and isinstance(req, SubReq)
                and req.receiving
                and req.state is not State.DONE
                and req.namespace == namespace
                and req.name == name
            ):
                return req
        return None

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
            else:
                self._send(error)
        else:
            self._send(_ERROR14_MESSAGES[req.kind](req.request_id, wire, reason))
        self._end_request(req)

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


_ERROR14_MESSAGES: dict[RequestKind, Callable[[int, int, str], m.ControlMessage]] = {
    RequestKind.SUBSCRIBE: m.SubscribeError,
    RequestKind.PUBLISH: m.PublishError,
    RequestKind.FETCH: m.FetchError,
    RequestKind.PUBLISH_NAMESPACE: m.PublishNamespaceError,
    RequestKind.SUBSCRIBE_NAMESPACE: m.SubscribeNamespaceError,
    RequestKind.TRACK_STATUS: m.TrackStatusError,
}
