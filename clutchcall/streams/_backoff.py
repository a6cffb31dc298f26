"""When a data-plane client tries again, and when it gives up: one :class:`Backoff` per run of
attempts (the live viewer's reconnects, one on-demand segment's HTTP fetch).

Each failure asks :meth:`Backoff.failed` for the pause before the next attempt
(``pause * factor ** n`` after the n-th failure) or ``None``: the ``tries`` failures allowed
are spent, or the ``window`` (seconds from the first failure since the last
:meth:`restart`) has passed. The caller sleeps the pause itself, so what it must do between
attempts (forget a lost session, check for a close) stays where it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """A retry budget (see the module doc); ``None`` for ``tries`` or ``window``: no such bound."""

    pause: float
    factor: float = 1.0
    tries: int | None = None
    window: float | None = None
    clock: Callable[[], float] = time.monotonic
    failures: int = field(default=0, init=False)
    _deadline: float | None = field(default=None, init=False)

    def failed(self) -> float | None:
        """One more failure: the pause before the next attempt, or None to give up."""
        self.failures += 1
        if self.tries is not None and self.failures > self.tries:
            return None
        if self.window is not None:
            now = self.clock()
            if self._deadline is None:
                self._deadline = now + self.window
            if now >= self._deadline:
                return None
        return self.pause * self.factor**self.failures

    def restart(self) -> None:
        """An attempt went well: the budget starts again at the next failure."""
        self.failures = 0
        self._deadline = None
