"""Data-plane value types and the stream/datagram type codes of drafts 14 and 16.

Subgroup stream types (``SUBGROUP_HEADER``), both drafts: bit 4 (0x10) is set;
bit 0 (0x01) EXTENSIONS: every object carries an Extension Headers Length;
bits 1-2 (0x06) SUBGROUP_ID_MODE: 0 = Subgroup ID is 0, 1 = it is the first
Object ID, 2 = the Subgroup ID field is present, 3 = reserved (invalid);
bit 3 (0x08) END_OF_GROUP: this subgroup holds the group's largest object.
Draft-16 adds bit 5 (0x20) DEFAULT_PRIORITY: no Publisher Priority field, the
subscription's priority applies. Draft-14 valid types: 0x10-0x15, 0x18-0x1D;
draft-16 adds 0x30-0x35, 0x38-0x3D.

``FETCH_HEADER`` is stream type 0x05 in both drafts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from ._extensions import Extensions, check_version
from .errors import LocalError, ProtocolViolation
from .types import Location, ObjectStatus
from .version import DRAFT_14, DRAFT_16

__all__ = [
    "DEFAULT_MAX_EXTENSIONS_SIZE",
    "DEFAULT_MAX_OBJECT_SIZE",
    "FETCH_HEADER_TYPE",
    "FetchEndOfRange",
    "FetchHeader",
    "Object",
    "ObjectDatagram",
    "StreamKind",
    "SubgroupHeader",
    "SubgroupIdMode",
    "classify_uni_stream",
    "is_subgroup_type",
    "valid_statuses",
]

FETCH_HEADER_TYPE = 0x05
DEFAULT_MAX_OBJECT_SIZE = 8 << 20
DEFAULT_MAX_EXTENSIONS_SIZE = 64 << 10

_SG_EXTENSIONS = 0x01
_SG_ID_MODE_MASK = 0x06
_SG_END_OF_GROUP = 0x08
_SG_BASE = 0x10
_SG_DEFAULT_PRIORITY = 0x20

_STATUSES_14 = frozenset(
    {
        ObjectStatus.NORMAL,
        ObjectStatus.DOES_NOT_EXIST,
        ObjectStatus.END_OF_GROUP,
        ObjectStatus.END_OF_TRACK,
    }
)
_STATUSES_16 = frozenset(
    {ObjectStatus.NORMAL, ObjectStatus.END_OF_GROUP, ObjectStatus.END_OF_TRACK}
)

StreamKind = Literal["subgroup", "fetch"]


class SubgroupIdMode(enum.IntEnum):
    """How a SUBGROUP_HEADER conveys the Subgroup ID (type bits 1-2)."""

    ZERO = 0  # no field; Subgroup ID is 0
    FIRST_OBJECT = 1  # no field; Subgroup ID is the first object's Object ID
    EXPLICIT = 2  # the Subgroup ID field is present


def valid_statuses(version: int) -> frozenset[ObjectStatus]:
    """The Object Status values ``version`` defines (DOES_NOT_EXIST is draft-14 only)."""
    return _STATUSES_16 if version == DRAFT_16 else _STATUSES_14


def is_subgroup_type(stream_type: int, version: int) -> bool:
    if version == DRAFT_16:
        allowed = 0x3F
    elif version == DRAFT_14:
        allowed = 0x1F
    else:
        return False
    return (
        stream_type & ~allowed == 0
        and stream_type & _SG_BASE != 0
        and (stream_type & _SG_ID_MODE_MASK) != _SG_ID_MODE_MASK
    )


def classify_uni_stream(first_varint: int, version: int) -> StreamKind:
    """What a unidirectional stream carries, from its first varint.

    Raises :class:`ProtocolViolation` for a type ``version`` does not define
    (the drafts require closing the session on an unknown stream type).
    """
    check_version(version)
    if first_varint == FETCH_HEADER_TYPE:
        return "fetch"
    if is_subgroup_type(first_varint, version):
        return "subgroup"
    raise ProtocolViolation(f"unknown unidirectional stream type {first_varint:#x}")


@dataclass(frozen=True, slots=True)
class SubgroupHeader:
    """SUBGROUP_HEADER: the first thing on a subgroup stream.

    ``subgroup_id`` is the value for ``EXPLICIT`` mode and 0 for ``ZERO`` mode.
    For ``FIRST_OBJECT`` mode it is not on the wire: a decoded header has
    ``None`` (the parser resolves it from the first object); an encoded one may
    name the intended value, which :class:`~moqt.data.SubgroupWriter` checks
    against the first object.
    ``publisher_priority`` None means DEFAULT_PRIORITY (draft-16 only): the
    objects inherit the priority of the subscription.
    """

    track_alias: int
    group_id: int
    subgroup_id: int | None = 0
    publisher_priority: int | None = 128
    extensions_present: bool = False
    end_of_group: bool = False
    subgroup_id_mode: SubgroupIdMode = SubgroupIdMode.EXPLICIT

    @classmethod
    def for_subgroup(
        cls,
        track_alias: int,
        group_id: int,
        subgroup_id: int,
        publisher_priority: int | None,
        *,
        first_object_id: int | None = None,
        extensions_present: bool = False,
        end_of_group: bool = False,
    ) -> SubgroupHeader:
        """The most compact header for a subgroup: ZERO mode for Subgroup ID 0,
        FIRST_OBJECT mode when ``subgroup_id`` equals the (known) first Object ID,
        else EXPLICIT."""
        if subgroup_id == 0:
            mode = SubgroupIdMode.ZERO
        elif first_object_id is not None and subgroup_id == first_object_id:
            mode = SubgroupIdMode.FIRST_OBJECT
        else:
            mode = SubgroupIdMode.EXPLICIT
        return cls(
            track_alias,
            group_id,
            subgroup_id,
            publisher_priority,
            extensions_present,
            end_of_group,
            mode,
        )

    def stream_type(self, version: int) -> int:
        """The wire type of this header in ``version``; LocalError if that version has none."""
        value = _SG_BASE | (int(self.subgroup_id_mode) << 1)
        if self.extensions_present:
            value |= _SG_EXTENSIONS
        if self.end_of_group:
            value |= _SG_END_OF_GROUP
        if self.publisher_priority is None:
            value |= _SG_DEFAULT_PRIORITY
        if not is_subgroup_type(value, version):
            raise LocalError(f"no SUBGROUP_HEADER type {value:#x} in version {version:#x}")
        return value


@dataclass(frozen=True, slots=True)
class FetchHeader:
    """FETCH_HEADER: the first thing on a fetch stream (same in drafts 14 and 16)."""

    request_id: int


@dataclass(frozen=True, slots=True)
class Object:
    """One MoQT object as it travels: identity, priority, extensions, status, payload.

    ``subgroup_id`` is None for an object whose forwarding preference is
    Datagram (datagrams, and draft-16 fetch objects with the datagram flag).
    ``publisher_priority`` is None when it is inherited from the subscription
    (draft-16 DEFAULT_PRIORITY subgroup headers and datagrams).
    A non-NORMAL ``status`` always has an empty ``payload``.
    """

    group_id: int
    subgroup_id: int | None
    object_id: int
    publisher_priority: int | None
    payload: bytes = b""
    extensions: Extensions = ()
    status: ObjectStatus = ObjectStatus.NORMAL

    @property
    def location(self) -> Location:
        return Location(self.group_id, self.object_id)


@dataclass(frozen=True, slots=True)
class FetchEndOfRange:
    """Draft-16 fetch stream marker: every object after the previous one up to
    and including ``(group_id, object_id)`` does not exist (``unknown`` False,
    flags 0x8C) or has an unknown status (``unknown`` True, flags 0x10C)."""

    group_id: int
    object_id: int
    unknown: bool = False

    @property
    def location(self) -> Location:
        return Location(self.group_id, self.object_id)


@dataclass(frozen=True, slots=True)
class ObjectDatagram:
    """OBJECT_DATAGRAM (both drafts; draft-14's status datagrams included).

    ``object.subgroup_id`` is None. ``end_of_group`` is the END_OF_GROUP type
    bit: no object in the group has a larger Object ID.
    """

    track_alias: int
    object: Object
    end_of_group: bool = False
