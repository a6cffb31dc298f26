"""Throttling of repeated authentication failures, per client address.

A client that fails authentication ``limit`` times within ``window`` seconds
is refused (429 with Retry-After) until its oldest counted failure leaves the
window. Memory is bounded: at most ``max_clients`` clients are tracked, the
least recently failing ones are forgotten first. The state is per process; each
replica of the control plane throttles on its own.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from time import monotonic

__all__ = ["FailureLimiter"]


class FailureLimiter:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window = window
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _prune(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it is not throttled."""
        now = self._clock()
        times = self._prune(client, now)
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str) -> None:
        now = self._clock()
        times = self._prune(client, now)
        if times is None:
            times = self._failures[client] = deque(maxlen=self.limit)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(client)
        times.append(now)

    def statistics(self) -> dict[str, int]:
        return {"tracked_clients": len(self._failures)}
