"""Value types shared by the message codecs, the data plane and the session.

Values are the wire values of drafts 14 and 16 (they agree unless noted).
A track namespace is ``tuple[bytes, ...]`` and a track name is ``bytes``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import ProtocolViolation

__all__ = [
    "MAX_FULL_TRACK_NAME_LENGTH",
    "MAX_NAMESPACE_FIELDS",
    "AuthToken",
    "Extension",
    "Extensions",
    "FetchType",
    "FilterType",
    "GroupOrder",
    "Location",
    "Namespace",
    "ObjectStatus",
    "SubscriptionFilter",
    "TrackName",
    "full_track_name_length",
    "validate_namespace",
]

Namespace = tuple[bytes, ...]
TrackName = bytes
# An extension header (object or track): (type, value); even types carry an int,
# odd types bytes (draft-16 "Key-Value-Pair", draft-14 "Extension Headers").
Extension = tuple[int, int | bytes]
Extensions = tuple[Extension, ...]

# Draft-16 "Track Naming": a namespace has 1..32 non-empty fields (a
# SUBSCRIBE_NAMESPACE prefix may have 0) and a full track name is at most 4096 bytes.
MAX_NAMESPACE_FIELDS = 32
MAX_FULL_TRACK_NAME_LENGTH = 4096


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """``{Group, Object}``; ordered as the drafts define (group, then object)."""

    group: int
    object: int

    def next_object(self) -> Location:
        return Location(self.group, self.object + 1)

    def next_group(self) -> Location:
        return Location(self.group + 1, 0)


@dataclass(frozen=True, slots=True)
class AuthToken:
    """An authorization token after alias resolution: a Token Type and its opaque value.

    Token type 0 means "negotiated out of band" (draft-16 "AUTHORIZATION TOKEN Parameter").
    """

    token_type: int
    value: bytes


class FilterType(enum.IntEnum):
    """Subscription filter types (draft-16 section 5.1.2, draft-14 section 5.1.2)."""

    NEXT_GROUP_START = 0x1
    LARGEST_OBJECT = 0x2
    ABSOLUTE_START = 0x3
    ABSOLUTE_RANGE = 0x4


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    """A subscription filter: a type, a start location (absolute filters) and an end group (range).

    ``start`` is set exactly for ABSOLUTE_START and ABSOLUTE_RANGE; ``end_group`` exactly
    for ABSOLUTE_RANGE, and must not be smaller than ``start.group``.
    """

    type: FilterType
    start: Location | None = None
    end_group: int | None = None

    def __post_init__(self) -> None:
        needs_start = self.type in (FilterType.ABSOLUTE_START, FilterType.ABSOLUTE_RANGE)
        if needs_start != (self.start is not None):
            raise ValueError(
                f"{self.type.name} filter {'needs' if needs_start else 'takes no'} start"
            )
        needs_end = self.type is FilterType.ABSOLUTE_RANGE
        if needs_end != (self.end_group is not None):
            raise ValueError(
                f"{self.type.name} filter {'needs' if needs_end else 'takes no'} end_group"
            )
        if (
            self.start is not None
            and self.end_group is not None
            and self.end_group < self.start.group
        ):
            raise ValueError("end_group is smaller than the start group")

    @classmethod
    def next_group_start(cls) -> SubscriptionFilter:
        return cls(FilterType.NEXT_GROUP_START)

    @classmethod
    def largest_object(cls) -> SubscriptionFilter:
        return cls(FilterType.LARGEST_OBJECT)

    @classmethod
    def absolute_start(cls, start: Location) -> SubscriptionFilter:
        return cls(FilterType.ABSOLUTE_START, start)

    @classmethod
    def absolute_range(cls, start: Location, end_group: int) -> SubscriptionFilter:
        return cls(FilterType.ABSOLUTE_RANGE, start, end_group)

    @classmethod
    def checked(
        cls, type_value: int, start: Location | None, end_group: int | None
    ) -> SubscriptionFilter:
        """Build from decoded wire values; a bad combination is the peer's PROTOCOL_VIOLATION."""
        try:
            ftype = FilterType(type_value)
        except ValueError:
            raise ProtocolViolation(f"unknown filter type {type_value:#x}") from None
        try:
            return cls(ftype, start, end_group)
        except ValueError as exc:
            raise ProtocolViolation(f"invalid subscription filter: {exc}") from None


class GroupOrder(enum.IntEnum):
    """Group delivery order. ORIGINAL (0x0) means "the publisher's order" (draft-14 only
    on the wire; draft-16 expresses it by omitting the GROUP_ORDER parameter)."""

    ORIGINAL = 0x0
    ASCENDING = 0x1
    DESCENDING = 0x2


class FetchType(enum.IntEnum):
    """FETCH types (draft-16 section 9.16, draft-14 section 9.16)."""

    STANDALONE = 0x1
    RELATIVE_JOINING = 0x2
    ABSOLUTE_JOINING = 0x3


class ObjectStatus(enum.IntEnum):
    """Object status. DOES_NOT_EXIST (0x1) exists only in draft-14; draft-16 keeps
    NORMAL, END_OF_GROUP and END_OF_TRACK."""

    NORMAL = 0x0
    DOES_NOT_EXIST = 0x1
    END_OF_GROUP = 0x3
    END_OF_TRACK = 0x4


def full_track_name_length(namespace: Namespace, name: TrackName) -> int:
    return sum(len(field) for field in namespace) + len(name)


def validate_namespace(namespace: Namespace, *, allow_empty: bool = False) -> None:
    """Raise ValueError when ``namespace`` has a field count the drafts forbid."""
    if not isinstance(namespace, tuple) or not all(isinstance(f, bytes) for f in namespace):
        raise ValueError("a namespace is a tuple of bytes")
    low = 0 if allow_empty else 1
    if not low <= len(namespace) <= MAX_NAMESPACE_FIELDS:
        raise ValueError(
            f"a namespace has {low}..{MAX_NAMESPACE_FIELDS} fields, got {len(namespace)}"
        )
    if any(not field for field in namespace):
        raise ValueError("a namespace field must not be empty")
    if sum(len(field) for field in namespace) > MAX_FULL_TRACK_NAME_LENGTH:
        raise ValueError(f"a namespace is at most {MAX_FULL_TRACK_NAME_LENGTH} bytes")
