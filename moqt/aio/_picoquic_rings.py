"""Writes into picoquic's stream rings: overflow, send backlog and drain wake-ups.

aiopquic hands stream bytes to picoquic's thread through one ring per stream,
and a write into a full ring is refused whole (``BufferError``). Raw QUIC and
WebTransport share that model, so both transports build on :class:`RingSender`:

* a refused write goes to a per-stream overflow, kept in write order, so the
  session's writes stay synchronous and nothing is reordered or lost; the
  overflow is handed over when picoquic drained the ring;
* the send backlog (what ``MoqtConnection.send_backlog`` reports) is what the
  rings hold that picoquic has not put into packets yet, plus that overflow;
* a reader that found the backlog non-empty is woken (``on_writable``) when
  picoquic next drains one of those streams, or after a short fallback delay
  if that drain notice got lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from .._log import library_logger

__all__ = [
    "EVENT_RING_CAPACITY",
    "PRIORITY_FIFO",
    "RingSender",
    "picoquic_priority",
    "ring_write_size",
]

logger = library_logger("moqt.aio")

# picoquic's event rings: room for bursts of many small stream events.
EVENT_RING_CAPACITY = 1 << 16
# A drained-stream wake-up that never comes (its ring event was lost) must not
# leave a waiting writer stuck: look again after this long.
_WAKE_FALLBACK = 0.005
# picoquic's priorities are 0..255, lower first, 9 for streams nobody prioritised;
# the low bit picks round robin (even) or FIFO by stream id (odd) among equal ones.
# Odd: of one track's subgroup streams at one priority the older group (the lower
# stream id) goes first, the draft's ascending group order, as on aioquic.
PRIORITY_FIFO = 0x01


def ring_write_size(ring_capacity: int) -> int:
    """The largest single write into a stream ring of ``ring_capacity`` bytes (0: aiopquic's
    4 MiB default): a quarter, so a ring takes the next piece while picoquic sends one."""
    return max(1024, (ring_capacity or 4 << 20) // 4)


def picoquic_priority(priority: int) -> int:
    """picoquic's value for a MoQT priority (0..255, lower first), FIFO bit included.

    Twice the priority, so the FIFO bit keeps adjacent priorities apart (``p | 1`` made
    2 and 3 one level: our ladder's 360p and 720p); 127 and above share the last level.
    0 (the session's control stream, see ``moqt._core``) is level 1, ahead of every data
    stream of a lower priority and of picoquic's default 9 (MoQT priority 4)."""
    return min(255, max(0, priority) * 2) | PRIORITY_FIFO


class RingSender:
    """The overflow, backlog and wake-up bookkeeping over picoquic stream rings.

    Subclasses say how to reach a ring: :meth:`_ring_write` (raises
    ``BufferError`` when full, ``ConnectionError`` when the stream or the
    connection is gone), :meth:`_ring_used`, :meth:`_ring_arm` (ask for a drain
    notice), :meth:`_ring_ready` (False while a stream cannot take bytes
    yet; its writes wait in the overflow) and :meth:`_datagram_write`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_write: int = 1 << 20) -> None:
        self._loop = loop
        # A write goes into a ring whole or not at all: larger ones are cut to this size,
        # so a stream ring smaller than an object still carries it.
        self._max_write = max(1, max_write)
        # Streams whose ring may still hold bytes picoquic has not sent.
        self._active: set[int] = set()
        self._fin_written: set[int] = set()
        # Bytes picoquic refused (ring full) or that wait for their stream, in write order.
        self._overflow: dict[int, deque[tuple[bytes, bool]]] = {}
        self._overflow_bytes = 0
        self._watching = False
        # A backlog reader is woken once the backlog it saw was at least this much.
        self.wake_from = 1
        self._wake: asyncio.TimerHandle | None = None
        self.on_writable: Callable[[], None] = _no_reader

    # --- what a subclass provides ------------------------------------------------------

    def _ring_write(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        raise NotImplementedError

    def _ring_used(self, stream_id: int) -> int:
        raise NotImplementedError

    def _ring_arm(self, stream_id: int) -> None:
        raise NotImplementedError

    def _ring_ready(self, stream_id: int) -> bool:
        return True

    def _datagram_write(self, data: bytes) -> int:
        """Queue one DATAGRAM; the bytes taken (0: the datagram ring is full)."""
        raise NotImplementedError

    def send_datagram(self, data: bytes) -> None:
        try:
            accepted = self._datagram_write(data)
        except (ValueError, ConnectionError) as exc:
            logger.debug("datagram_dropped", error=str(exc), size=len(data))
            return
        if not accepted:  # the datagram ring is full: datagrams may be lost, this one is
            logger.debug("datagram_dropped", error="ring full", size=len(data))

    # --- writes ------------------------------------------------------------------------

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        size = self._max_write
        if len(data) > size:
            for start in range(0, len(data), size):
                last = start + size >= len(data)
                self._send_piece(stream_id, bytes(data[start : start + size]), end_stream and last)
            return
        self._send_piece(stream_id, data, end_stream)

    def _send_piece(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        queue = self._overflow.get(stream_id)
        if queue is not None:
            queue.append((bytes(data), end_stream))
            self._overflow_bytes += len(data)
            return
        try:
            self._ring_write(stream_id, data, end_stream)
        except BufferError:
            self._overflow[stream_id] = deque([(bytes(data), end_stream)])
            self._overflow_bytes += len(data)
            self._watch()
            return
        except ConnectionError as exc:  # the stream or the connection is gone: nobody reads it
            logger.debug("stream_write_dropped", stream=stream_id, error=str(exc))
            return
        self._written(stream_id, end_stream)

    def _written(self, stream_id: int, end_stream: bool) -> None:
        self._active.add(stream_id)
        if end_stream:
            self._fin_written.add(stream_id)

    def _forget_stream(self, stream_id: int) -> None:
        """The stream is reset: what waits for it is never sent."""
        self._drop_overflow(stream_id)
        self._active.discard(stream_id)
        self._fin_written.discard(stream_id)

    # --- backlog and wake-ups ----------------------------------------------------------

    def set_wake_from(self, min_backlog: int) -> None:
        self.wake_from = max(1, min_backlog)

    def backlog(self) -> int:
        """Bytes written but not yet in packets: picoquic's stream rings plus our overflow.

        A backlog of at least :attr:`wake_from` bytes asks picoquic for a drain notice
        on the streams holding it (the reader is woken then, see ``events_processed``).
        """
        total = self._overflow_bytes
        done: list[int] = []
        pending: list[int] = []
        for stream_id in self._active:
            used = self._ring_used(stream_id)
            if used:
                total += used
                pending.append(stream_id)
            elif stream_id in self._fin_written:
                done.append(stream_id)
        for stream_id in done:
            self._active.discard(stream_id)
            self._fin_written.discard(stream_id)
        if total >= self.wake_from:
            if not self._watching:
                for stream_id in pending:
                    self._ring_arm(stream_id)
            self._watch()
        return total

    def events_processed(self) -> None:
        """picoquic reported something (a drained ring among it): retry and wake the writer."""
        if self._overflow:
            self._retry_overflow()
        if self._watching:
            self._watching = False
            self._cancel_wake()
            self.on_writable()

    def _watch(self) -> None:
        self._watching = True
        if self._wake is None:
            self._wake = self._loop.call_later(_WAKE_FALLBACK, self._wake_fallback)

    def _wake_fallback(self) -> None:
        self._wake = None
        self.events_processed()

    def _cancel_wake(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None

    def _retry_overflow(self) -> None:
        for stream_id in list(self._overflow):
            if not self._ring_ready(stream_id):
                continue
            queue = self._overflow[stream_id]
            while queue:
                data, end_stream = queue[0]
                try:
                    self._ring_write(stream_id, data, end_stream)
                except BufferError:
                    self._watch()
                    break
                except ConnectionError as exc:
                    logger.debug("stream_write_dropped", stream=stream_id, error=str(exc))
                    self._drop_overflow(stream_id)
                    break
                queue.popleft()
                self._overflow_bytes -= len(data)
                self._written(stream_id, end_stream)
            if not queue:
                self._overflow.pop(stream_id, None)

    def _drop_overflow(self, stream_id: int) -> None:
        queue = self._overflow.pop(stream_id, None)
        if queue is not None:
            self._overflow_bytes -= sum(len(data) for data, _ in queue)

    def connection_closed(self) -> None:
        self._cancel_wake()
        self._overflow.clear()
        self._overflow_bytes = 0
        self._active.clear()
        self._fin_written.clear()
        # The reader's hook is bound to the MoqtConnection that holds this transport:
        # dropped, the two are no reference cycle once the connection is gone.
        self.on_writable = _no_reader


def _no_reader() -> None:
    return None
