"""Choose the video rendition: the highest that keeps up (sans-I/O, time passed in).

The signal is how late media arrives: for each chunk of the current rendition,
``arrival - media_time`` minus the smallest value seen since the rendition
started is its *lag* (0 while the connection keeps pace with real time; it grows
when the link cannot carry the rendition's bitrate). The controller

* steps down one rendition when the lag exceeds ``down_lag`` seconds;
* steps up one rendition after ``probe_after`` seconds in which the lag stayed
  below ``up_lag``; a step up that has to be undone soon doubles ``probe_after``
  (up to ``max_probe_after``), so a link at its limit does not oscillate.

A pinned rendition (``pinned=``) is never changed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["AbrController", "Rendition"]


@dataclass(frozen=True, slots=True)
class Rendition:
    name: str
    bitrate: int
    width: int | None = None
    height: int | None = None


class AbrController:
    def __init__(
        self,
        renditions: list[Rendition],
        *,
        pinned: str | None = None,
        max_height: int | None = None,
        down_lag: float = 1.5,
        up_lag: float = 0.4,
        probe_after: float = 20.0,
        max_probe_after: float = 160.0,
    ) -> None:
        ladder = sorted(renditions, key=lambda r: -r.bitrate)
        if max_height is not None:
            capped = [r for r in ladder if r.height is None or r.height <= max_height]
            ladder = capped or ladder[-1:]
        if not ladder:
            raise ValueError("no video rendition to choose from")
        if pinned is not None and pinned not in {r.name for r in ladder}:
            raise ValueError(f"rendition {pinned!r} is not in the catalog")
        self.ladder = ladder
        self.pinned = pinned
        self._down_lag = down_lag
        self._up_lag = up_lag
        self._probe_after = probe_after
        self._max_probe_after = max_probe_after
        self.current = pinned if pinned is not None else ladder[0].name
        self._since = 0.0
        self._offset: float | None = None
        self._lag = 0.0
        self._recent: deque[tuple[float, float]] = deque(maxlen=4096)
        self._last_up: float | None = None

    @property
    def lag(self) -> float:
        return self._lag

    def _index(self, name: str) -> int:
        for i, r in enumerate(self.ladder):
            if r.name == name:
                return i
        return 0

    def switched(self, name: str, now: float) -> None:
        """``name`` is now playing (its first chunk was delivered at ``now``)."""
        if self._index(name) < self._index(self.current):
            self._last_up = now
        self.current = name
        self._since = now
        self._offset = None
        self._lag = 0.0
        self._recent.clear()

    def observe(self, arrival: float, media_time: float) -> None:
        delta = arrival - media_time
        if self._offset is None or delta < self._offset:
            self._offset = delta
        self._lag = delta - self._offset
        self._recent.append((arrival, self._lag))

    def decide(self, now: float) -> str | None:
        """A rendition to switch to, or None to stay."""
        if self.pinned is not None or self._offset is None:
            return None
        index = self._index(self.current)
        if self._lag > self._down_lag and index + 1 < len(self.ladder):
            if self._last_up is not None and now - self._last_up < 2 * self._probe_after:
                self._probe_after = min(self._probe_after * 2, self._max_probe_after)
            return self.ladder[index + 1].name
        if index > 0 and now - self._since >= self._probe_after:
            window = [lag for t, lag in self._recent if t >= now - self._probe_after]
            if window and max(window) < self._up_lag:
                return self.ladder[index - 1].name
        return None
