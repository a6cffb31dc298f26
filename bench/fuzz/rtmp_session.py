"""RTMP publisher sessions: ``ServerConnection`` after a good handshake (chunk stream
reader, protocol control, user control, AMF0 commands and data, aggregate messages),
accepting every connect and publish as the origin would, plus the FLV audio/video tag
headers of every media message.

Byte 0 is the chunk size the session is fed in (0: all at once). Allowed: RtmpPeerError.
"""

from __future__ import annotations

from collections.abc import Iterator

from origin.rtmp.connection import ConnectionLimits, ServerConnection
from origin.rtmp.errors import RtmpPeerError
from origin.rtmp.events import ConnectRequested, MediaReceived, PublishRequested
from origin.rtmp.handshake import HANDSHAKE_SIZE, build_c0c1

__all__ = ["TestOneInput", "seeds"]

_HANDSHAKE = build_c0c1() + bytes(HANDSHAKE_SIZE)


def _accept(conn: ServerConnection, stream_id: int) -> None:
    # As origin/rtmp/server.py does: a publish withdrawn by a deleteStream pipelined
    # behind connect is not answered (accepting it was an RtmpUsageError, found here).
    if conn.publish_pending(stream_id):
        conn.accept_publish(stream_id, "ok")


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    step = data[0] or len(data)
    body = data[1:]
    conn = ServerConnection(ConnectionLimits(max_message_size=4096, max_chunk_size=4096))
    try:
        conn.receive_data(_HANDSHAKE)
        for i in range(0, len(body), step):
            for ev in conn.receive_data(body[i : i + step]):
                if isinstance(ev, ConnectRequested):
                    for e in conn.accept_connect():
                        if isinstance(e, PublishRequested):
                            _accept(conn, e.stream_id)
                elif isinstance(ev, PublishRequested):
                    _accept(conn, ev.stream_id)
                elif isinstance(ev, MediaReceived):
                    _ = ev.tag.is_keyframe, ev.tag.is_sequence_header
            conn.data_to_send()
    except RtmpPeerError:
        pass


def seeds() -> Iterator[bytes]:
    """A recorded publisher session (connect, createStream, publish, metadata, media)."""
    from tests.origin.rtmp.test_connection import RECORDED

    for step in (0, 7, 128):
        yield bytes((step,)) + RECORDED
