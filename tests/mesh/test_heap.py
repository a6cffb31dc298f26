"""mesh.heap: freed C heap pages go back to the kernel, on a schedule a node sets."""

from __future__ import annotations

import os

import pytest

from mesh.heap import HeapTrimmer, malloc_trim
from mesh.settings import PopSettings


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(malloc_trim() is None, reason="the C library has no malloc_trim")
def test_freed_heap_pages_leave_the_rss_only_when_trimmed() -> None:
    # 2,000-byte buffers come from glibc's heap (above CPython's small-object limit);
    # keeping every tenth pins the heap's top, so free() alone returns nothing.
    chunks = [bytearray(2000) for _ in range(60_000)]
    kept = chunks[::10]
    del chunks
    before = _rss_mb()
    assert malloc_trim() is True
    after = _rss_mb()
    assert before - after > 50, (before, after)
    assert len(kept) == 6_000


def test_the_trimmer_is_due_once_per_interval_and_never_at_zero() -> None:
    now = [100.0]
    trimmer = HeapTrimmer(60.0, clock=lambda: now[0])
    assert not trimmer.due()
    now[0] += 59.9
    assert not trimmer.due()
    now[0] += 0.2
    assert trimmer.due() is (malloc_trim() is not None)
    assert not trimmer.due()
    never = HeapTrimmer(0.0, clock=lambda: now[0])
    now[0] += 1e6
    assert not never.due()
    with pytest.raises(ValueError, match="interval"):
        HeapTrimmer(-1.0)


def test_nodes_trim_every_minute_by_default_and_refuse_a_negative_interval() -> None:
    assert PopSettings().heap_trim_interval == 60.0
    with pytest.raises(ValueError, match="heap_trim_interval"):
        PopSettings(heap_trim_interval=-1)
