"""The session's foundation: state, the one close path, control-stream I/O, setup,
request-id rules and timers.  :class:`~moqt.session.Session` builds on it with the
control-message handlers (``_inbound``) and the data plane (``_dataplane``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ._auth import TokenCache
from ._buffer import Buffer, NeedMoreData
from ._handles import FetchHandle, SubgroupHandle
from ._state import Req, State, SubNamespaceReq, SubReq
from ._transport import Transport, is_bidirectional, is_client_initiated
from .errors import (
    LocalError,
    PeerError,
    ProtocolViolation,
    SessionCloseCode,
    SessionError,
)
from .events import Event, ObjectReceived, SessionClosed, SetupCompleted
from .messages._base import ControlMessage, decode_control, encode_control
from .messages._params import AuthToken as WireToken
from .messages._params import SetupParameters
from .messages.session_control import MaxRequestId, RequestsBlocked
from .messages.setup import ClientSetup, ServerSetup
from .types import AuthToken
from .version import DRAFT_14, DRAFT_16

__all__ = ["RequestBlockedError", "SessionCore", "SessionStatistics"]

_log = logging.getLogger("moqt.session")

# Data that arrives on streams before setup completes is held (draft-16 "Session
# initialization": SHOULD be buffered) up to this many bytes in total.
MAX_EARLY_BYTES = 1 << 20
SUBSCRIBE_NAMESPACE_TYPE = 0x11
# Draft-16 request ids may arrive out of order across streams; at most this many may
# be ahead of a missing lower id.
MAX_REQUEST_ID_GAPS = 64
CLIENT_SETUP_TYPE = 0x20
# The control stream's transport priority: the most urgent (data streams carry the
# publisher priority, 0..255, lower first).
CONTROL_STREAM_PRIORITY = 0

_R = TypeVar("_R", bound=Req)


def _frame_complete(pending: bytearray) -> bool:
    """True when ``pending`` holds at least one whole control message (``Type (i),
    Length (16), Payload``).  Looking at the header only keeps a peer that trickles a
    large message byte by byte from making us re-parse it on every byte."""
    try:
        head = Buffer(bytes(pending[:10]))
        head.pull_varint()
        length = head.pull_uint16()
    except NeedMoreData:
        return False
    return len(pending) >= head.position + length


class RequestBlockedError(LocalError):
    """The peer's MAX_REQUEST_ID does not allow another request yet.

    The session has sent REQUESTS_BLOCKED; a :class:`~moqt.events.RequestsUnblocked`
    event follows when the peer raises the limit.
    """


@dataclass(frozen=True, slots=True)
class SessionStatistics:
    """Counters since the session started (``Session.statistics()``)."""

    control_messages_sent: int
    control_messages_received: int
    objects_sent: int
    object_bytes_sent: int
    objects_received: int
    object_bytes_received: int
    subgroup_streams_opened: int
    open_requests: int
    held_bytes: int


class _EarlyStream:
    __slots__ = ("data", "fin")

    def __init__(self) -> None:
        self.data = bytearray()
        self.fin = False


class SessionCore:
    """State and plumbing shared by the session's parts (see module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        is_client: bool,
        version: int | None,
        max_request_id: int,
        max_object_size: int,
        path: str | None,
        authority: str | None,
        auth_token: bytes | None,
        implementation: str,
        webtransport: bool,
        max_auth_token_cache_size: int,
        alias_wait: float,
        done_linger: float,
        strict_parameters: bool = False,
    ) -> None:
        if version not in (DRAFT_16, DRAFT_14, None):
            raise LocalError(f"unsupported MoQT version {version:#x}")
        if version is None and is_client:
            raise LocalError("a client must know its version (from the ALPN it offered)")
        if not is_client and (path is not None or authority is not None or auth_token):
            raise LocalError("PATH, AUTHORITY and CLIENT_SETUP tokens are client parameters")
        if webtransport and (path is not None or authority is not None):
            raise LocalError("PATH and AUTHORITY are not used over WebTransport")
        if max_request_id < 0 or max_object_size <= 0 or max_auth_token_cache_size < 0:
            raise LocalError("limits must not be negative")
        self._transport = transport
        self._is_client = is_client
        self._version: int | None = version
        self._webtransport = webtransport
        self._path = path
        self._authority = authority
        self._auth_token = auth_token
        self._implementation = implementation
        self._max_object_size = max_object_size
        self._alias_wait = alias_wait
        self._done_linger = done_linger
        self._strict_parameters = strict_parameters
        self._tokens = TokenCache(max_auth_token_cache_size)
        self._max_auth_token_cache_size = max_auth_token_cache_size

        self._now = 0.0
        # Counters for statistics(): [control sent, control received, objects sent,
        # object bytes sent, objects received, object bytes received, streams opened].
        self._counters = [0] * 7
        self._events: list[Event] = []
        self._closed = False
        self._setup_complete = False
        self._control_stream: int | None = None
        self._control_buf = bytearray()
        self._early: dict[int, _EarlyStream] = {}
        self._early_bytes = 0
        self._ignored_streams: set[int] = set()

        # Request ids (draft-16 "Request ID"): the client's are even, the server's odd.
        self._next_local_id = 0 if is_client else 1
        self._next_peer_id = 1 if is_client else 0
        # Draft-16: peer ids that arrived ahead of a lower one still in flight.
        self._peer_ids_ahead: set[int] = set()
        self._peer_max_request_id = 0  # what the peer lets us use (exclusive)
        self._local_max_request_id = max_request_id  # what we let the peer use
        self._grant_target = max_request_id
        self._grant_step = max(2, (max_request_id // 4) & ~1)
        self._blocked_on: int | None = None  # the limit we sent REQUESTS_BLOCKED for

        self._requests: dict[int, Req] = {}
        # Track aliases (draft-16 "Track Alias"): the peer's, for data we receive, and
        # ours, for data we send.  Each space belongs to its publisher.
        self._rx_aliases: dict[int, SubReq] = {}
        self._tx_aliases: dict[int, SubReq] = {}
        self._next_alias = 0
        self._goaway_sent = False
        self._peer_goaway = False
        self._goaway_deadline: float | None = None

        # Draft-16 SUBSCRIBE_NAMESPACE bidi streams -> request; their read buffers.
        self._ns_streams: dict[int, SubNamespaceReq | None] = {}
        self._ns_bufs: dict[int, bytearray] = {}

    # --- small accessors ---------------------------------------------------------------

    @property
    def _draft16(self) -> bool:
        return self._version == DRAFT_16

    def _v(self) -> int:
        assert self._version is not None
        return self._version

    def _emit(self, event: Event) -> None:
        if isinstance(event, ObjectReceived):
            self._counters[4] += 1
            self._counters[5] += len(event.payload)
        self._events.append(event)

    # --- the input guard and the one close path ----------------------------------------

    def _run(self, now: float, fn: Callable[[], None]) -> list[Event]:
        """Run one input: every PeerError closes the session here, and only here."""
        if self._closed:
            return []
        if now > self._now:
            self._now = now
        try:
            fn()
        except PeerError as exc:
            self._fail(int(exc.code), exc.reason)
        except NeedMoreData:  # a decoder bug: short input must never escape a parser
            _log.exception("moqt session: NeedMoreData escaped a parser")
            self._fail(int(SessionCloseCode.INTERNAL_ERROR), "internal error")
        except Exception:
            _log.exception("moqt session: internal error while handling input")
            self._fail(int(SessionCloseCode.INTERNAL_ERROR), "internal error")
        events, self._events = self._events, []
        return events

    def _fail(self, code: int, reason: str) -> None:
        """Close the session (we close it): transport.close + SessionClosed(by_peer=False)."""
        if self._closed:
            return
        self._mark_closed()
        try:
            self._transport.close(code, reason)
        except Exception:  # the connection may already be gone; we are closed either way
            _log.exception("moqt session: transport.close failed")
        self._emit(SessionClosed(code, reason, by_peer=False))

    def _mark_closed(self) -> None:
        self._closed = True
        for handle in self._all_handles():
            handle._closed = True

    def _all_handles(self) -> list[SubgroupHandle | FetchHandle]:
        """Every open outgoing data handle (the data plane overrides this)."""
        return []

    # --- control stream output ---------------------------------------------------------

    def _send(self, msg: ControlMessage) -> None:
        assert self._control_stream is not None
        self._counters[0] += 1
        self._transport.send_stream_data(self._control_stream, encode_control(msg, self._v()))

    def _send_on(self, stream_id: int, msg: ControlMessage, end_stream: bool = False) -> None:
        self._counters[0] += 1
        self._transport.send_stream_data(stream_id, encode_control(msg, self._v()), end_stream)

    # --- setup -------------------------------------------------------------------------

    def _client_initiate(self) -> None:
        if self._control_stream is not None:
            raise LocalError("initiate() was already called")
        self._control_stream = self._transport.open_stream(unidirectional=False)
        tokens = (WireToken.use_value(self._auth_token),) if self._auth_token else ()
        params = SetupParameters.build(
            path=self._path,
            authority=self._authority,
            max_request_id=self._local_max_request_id,
            max_auth_token_cache_size=self._max_auth_token_cache_size,
            implementation=self._implementation,
            auth_tokens=tokens,
        )
        # Draft-16 negotiates by ALPN and has no version list; draft-14 (ALPN moq-00)
        # offers its versions in CLIENT_SETUP (draft-14 "Versions").
        versions = () if self._draft16 else (DRAFT_14,)
        self._send(ClientSetup(versions, params))
        self._prioritise_control()

    def _prioritise_control(self) -> None:
        """The control stream goes before every data stream (after its first write: picoquic
        creates a stream then). A stack with strict stream priorities (picoquic) otherwise
        sends it at its own default, behind media of higher publisher priority, and a
        congested session's answers (SUBSCRIBE_OK, PUBLISH_DONE) wait for the media."""
        assert self._control_stream is not None
        self._transport.set_stream_priority(self._control_stream, CONTROL_STREAM_PRIORITY)

    def _on_setup_message(self, msg: ControlMessage) -> None:
        if self._is_client:
            if not isinstance(msg, ServerSetup):
                raise ProtocolViolation(f"expected SERVER_SETUP, got {type(msg).__name__}")
            self._on_server_setup(msg)
        else:
            if not isinstance(msg, ClientSetup):
                raise ProtocolViolation(f"expected CLIENT_SETUP, got {type(msg).__name__}")
            self._on_client_setup(msg)

    def _check_uri_params(self, params: SetupParameters) -> None:
        # Draft-16 "PATH"/"AUTHORITY": never from a server, never over WebTransport.
        if params.path is not None and (self._is_client or self._webtransport):
            raise SessionError(
                "PATH parameter from a server or over WebTransport", SessionCloseCode.INVALID_PATH
            )
        if params.authority is not None and (self._is_client or self._webtransport):
            raise SessionError(
                "AUTHORITY parameter from a server or over WebTransport",
                SessionCloseCode.INVALID_AUTHORITY,
            )

    def _on_client_setup(self, msg: ClientSetup) -> None:
        if self._version is None or self._version == DRAFT_14:
            # ALPN moq-00: pick draft-14 from the client's list (draft-14 "Versions").
            if DRAFT_14 not in msg.versions:
                offered = ", ".join(f"{v:#x}" for v in msg.versions)
                raise SessionError(
                    f"no supported version offered ({offered})",
                    SessionCloseCode.VERSION_NEGOTIATION_FAILED,
                )
            self._version = DRAFT_14
        params = msg.parameters
        self._check_uri_params(params)
        tokens = self._tokens.resolve(params.auth_tokens, client_setup=True)
        self._peer_max_request_id = params.max_request_id or 0
        reply = SetupParameters.build(
            max_request_id=self._local_max_request_id,
            max_auth_token_cache_size=self._max_auth_token_cache_size,
            implementation=self._implementation,
        )
        selected = None if self._draft16 else DRAFT_14
        self._send(ServerSetup(selected, reply))
        self._complete_setup(params, tokens)

    def _on_server_setup(self, msg: ServerSetup) -> None:
        if not self._draft16 and msg.selected_version != DRAFT_14:
            raise SessionError(
                f"server selected version {msg.selected_version!r}, we offered {DRAFT_14:#x}",
                SessionCloseCode.VERSION_NEGOTIATION_FAILED,
            )
        params = msg.parameters
        self._check_uri_params(params)
        tokens = self._tokens.resolve(params.auth_tokens)
        self._peer_max_request_id = params.max_request_id or 0
        self._complete_setup(params, tokens)

    def _complete_setup(self, params: SetupParameters, tokens: tuple[AuthToken, ...]) -> None:
        self._setup_complete = True
        self._emit(
            SetupCompleted(
                version=self._v(),
                path=params.path,
                authority=params.authority,
                auth_tokens=tokens,
                peer_implementation=params.implementation,
                peer_max_request_id=self._peer_max_request_id,
            )
        )
        early, self._early = self._early, {}
        self._early_bytes = 0
        for stream_id, held in early.items():
            self._route_stream(stream_id, bytes(held.data), held.fin)

    # --- stream input routing ----------------------------------------------------------

    def _stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if stream_id in self._ignored_streams:
            if end_stream:
                self._ignored_streams.discard(stream_id)
            return
        if stream_id == self._control_stream:
            self._control_data(data, end_stream)
            return
        if (
            self._control_stream is None
            and not self._is_client
            and is_bidirectional(stream_id)
            and is_client_initiated(stream_id)
            and stream_id not in self._early
            and self._starts_with(stream_id, data, CLIENT_SETUP_TYPE)
        ):
            # The first bidi stream that opens with CLIENT_SETUP is the control stream.
            self._control_stream = stream_id
            self._prioritise_control()
            self._control_data(data, end_stream)
            return
        if not self._setup_complete:
            self._hold_early(stream_id, data, end_stream)
            return
        self._route_stream(stream_id, data, end_stream)

    def _starts_with(self, stream_id: int, data: bytes, message_type: int) -> bool:
        held = self._early.get(stream_id)
        head = bytes(held.data[:8]) + data[:8] if held is not None else data[:8]
        if not head:
            return False
        try:
            return Buffer(head).pull_varint() == message_type
        except NeedMoreData:
            return False

    def _hold_early(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        held = self._early.get(stream_id)
        if held is None:
            if is_bidirectional(stream_id) and is_client_initiated(stream_id) == self._is_client:
                raise ProtocolViolation("data on a bidirectional stream we never opened")
            held = self._early[stream_id] = _EarlyStream()
        if self._early_bytes + len(data) > MAX_EARLY_BYTES:
            # Too much before setup: stop reading this stream rather than buffer more.
            del self._early[stream_id]
            self._early_bytes -= len(held.data)
            self._ignore_stream(stream_id)
            return
        held.data += data
        held.fin = held.fin or end_stream
        self._early_bytes += len(data)
        if is_bidirectional(stream_id) and held.data:
            try:
                first = Buffer(bytes(held.data[:8])).pull_varint()
            except NeedMoreData:
                first = None
            allowed = {CLIENT_SETUP_TYPE}
            if self._version == DRAFT_16:
                allowed.add(SUBSCRIBE_NAMESPACE_TYPE)
            if first is not None and first not in allowed:
                # Draft-16 "Session initialization": bidi streams begin with CLIENT_SETUP
                # (the control stream) or SUBSCRIBE_NAMESPACE; anything else is a violation.
                raise ProtocolViolation(
                    f"a bidirectional stream begins with message type {first:#x}"
                )
        if held.fin and is_bidirectional(stream_id) and not _frame_complete(held.data):
            # A request stream that ends inside its first message can never become
            # one: refuse now rather than hold the session until the SETUP deadline.
            raise ProtocolViolation("a bidirectional stream ended inside a message before SETUP")
        if (
            self._control_stream is None
            and not self._is_client
            and self._starts_with(stream_id, b"", CLIENT_SETUP_TYPE)
        ):
            del self._early[stream_id]
            self._early_bytes -= len(held.data)
            self._control_stream = stream_id
            self._prioritise_control()
            self._control_data(bytes(held.data), held.fin)

    def _ignore_stream(self, stream_id: int, code: int = 0x1) -> None:
        """Stop reading ``stream_id`` (STOP_SENDING) and drop whatever else arrives on it."""
        self._ignored_streams.add(stream_id)
        if not is_bidirectional(stream_id) or is_client_initiated(stream_id) != self._is_client:
            self._transport.stop_sending(stream_id, code)

    def _route_stream(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if stream_id in self._ignored_streams:
            return
        if is_bidirectional(stream_id):
            self._bidi_data(stream_id, data, end_stream)
        else:
            self._uni_data(stream_id, data, end_stream)

    def _control_data(self, data: bytes, end_stream: bool) -> None:
        self._control_buf += data
        if not _frame_complete(self._control_buf):
            if end_stream:
                raise ProtocolViolation("the peer closed the control stream")
            return
        buf = Buffer(bytes(self._control_buf))
        consumed = 0
        try:
            while not buf.eof():
                if not self._setup_complete:
                    version = self._version if self._version is not None else DRAFT_14
                    msg = decode_control(buf, version)
                    consumed = buf.position
                    self._counters[1] += 1
                    self._on_setup_message(msg)
                else:
                    msg = decode_control(buf, self._v(), strict_parameters=self._strict_parameters)
                    consumed = buf.position
                    self._counters[1] += 1
                    self._on_control_message(msg, None)
                if self._closed:
                    return
        except NeedMoreData:
            pass
        del self._control_buf[:consumed]
        if end_stream:
            # Draft-16 "Session initialization": closing the control stream is a violation.
            raise ProtocolViolation("the peer closed the control stream")

    def _bidi_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Draft-16 SUBSCRIBE_NAMESPACE streams (the only other bidi use in 16)."""
        if not self._draft16:
            # Draft-14 "Session initialization": a second bidi stream MAY close the session.
            raise ProtocolViolation("unexpected bidirectional stream (draft-14 has only one)")
        pending = self._ns_bufs.setdefault(stream_id, bytearray())
        pending += data
        if stream_id not in self._ns_streams:
            if is_client_initiated(stream_id) == self._is_client:
                raise ProtocolViolation("data on a bidirectional stream we never used")
            # Draft-16 "Session initialization": a bidi stream other than the control
            # stream must begin with SUBSCRIBE_NAMESPACE.
            try:
                first = Buffer(bytes(pending[:8])).pull_varint()
            except NeedMoreData:
                if end_stream:
                    del self._ns_bufs[stream_id]
                return
            if first != SUBSCRIBE_NAMESPACE_TYPE:
                raise ProtocolViolation(
                    f"a bidirectional stream begins with message type {first:#x}, "
                    "not SUBSCRIBE_NAMESPACE"
                )
            self._ns_streams[stream_id] = None
        if not _frame_complete(pending):
            if end_stream:
                if pending:
                    raise ProtocolViolation("SUBSCRIBE_NAMESPACE stream ended inside a message")
                self._ns_stream_ended(stream_id)
            return
        buf = Buffer(bytes(pending))
        consumed = 0
        try:
            while not buf.eof():
                msg = decode_control(buf, self._v(), strict_parameters=self._strict_parameters)
                consumed = buf.position
                self._counters[1] += 1
                self._on_control_message(msg, stream_id)
                if self._closed or stream_id not in self._ns_streams:
                    return
        except NeedMoreData:
            pass
        del pending[:consumed]
        if end_stream:
            if pending:
                raise ProtocolViolation("SUBSCRIBE_NAMESPACE stream ended inside a message")
            self._ns_stream_ended(stream_id)

    # --- hooks the other parts implement -----------------------------------------------

    def _on_control_message(self, msg: ControlMessage, ns_stream: int | None) -> None:
        raise NotImplementedError

    def _ns_stream_ended(self, stream_id: int, *, reset: bool = False) -> None:
        raise NotImplementedError

    def _uni_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        raise NotImplementedError

    # --- request ids -------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise LocalError("the session is closed")
        if not self._setup_complete:
            raise LocalError("setup has not completed yet (wait for SetupCompleted)")

    def _new_request_id(self) -> int:
        """Allocate our next request id, or send REQUESTS_BLOCKED and raise."""
        self._require_open()
        if self._peer_goaway:
            # Draft-16 "GOAWAY": SHOULD NOT initiate new requests after receiving one.
            raise LocalError("the peer sent GOAWAY: open a new session for new requests")
        request_id = self._next_local_id
        if request_id >= self._peer_max_request_id:
            if self._blocked_on != self._peer_max_request_id:
                self._blocked_on = self._peer_max_request_id
                self._send(RequestsBlocked(self._peer_max_request_id))
            raise RequestBlockedError(
                f"request id {request_id} is not below the peer's MAX_REQUEST_ID "
                f"{self._peer_max_request_id}"
            )
        self._next_local_id += 2
        return request_id

    def _check_new_peer_request(self, request_id: int) -> None:
        """Draft-16 "Request ID" and "MAX_REQUEST_ID" rules for a new request of the peer.

        Draft-14 has one control stream, so ids must arrive exactly in sequence.  In
        draft-16 a SUBSCRIBE_NAMESPACE travels on its own stream and may overtake (or be
        overtaken by) requests on the control stream, so ids may arrive out of order:
        each must still be of the peer's parity, below our MAX_REQUEST_ID and never
        used before.
        """
        if request_id % 2 != self._next_peer_id % 2:
            raise SessionError(
                f"request id {request_id} has the wrong parity for the peer",
                SessionCloseCode.INVALID_REQUEST_ID,
            )
        if not self._draft16 and request_id != self._next_peer_id:
            raise SessionError(
                f"request id {request_id}, expected {self._next_peer_id}",
                SessionCloseCode.INVALID_REQUEST_ID,
            )
        if request_id >= self._local_max_request_id:
            raise SessionError(
                f"request id {request_id} is not below MAX_REQUEST_ID {self._local_max_request_id}",
                SessionCloseCode.TOO_MANY_REQUESTS,
            )
        if request_id < self._next_peer_id or request_id in self._peer_ids_ahead:
            raise SessionError(
                f"request id {request_id} was already used", SessionCloseCode.INVALID_REQUEST_ID
            )
        if request_id != self._next_peer_id:
            if len(self._peer_ids_ahead) >= MAX_REQUEST_ID_GAPS:
                raise SessionError(
                    f"request id {request_id} leaves too many ids unused",
                    SessionCloseCode.INVALID_REQUEST_ID,
                )
            self._peer_ids_ahead.add(request_id)
            return
        self._next_peer_id += 2
        while self._next_peer_id in self._peer_ids_ahead:
            self._peer_ids_ahead.discard(self._next_peer_id)
            self._next_peer_id += 2

    def _issued(self, request_id: int) -> bool:
        """True when ``request_id`` was ever used by its owner (us or the peer)."""
        if request_id % 2 == self._next_local_id % 2:
            return request_id < self._next_local_id
        return request_id < self._next_peer_id or request_id in self._peer_ids_ahead

    def _lookup(self, request_id: int, cls: type[_R], *, what: str) -> _R | None:
        """The live record of ``request_id``; None when it existed but is finished
        (late messages are ignored); ProtocolViolation when it never existed or is of
        another kind."""
        req = self._requests.get(request_id)
        if req is None:
            if self._issued(request_id):
                return None
            raise ProtocolViolation(f"{what} for unknown request id {request_id}")
        if not isinstance(req, cls):
            raise ProtocolViolation(f"{what} for request {request_id}, which is a {req.kind.value}")
        return req

    def _finish(self, req: Req) -> None:
        """Forget a request; a finished request of the peer frees one request id."""
        req.state = State.DONE
        if self._requests.get(req.request_id) is req:
            del self._requests[req.request_id]
        if not req.ours:
            self._grant_target += 2
            self._maybe_grant(force=False)

    def _maybe_grant(self, *, force: bool) -> None:
        gap = self._grant_target - self._local_max_request_id
        if gap > 0 and (force or gap >= self._grant_step) and not self._closed:
            self._local_max_request_id = self._grant_target
            self._send(MaxRequestId(self._local_max_request_id))

    # --- lookups for the public API (misuse raises LocalError) --------------------------

    def _own(self, request_id: int, cls: type[_R], what: str) -> _R:
        """Our live request ``request_id`` of type ``cls``."""
        req = self._requests.get(request_id)
        if not isinstance(req, cls) or not req.ours:
            raise LocalError(f"{what}: {request_id} is not a live request of ours of that kind")
        return req

    def _peers(self, request_id: int, cls: type[_R], what: str) -> _R | None:
        """The peer's live request ``request_id``; None when the session closed or the
        request already ended (answers race with cancellations and are dropped)."""
        if self._closed:
            return None
        req = self._requests.get(request_id)
        if req is None and self._issued(request_id) and request_id % 2 == self._next_peer_id % 2:
            return None
        if not isinstance(req, cls) or req.ours:
            raise LocalError(f"{what}: {request_id} is not a request of the peer of that kind")
        return req

    def _ended(self, request_id: int) -> bool:
        """True for a request id that was used but is no longer live: calls about it
        race with its end and are dropped, not misuse."""
        return request_id not in self._requests and self._issued(request_id)

    def _pick_alias(self, wanted: int | None) -> int:
        """A track alias for data we send: ``wanted`` if free, else a fresh one."""
        if wanted is not None:
            if not 0 <= wanted < (1 << 62):
                raise LocalError(f"track alias {wanted} is not a varint")
            if wanted in self._tx_aliases:
                raise LocalError(f"track alias {wanted} is in use")
            return wanted
        # Never reuse an alias within the session: streams of an ended subscription may
        # still be in flight, and a reused alias would route them to the new track.
        alias = self._next_alias
        while alias in self._tx_aliases:
            alias += 1
        self._next_alias = alias + 1
        return alias

    # --- timers ------------------------------------------------------------------------

    def _deadlines(self) -> list[float]:
        """Pending deadlines (the data plane adds its own)."""
        return [] if self._goaway_deadline is None else [self._goaway_deadline]

    def _on_timer(self, now: float) -> None:
        if self._goaway_deadline is not None and now >= self._goaway_deadline:
            self._goaway_deadline = None
            self._fail(int(SessionCloseCode.GOAWAY_TIMEOUT), "GOAWAY timeout")
