"""PUBLISH_NAMESPACE and SUBSCRIBE_NAMESPACE from the peer (draft-16 "Namespace
Discovery"; draft-16 runs SUBSCRIBE_NAMESPACE on its own bidi stream).
"""

from __future__ import annotations

from . import messages as m
from ._replies import RequestsMixin
from ._state import (
    NamespaceReq,
    State,
    SubNamespaceReq,
)
from .errors import ProtocolViolation, RequestErrorCode
from .events import (
    NamespaceAnnounced,
    NamespaceWithdrawn,
    PublishNamespaceAccepted,
    PublishNamespaceCancelled,
    PublishNamespaceDone,
    PublishNamespaceRequested,
    SubscribeNamespaceAccepted,
    SubscribeNamespaceEnded,
    SubscribeNamespaceRequested,
)
from .types import (
    Namespace,
)

__all__ = ["NamespaceHandlers", "prefixes_overlap"]


def prefixes_overlap(a: Namespace, b: Namespace) -> bool:
    """True when one namespace prefix is a prefix of (or equal to) the other."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


class NamespaceHandlers(RequestsMixin):
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

    def _ns_stream_ended(self, stream_id: int, *, reset: bool = False) -> None:
        req = self._ns_streams.pop(stream_id, None)
        self._ns_bufs.pop(stream_id, None)
        if req is None or req.state is State.DONE:
            return
        if req.ours:
            if req.state is State.PENDING and not reset:
                # "SUBSCRIBE_NAMESPACE": REQUEST_OK or REQUEST_ERROR comes first.
                raise ProtocolViolation("SUBSCRIBE_NAMESPACE stream ended without an answer")
            self._emit(SubscribeNamespaceEnded(req.request_id, req.prefix, by_peer=True))
            self._finish(req)
        else:
            # "Subscribing to Namespaces": FIN or RESET_STREAM cancels the subscription.
            self._emit(SubscribeNamespaceEnded(req.request_id, req.prefix, by_peer=True))
            if req.stream_id is not None:
                self._transport.send_stream_data(req.stream_id, b"", True)
            self._finish(req)
