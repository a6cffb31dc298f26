"""``moqt._transport.Transport`` over aioquic: raw QUIC and one WebTransport session.

Both only buffer into aioquic and ask their owner to transmit soon (``flush``),
so many writes in one event-loop tick leave in as few packets as possible.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import FrameType, H3Connection, H3Stream
from aioquic.quic.connection import QuicConnection

__all__ = [
    "QuicTransport",
    "WebTransportH3",
    "WebTransportTransport",
    "encode_close_capsule",
    "encode_plain_headers",
]

# draft-ietf-webtrans-http3: CLOSE_WEBTRANSPORT_SESSION capsule and the reason limit.
CLOSE_WEBTRANSPORT_SESSION = 0x2843
_MAX_REASON_BYTES = 1024
_H3_DATA_FRAME = 0x0


def _truncate_reason(reason: str, limit: int) -> bytes:
    data = reason.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def encode_close_capsule(error_code: int, reason: str) -> bytes:
    """CLOSE_WEBTRANSPORT_SESSION capsule (32-bit code + UTF-8 reason), inside an H3 DATA frame."""
    payload = struct.pack("!I", error_code & 0xFFFFFFFF) + _truncate_reason(
        reason, _MAX_REASON_BYTES
    )
    capsule = encode_uint_var(CLOSE_WEBTRANSPORT_SESSION) + encode_uint_var(len(payload)) + payload
    return encode_uint_var(_H3_DATA_FRAME) + encode_uint_var(len(capsule)) + capsule


def _qpack_prefixed_int(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 9204 section 4.1.1 (RFC 7541 5.1): ``value`` in a ``prefix_bits`` prefix of a
    first byte that already holds ``first`` in its high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_plain_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A QPACK field section of literal names and values, no Huffman, no table.

    picoquic's HTTP/3 (h3zero) decodes a Huffman-coded value into a 256-byte buffer
    and fails the request (H3_FRAME_ERROR) when it is longer: a WebTransport CONNECT
    whose ``:path`` carries a playback token (``?token=<JWT>``, 500+ characters)
    never reached a picoquic POP from aioquic's encoder, which Huffman-codes
    whatever gets shorter. Plain literals are valid for every QPACK decoder.
    """
    out = bytearray(b"\x00\x00")  # Required Insert Count 0, Base 0: no dynamic table
    for name, value in headers:
        # Literal Field Line with Literal Name (001N H + 3-bit length), H = 0.
        out += _qpack_prefixed_int(len(name), 3, 0x20) + name
        out += _qpack_prefixed_int(len(value), 7, 0x00) + value
    return bytes(out)


class WebTransportH3(H3Connection):
    """aioquic's ``H3Connection`` with two fixes: a bidirectional WebTransport stream
    we open also *receives* as a WebTransport stream (aioquic 1.7 would parse the
    peer's bytes on it as HTTP/3 frames and close the connection), and header
    blocks go out as plain literals (:func:`encode_plain_headers`), which picoquic
    decodes at any length."""

    def _encode_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        return encode_plain_headers(headers)

    def create_webtransport_stream(self, session_id: int, is_unidirectional: bool = False) -> int:
        stream_id = super().create_webtransport_stream(session_id, is_unidirectional)
        if not is_unidirectional:
            stream = self._stream.get(stream_id)
            if stream is None:
                stream = H3Stream(stream_id)
                self._stream[stream_id] = stream
            stream.frame_type = FrameType.WEBTRANSPORT_STREAM
            stream.session_id = session_id
        return stream_id


class QuicTransport:
    """MoQT directly on a QUIC connection (ALPN ``moqt-16`` / ``moq-00``)."""

    def __init__(self, quic: QuicConnection, flush: Callable[[], None]) -> None:
        self._quic = quic
        self._flush = flush
        self.priorities: dict[int, int] = {}

    def open_stream(self, unidirectional: bool) -> int:
        stream_id = self._quic.get_next_available_stream_id(is_unidirectional=unidirectional)
        # aioquic creates the stream on first use; an empty write makes it exist now.
        self._quic.send_stream_data(stream_id, b"", end_stream=False)
        self._flush()
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._quic.send_stream_data(stream_id, data, end_stream)
        if end_stream:
            self.priorities.pop(stream_id, None)
        self._flush()

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._quic.reset_stream(stream_id, error_code)
        self.priorities.pop(stream_id, None)
        self._flush()

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self._quic.stop_stream(stream_id, error_code)
        self._flush()

    def send_datagram(self, data: bytes) -> None:
        self._quic.send_datagram_frame(data)
        self._flush()

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        # aioquic has no stream scheduler knob; keep the hint for schedulers above us.
        self.priorities[stream_id] = max(0, min(255, priority))

    def close(self, error_code: int, reason: str) -> None:
        self._quic.close(error_code=error_code, reason_phrase=reason)
        self._flush()


class WebTransportTransport:
    """MoQT inside one WebTransport session (HTTP/3 extended CONNECT, ALPN ``h3``).

    Stream ids are the QUIC stream ids of the WebTransport streams; aioquic's
    ``H3Connection`` writes and strips the WebTransport stream headers.
    """

    def __init__(
        self,
        quic: QuicConnection,
        h3: H3Connection,
        session_id: int,
        flush: Callable[[], None],
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self._quic = quic
        self._h3 = h3
        self.session_id = session_id
        self._flush = flush
        self._on_close = on_close
        self.streams: set[int] = set()
        self.priorities: dict[int, int] = {}
        self.closed = False

    def open_stream(self, unidirectional: bool) -> int:
        stream_id = self._h3.create_webtransport_stream(
            self.session_id, is_unidirectional=unidirectional
        )
        self.streams.add(stream_id)
        self._flush()
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._quic.send_stream_data(stream_id, data, end_stream)
        if end_stream:
            self._sending_done(stream_id)
        self._flush()

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        # WebTransport application error codes are mapped into the HTTP/3 space.
        self._quic.reset_stream(stream_id, webtransport_code_to_http3(error_code))
        self._sending_done(stream_id)
        self._flush()

    def _sending_done(self, stream_id: int) -> None:
        self.priorities.pop(stream_id, None)
        if stream_id & 0x2:  # unidirectional: nothing more will happen on it
            self.streams.discard(stream_id)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self._quic.stop_stream(stream_id, webtransport_code_to_http3(error_code))
        self._flush()

    def send_datagram(self, data: bytes) -> None:
        self._h3.send_datagram(self.session_id, data)
        self._flush()

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        self.priorities[stream_id] = max(0, min(255, priority))

    def close(self, error_code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._quic.send_stream_data(
            self.session_id, encode_close_capsule(error_code, reason), end_stream=True
        )
        self._flush()
        self._on_close()


# draft-ietf-webtrans-http3 section 4.4: application codes 0..2^32-1 map into a
# reserved HTTP/3 range that skips the GREASE code points.
_WT_CODE_FIRST = 0x52E4A40FA8DB
_WT_CODE_LAST = 0x52E5AC983162


def webtransport_code_to_http3(code: int) -> int:
    code &= 0xFFFFFFFF
    return _WT_CODE_FIRST + code + code // 0x1E


def http3_code_to_webtransport(code: int) -> int | None:
    """Inverse of :func:`webtransport_code_to_http3`; ``None`` for a code outside the range."""
    if not _WT_CODE_FIRST <= code <= _WT_CODE_LAST or (code - 0x21) % 0x1F == 0:
        return None
    shifted = code - _WT_CODE_FIRST
    return shifted - shifted // 0x1F
