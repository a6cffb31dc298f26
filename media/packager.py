"""From CMAF items to what a MoQT publisher sends: catalog updates and placed objects.

:class:`BroadcastPackager` holds one :class:`GroupAssembler` per track and the
latest init segment of each. Feed it ``(track, InitSegment | Fragment)`` (the
items of a :class:`~media.ffmpeg.Transcoder`, or of per-track splitters) and it
returns:

- :class:`CatalogUpdate` when every planned track has an init segment and the
  catalog changed (first time, or an encoder restart with new parameters);
- :class:`ObjectReady` for each fragment, placed as (group, object) with group
  ids shared by all tracks for the same media time.

A restart (new ffmpeg, encoder reconnect) starts a new media timeline at 0.
Create the successor with ``resume=old.resume_point()``: it shifts the new timeline
to start where the old one ended and keeps group ids increasing, so viewers see
one continuous, monotonic track.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ._fragment import Fragment, shift_fragment
from ._init import InitSegment
from .catalog import Catalog, CatalogTrack
from .errors import MediaError, UnsupportedMedia
from .grouping import GroupAssembler, MediaObject, group_slot

__all__ = [
    "BroadcastPackager",
    "CatalogUpdate",
    "ObjectReady",
    "ResumePoint",
    "TrackPlan",
    "build_catalog",
]


@dataclass(frozen=True, slots=True)
class TrackPlan:
    """What the catalog says about a track beyond its init segment."""

    name: str
    bitrate: int
    framerate: float | None = None
    alt_group: int | None = None
    priority: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """``timeline_offset``: where the latest track ended (seconds); ``first_group_id``:
    makes every group id of the successor greater than the ones used before."""

    timeline_offset: float
    first_group_id: int


@dataclass(frozen=True, slots=True)
class CatalogUpdate:
    catalog: Catalog


@dataclass(frozen=True, slots=True)
class ObjectReady:
    track: str
    object: MediaObject


def build_catalog(
    plans: Iterable[TrackPlan],
    inits: dict[str, InitSegment],
    *,
    namespace: str | None = None,
    generated_at: int | None = None,
    max_group_duration: int | None = None,
) -> Catalog:
    """A CMSF catalog for planned tracks whose init segments are known (KeyError if one is missing)."""
    tracks = [
        CatalogTrack.from_init(
            p.name,
            inits[p.name],
            bitrate=p.bitrate,
            framerate=p.framerate,
            namespace=namespace,
            alt_group=p.alt_group,
            priority=p.priority,
            label=p.label,
            max_group_duration=max_group_duration,
        )
        for p in plans
    ]
    return Catalog.build(tracks, generated_at=generated_at)


class BroadcastPackager:
    """Catalog + group/object placement for the tracks of one broadcast."""

    def __init__(
        self,
        tracks: Iterable[TrackPlan],
        *,
        namespace: str | None = None,
        group_duration: float | None = 2.0,
        first_group_id: int = 0,
        timeline_offset: float = 0.0,
        resume: ResumePoint | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if resume is not None:
            first_group_id, timeline_offset = resume.first_group_id, resume.timeline_offset
        if timeline_offset < 0:
            raise ValueError("timeline_offset must be >= 0")
        self._offset = timeline_offset
        self._ends: dict[str, float] = {}
        self._plans = tuple(tracks)
        names = [p.name for p in self._plans]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"track names must be non-empty and unique: {names}")
        self._namespace = namespace
        self._group_duration = group_duration
        self._clock = clock
        self._assemblers = {
            n: GroupAssembler(first_group_id=first_group_id, group_duration=group_duration)
            for n in names
        }
        self._inits: dict[str, InitSegment] = {}
        self._catalog: Catalog | None = None
        self._first_group_id = first_group_id

    @property
    def catalog(self) -> Catalog | None:
        """The current catalog, once every track's init segment has arrived."""
        return self._catalog

    def push(self, track: str, item: InitSegment | Fragment) -> list[CatalogUpdate | ObjectReady]:
        assembler = self._assemblers.get(track)
        if assembler is None:
            raise MediaError(f"track {track!r} is not part of this broadcast")
        if isinstance(item, InitSegment):
            if len(item.tracks) != 1:
                raise UnsupportedMedia(f"track {track!r}: a CMAF init segment carries one track")
            if self._inits.get(track) == item:
                return []
            self._inits[track] = item
            return self._maybe_catalog()
        if self._offset:
            item = shift_fragment(item, round(self._offset * item.timescale))
        self._ends[track] = max(self._ends.get(track, 0.0), item.end_time / item.timescale)
        obj = assembler.push(item)
        return [] if obj is None else [ObjectReady(track, obj)]

    def end(self) -> Catalog | None:
        """The final catalog (tracks not live, ``isComplete``), or ``None`` if none was published."""
        if self._catalog is None:
            return None
        self._catalog = self._catalog.ended(generated_at=self._now_ms())
        return self._catalog

    def next_group_id(self) -> int:
        """A first group id for a successor packager that is above every id used here."""
        used = [
            a.current_group_id for a in self._assemblers.values() if a.current_group_id is not None
        ]
        return max(used) + 1 if used else self._first_group_id

    def resume_point(self) -> ResumePoint:
        """Where a successor packager (after a restart) continues the timeline and the ids."""
        offset = max(self._ends.values(), default=self._offset)
        following = self.next_group_id()
        if self._group_duration is None:
            return ResumePoint(offset, following)
        slot = group_slot(offset, self._group_duration)
        return ResumePoint(offset, max(0, following - slot))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _maybe_catalog(self) -> list[CatalogUpdate | ObjectReady]:
        if any(p.name not in self._inits for p in self._plans):
            return []
        max_group = round(self._group_duration * 1000) if self._group_duration else None
        self._catalog = build_catalog(
            self._plans,
            self._inits,
            namespace=self._namespace,
            generated_at=self._now_ms(),
            max_group_duration=max_group,
        )
        return [CatalogUpdate(self._catalog)]
