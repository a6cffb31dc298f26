"""A throttled relay->viewer direction for congestion tests over in-memory sessions."""

from __future__ import annotations

from dataclasses import replace

from tests.moqt.harness import SessionPair

__all__ = ["Link"]


class Link:
    """The relay->viewer direction of the pair, drained by the test."""

    def __init__(self, pair: SessionPair) -> None:
        self.pair = pair
        self.transport = pair.s.transport

    def backlog(self) -> int:
        resets = self.transport.resets
        return sum(
            len(op.data)
            for op in self.transport.outbox
            if op.kind == "data" and op.stream_id not in resets
        )

    def deliver(self, budget: int | None = None) -> None:
        """Deliver queued writes in order, at most ``budget`` bytes (None: all)."""
        outbox, resets = self.transport.outbox, self.transport.resets
        left = budget
        while outbox and (left is None or left > 0):
            op = outbox.popleft()
            if op.kind == "data" and op.stream_id in resets:
                continue  # reset before it left: QUIC never sends it
            if op.kind == "data" and left is not None and len(op.data) > left:
                rest = replace(op, data=op.data[left:])
                op = replace(op, data=op.data[:left], fin=False)
                outbox.appendleft(rest)
            if left is not None:
                left -= len(op.data)
            self.pair._apply(op, self.pair.c)
        while self.pair.c.transport.outbox:
            self.pair._apply(self.pair.c.transport.outbox.popleft(), self.pair.s)
