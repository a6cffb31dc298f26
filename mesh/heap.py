"""Hand the C heap's free pages back to the kernel (glibc ``malloc_trim``).

A relay's C allocations churn (picoquic's per-stream rings, OpenSSL per handshake), and
glibc keeps freed pages in the process's RSS unless they sit at the top of a heap.
``malloc_trim(0)`` gives them back (``madvise(MADV_DONTNEED)`` on every arena's free
chunks). In the hour soak (``bench/RESULTS.md``, issue 13) each minute's trim gave back
3-7 MB of a POP's ~115 MB. (The POP's growth at key rotations that the trim could not
touch was live memory: ended sessions kept in reference cycles, freed since by
reference counting, see ``MoqtConnection._release_callbacks``.)

:class:`HeapTrimmer` has it called every ``interval`` seconds from a node's
housekeeping (``heap_trim_interval``; 0 turns it off), on a worker thread. Where the C
library is not glibc the call is not there and the trimmer does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

__all__ = ["HeapTrimmer", "malloc_trim"]


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_MALLOC_TRIM = _load_malloc_trim()


def malloc_trim() -> bool | None:
    """Release the free pages of every glibc arena: True when some were released,
    False when none, None where the C library has no ``malloc_trim``."""
    if _MALLOC_TRIM is None:
        return None
    return bool(_MALLOC_TRIM(0))


class HeapTrimmer:
    """When to call :func:`malloc_trim`: :meth:`due` is asked often and says yes once
    ``interval`` seconds have passed since it last did (``interval`` 0: never). The
    caller runs the trim off its event loop (ctypes lets go of the GIL for it; a trim
    of a 100 MB heap took 0.5-5 ms here)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if interval < 0:
            raise ValueError("interval must be >= 0 (0: never)")
        self.interval = interval
        self._clock = clock
        self._last = clock()

    def due(self) -> bool:
        if not self.interval or _MALLOC_TRIM is None:
            return False
        now = self._clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True
