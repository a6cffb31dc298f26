"""How far a QUIC connection is behind on sending: the bytes it holds but has not sent.

A relay's per-subscriber scheduler writes into a connection only while this is
small, so that what is queued waits *above* QUIC, where it can still be
prioritised or dropped (``mesh.relay._scheduler``), instead of in aioquic's
unbounded stream buffers, where it can only wait.

aioquic (1.x) has no public accessor for it; this reads its send buffers. A
stream's ``sender._pending`` ranges are the bytes written but not yet put in a
packet, plus lost ones scheduled again; ``buffer_is_empty`` is aioquic's own
"nothing to send" flag (also set once the stream is reset, whose pending bytes
are then never sent). Queued DATAGRAM frames count too.
"""

from __future__ import annotations

from aioquic.quic.connection import QuicConnection

__all__ = ["quic_send_backlog"]


def quic_send_backlog(quic: QuicConnection) -> int:
    """Bytes written to ``quic`` that are waiting to be sent (or sent again after a loss)."""
    total = 0
    for stream in quic._streams.values():
        sender = stream.sender
        if sender.buffer_is_empty:
            continue
        for pending in sender._pending:
            total += len(pending)
    for datagram in quic._datagrams_pending:
        total += len(datagram)
    return total
