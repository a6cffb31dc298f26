"""What a :class:`~moqt.session.Session` needs from the stream layer beneath it.

The session is sans-I/O: it never touches sockets, tasks or clocks. Like
aioquic's ``H3Connection`` over ``QuicConnection``, it *calls* a transport
object that only buffers (QUIC stream ids are QUIC's: bit 0x2 set means
unidirectional, bit 0x1 set means server-initiated). The asyncio adapters in
``moqt.aio`` implement this over raw QUIC and over WebTransport; the in-memory
harness in ``tests/moqt/harness.py`` implements it for tests.

Input flows the other way: the adapter calls ``Session.stream_data_received``,
``Session.stream_reset``, ``Session.datagram_received``,
``Session.connection_lost`` and ``Session.handle_timer`` with ``now`` (seconds,
monotonic) and collects the returned events.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Transport", "is_bidirectional", "is_client_initiated"]


class Transport(Protocol):
    def open_stream(self, unidirectional: bool) -> int:
        """Open a new local stream and return its QUIC stream id."""
        ...

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None: ...

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM: abandon what we were sending on ``stream_id``."""
        ...

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING: ask the peer to stop sending on ``stream_id``."""
        ...

    def send_datagram(self, data: bytes) -> None: ...

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        """Hint for the sender's scheduler: lower value is sent first (0..255)."""
        ...

    def close(self, error_code: int, reason: str) -> None:
        """Close the whole session with an application error code and a reason."""
        ...


def is_bidirectional(stream_id: int) -> bool:
    return not stream_id & 0x2


def is_client_initiated(stream_id: int) -> bool:
    return not stream_id & 0x1
