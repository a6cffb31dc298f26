"""The relay's group cache: the latest group of a track always, older ones by budget.

One :class:`TrackCache` per track. Objects are stored per group; a group is
evicted oldest-first when the track's cached bytes exceed ``max_bytes`` or the
group is older than ``max_age`` seconds (time of its first object) - but the
newest group is never evicted, so a late joiner can always start at the
current group. Time is passed in (``now``), never read here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from moqt.types import Extensions, Location, ObjectStatus

__all__ = ["CacheLimits", "CachedGroup", "CachedObject", "TrackCache", "before_fetch_end"]


def before_fetch_end(loc: Location, end: Location) -> bool:
    """Whether ``loc`` is inside a FETCH range ending at ``end`` ("End Location, plus 1")."""
    if loc.group != end.group:
        return loc.group < end.group
    return end.object == 0 or loc.object < end.object


@dataclass(frozen=True, slots=True)
class CachedObject:
    group_id: int
    subgroup_id: int | None  # None: the object arrived as a datagram
    object_id: int
    publisher_priority: int
    status: ObjectStatus
    payload: bytes
    extensions: Extensions

    @property
    def location(self) -> Location:
        return Location(self.group_id, self.object_id)

    @property
    def size(self) -> int:
        return len(self.payload) + 16


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """Per-track budget; the newest group is kept whatever it costs."""

    max_bytes: int = 16 << 20
    max_age: float = 30.0

    def __post_init__(self) -> None:
        if self.max_bytes < 0 or self.max_age < 0:
            raise ValueError("cache limits must not be negative")


@dataclass(slots=True)
class CachedGroup:
    group_id: int
    created: float
    objects: dict[int, CachedObject] = field(default_factory=dict)
    # Subgroups whose stream ended with FIN: every object of them is here.
    complete_subgroups: set[int] = field(default_factory=set)
    size: int = 0

    def ordered(self) -> list[CachedObject]:
        return [self.objects[k] for k in sorted(self.objects)]

    def subgroups(self) -> dict[int | None, list[CachedObject]]:
        out: dict[int | None, list[CachedObject]] = {}
        for obj in self.ordered():
            out.setdefault(obj.subgroup_id, []).append(obj)
        return out


class TrackCache:
    """Cached objects of one track, by group."""

    def __init__(self, limits: CacheLimits) -> None:
        self._limits = limits
        self._groups: dict[int, CachedGroup] = {}
        self._largest: Location | None = None
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evicted_groups = 0
        self.conflicts = 0
        self.uncached = 0  # new objects too old to keep within the budget (still forwarded)

    @property
    def largest(self) -> Location | None:
        """The largest Location ever seen on this track (even if since evicted)."""
        return self._largest

    @property
    def size(self) -> int:
        return self._bytes

    def group_ids(self) -> list[int]:
        return sorted(self._groups)

    def group(self, group_id: int) -> CachedGroup | None:
        return self._groups.get(group_id)

    def add(self, obj: CachedObject, now: float) -> bool:
        """Store ``obj``; False when it is a duplicate (same location), True when it is new.

        An object older than every cached group that does not fit the budget is new but not
        stored (counted in ``uncached``): the budget bounds what the cache keeps, not what
        subscribers get, so the relay still forwards it (it may be the live tail of a group
        whose stream to the subscribers is still open)."""
        group = self._groups.get(obj.group_id)
        if group is None:
            if self._groups and obj.group_id < min(self._groups) and self._over_budget(obj.size):
                self._note_largest(obj)
                self.uncached += 1
                return True
            group = CachedGroup(obj.group_id, now)
            self._groups[obj.group_id] = group
        existing = group.objects.get(obj.object_id)
        if existing is not None:
            if existing.payload != obj.payload:
                self.conflicts += 1
            return False
        group.objects[obj.object_id] = obj
        group.size += obj.size
        self._bytes += obj.size
        self._note_largest(obj)
        self.evict(now)
        return True

    def subgroup_ended(self, group_id: int, subgroup_id: int) -> None:
        group = self._groups.get(group_id)
        if group is not None:
            group.complete_subgroups.add(subgroup_id)

    def evict(self, now: float) -> None:
        if len(self._groups) <= 1:
            return
        newest = max(self._groups)
        for group_id in sorted(self._groups):
            if group_id == newest:
                break
            group = self._groups[group_id]
            too_old = now - group.created > self._limits.max_age
            if not too_old and self._bytes <= self._limits.max_bytes:
                break
            del self._groups[group_id]
            self._bytes -= group.size
            self.evicted_groups += 1

    def objects(
        self, start: Location, end: Location | None, *, descending: bool = False
    ) -> Iterator[CachedObject]:
        """Objects from ``start`` (inclusive) to ``end`` in the FETCH encoding.

        ``end`` is the drafts' "End Location, plus 1": objects below it, except
        that object 0 means all of group ``end.group``; None means to the newest.
        Groups in ascending or descending order; objects within a group ascend.
        """
        ids = sorted(self._groups, reverse=descending)
        found = False
        for group_id in ids:
            if group_id < start.group or (end is not None and group_id > end.group):
                continue
            for obj in self._groups[group_id].ordered():
                loc = obj.location
                if loc < start or (end is not None and not before_fetch_end(loc, end)):
                    continue
                found = True
                yield obj
        if found:
            self.hits += 1
        else:
            self.misses += 1

    def _over_budget(self, extra: int) -> bool:
        return self._bytes + extra > self._limits.max_bytes

    def _note_largest(self, obj: CachedObject) -> None:
        loc = obj.location
        if self._largest is None or loc > self._largest:
            self._largest = loc

    def statistics(self) -> dict[str, int]:
        return {
            "groups": len(self._groups),
            "bytes": self._bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evicted_groups": self.evicted_groups,
            "conflicts": self.conflicts,
            "uncached": self.uncached,
        }
