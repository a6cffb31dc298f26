"""Map CMAF fragments to MoQT groups and objects: GOP -> group, CMAF chunk -> object.

A group starts at a fragment whose first sample is a SAP (type 1 or 2) and holds
every following chunk up to the next group start (CMSF "Group Packaging").
Group ids only ever increase (MSF "Group numbering"); object ids restart at 0.

With ``group_duration`` set, group ids come from media time,
``first_group_id + floor(start / group_duration)``, so every track cut from
the same timeline (the renditions and the audio of one transcode) numbers the
same moment with the same group id, as CMSF requires of a switching set. A
keyframe that does not reach the next group boundary then continues the current
group (a group may hold several GOPs), which also makes all-keyframe audio
tracks group at the video's cadence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._fragment import Fragment

__all__ = ["AssemblerStatistics", "GroupAssembler", "MediaObject", "group_slot"]

# A keyframe this close before a boundary (as a fraction of the group duration)
# counts as on it: audio frames rarely land exactly on the boundary.
_BOUNDARY_TOLERANCE = 0.05


def group_slot(seconds: float, group_duration: float) -> int:
    """The group index, counted from 0, of a media time on a ``group_duration`` grid."""
    return math.floor(seconds / group_duration + _BOUNDARY_TOLERANCE)


@dataclass(frozen=True, slots=True)
class MediaObject:
    """One MoQT object: the payload (a whole CMAF chunk) and where it goes."""

    group_id: int
    object_id: int
    payload: bytes
    keyframe: bool
    fragment: Fragment

    @property
    def starts_group(self) -> bool:
        return self.object_id == 0


@dataclass(frozen=True, slots=True)
class AssemblerStatistics:
    groups: int
    objects: int
    dropped_before_keyframe: int
    current_group_id: int | None


class GroupAssembler:
    """Turn the fragments of one track into :class:`MediaObject` placements.

    Fragments that arrive before the first keyframe cannot start a group and are
    dropped (counted in :meth:`statistics`): a subscriber could not decode them.
    """

    def __init__(self, *, first_group_id: int = 0, group_duration: float | None = None) -> None:
        if first_group_id < 0:
            raise ValueError("first_group_id must be >= 0")
        if group_duration is not None and not group_duration > 0:
            raise ValueError("group_duration must be > 0 seconds")
        self._first_group_id = first_group_id
        self._group_duration = group_duration
        self._group_id: int | None = None
        self._next_object = 0
        self._groups = 0
        self._objects = 0
        self._dropped = 0

    @property
    def current_group_id(self) -> int | None:
        return self._group_id

    def statistics(self) -> AssemblerStatistics:
        return AssemblerStatistics(self._groups, self._objects, self._dropped, self._group_id)

    def push(self, fragment: Fragment) -> MediaObject | None:
        """Place one fragment; ``None`` when it is dropped (no keyframe seen yet)."""
        if fragment.keyframe and self._starts_group(fragment):
            self._group_id = self._new_group_id(fragment)
            self._next_object = 0
            self._groups += 1
        elif self._group_id is None:
            self._dropped += 1
            return None
        assert self._group_id is not None
        obj = MediaObject(
            self._group_id, self._next_object, fragment.data, fragment.keyframe, fragment
        )
        self._next_object += 1
        self._objects += 1
        return obj

    def _slot(self, fragment: Fragment) -> int:
        assert self._group_duration is not None
        return group_slot(fragment.start_seconds, self._group_duration)

    def _starts_group(self, fragment: Fragment) -> bool:
        if self._group_id is None or self._group_duration is None:
            return True
        return self._first_group_id + self._slot(fragment) > self._group_id

    def _new_group_id(self, fragment: Fragment) -> int:
        if self._group_duration is None:
            return self._first_group_id if self._group_id is None else self._group_id + 1
        candidate = self._first_group_id + self._slot(fragment)
        if self._group_id is not None:
            candidate = max(candidate, self._group_id + 1)
        return candidate
