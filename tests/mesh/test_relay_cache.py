"""The relay's group cache: latest group always kept, history bounded by bytes and age."""

from __future__ import annotations

import pytest

from mesh.relay import CachedObject, CacheLimits, TrackCache
from mesh.relay._cache import before_fetch_end
from moqt.types import Location, ObjectStatus


def obj(group: int, object_id: int, size: int = 100, subgroup: int | None = 0) -> CachedObject:
    return CachedObject(group, subgroup, object_id, 128, ObjectStatus.NORMAL, b"x" * size, ())


def test_keeps_latest_group_even_over_budget() -> None:
    cache = TrackCache(CacheLimits(max_bytes=50, max_age=10))
    for i in range(5):
        assert cache.add(obj(7, i), now=0.0)
    assert cache.group_ids() == [7]
    assert cache.size > 50
    assert cache.add(obj(8, 0), now=0.0)
    assert cache.group_ids() == [8]
    assert cache.statistics()["evicted_groups"] == 1


def test_history_bounded_by_bytes() -> None:
    cache = TrackCache(CacheLimits(max_bytes=1000, max_age=1000))
    for g in range(20):
        cache.add(obj(g, 0, size=200), now=float(g))
    assert cache.size <= 1000
    assert cache.group_ids()[-1] == 19
    assert len(cache.group_ids()) == 1000 // 216


def test_history_bounded_by_age() -> None:
    cache = TrackCache(CacheLimits(max_bytes=1 << 30, max_age=5.0))
    for g in range(10):
        cache.add(obj(g, 0), now=float(g))
    # groups created before now-5 (t=9 -> older than 4) are gone, the newest stays
    assert cache.group_ids() == [4, 5, 6, 7, 8, 9]
    cache.evict(now=100.0)
    assert cache.group_ids() == [9]


def test_duplicates_not_stored_and_conflicts_counted() -> None:
    cache = TrackCache(CacheLimits())
    assert cache.add(obj(1, 1), now=0)
    assert not cache.add(obj(1, 1), now=0)
    assert not cache.add(obj(1, 1, size=5), now=0)
    assert cache.statistics()["conflicts"] == 1
    assert cache.largest == Location(1, 1)


def test_fetch_range_semantics() -> None:
    cache = TrackCache(CacheLimits())
    for g in range(3):
        for o in range(4):
            cache.add(obj(g, o), now=0)
    got = [o.location for o in cache.objects(Location(0, 2), Location(1, 2))]
    assert got == [Location(0, 2), Location(0, 3), Location(1, 0), Location(1, 1)]
    # object 0 in the end location means the whole end group
    got = [o.location for o in cache.objects(Location(1, 3), Location(2, 0))]
    assert got == [Location(1, 3), *(Location(2, i) for i in range(4))]
    got = [o.group_id for o in cache.objects(Location(0, 0), None, descending=True)]
    assert got == [2] * 4 + [1] * 4 + [0] * 4
    assert cache.statistics()["hits"] == 3
    assert list(cache.objects(Location(5, 0), None)) == []
    assert cache.statistics()["misses"] == 1


def test_before_fetch_end() -> None:
    assert before_fetch_end(Location(3, 9), Location(3, 0))
    assert not before_fetch_end(Location(4, 0), Location(3, 0))
    assert before_fetch_end(Location(3, 1), Location(3, 2))
    assert not before_fetch_end(Location(3, 2), Location(3, 2))


def test_subgroups_and_completion() -> None:
    cache = TrackCache(CacheLimits())
    cache.add(obj(1, 0, subgroup=0), now=0)
    cache.add(obj(1, 1, subgroup=1), now=0)
    cache.add(obj(1, 2, subgroup=None), now=0)
    cache.subgroup_ended(1, 0)
    group = cache.group(1)
    assert group is not None
    assert set(group.subgroups()) == {0, 1, None}
    assert group.complete_subgroups == {0}


def test_limits_validated() -> None:
    with pytest.raises(ValueError):
        CacheLimits(max_bytes=-1)
