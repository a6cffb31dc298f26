"""Object extension headers: Key-Value-Pairs as both drafts serialize them.

A Key-Value-Pair is ``Type (i), [Length (i)], Value``: an even Type carries one
varint, an odd Type a length-prefixed byte string of at most 65535 bytes. In
draft-16 the Type on the wire is a *delta* from the previous pair's Type (from
0 for the first), so a draft-16 sequence is always in ascending Type order;
draft-14 writes absolute Types in any order.

Extensions are kept as a tuple of ``(type, value)`` pairs in wire order
(duplicates and unknown types preserved, as relays must forward them). The
encoder sorts by type (stably) for draft-16, which the delta form requires;
pairs of different types carry no meaning in their relative order.

Immutable Extensions (type 0x0B) hold a nested Key-Value-Pair sequence; the
helpers here decode and build it. A malformed nested sequence or a gap
extension that breaks its rules makes the *track* malformed (relays answer
with MALFORMED_TRACK), not the session: that is :class:`MalformedTrack`.
"""

from __future__ import annotations

import enum

from ._buffer import encode_varint
from .errors import LocalError, ProtocolViolation
from .types import Extension, Extensions
from .version import DRAFT_14, DRAFT_16

__all__ = [
    "MAX_EXTENSION_VALUE_LENGTH",
    "MAX_KVP_TYPE",
    "Extension",
    "ExtensionType",
    "ExtensionValue",
    "Extensions",
    "MalformedTrack",
    "check_version",
    "decode_extensions",
    "decode_immutable_extensions",
    "encode_extensions",
    "encode_immutable_extensions",
    "extension_values",
    "prior_group_id_gap",
    "prior_object_id_gap",
]

ExtensionValue = int | bytes

MAX_EXTENSION_VALUE_LENGTH = 0xFFFF
# Draft-16: "The previous Type value plus the Delta Type MUST NOT be greater than 2^64 - 1".
MAX_KVP_TYPE = (1 << 64) - 1


class ExtensionType(enum.IntEnum):
    """Extension header types of the 'MOQ Extension Headers' registry (drafts 14 and 16)."""

    DELIVERY_TIMEOUT = 0x02  # track extension (16)
    MAX_CACHE_DURATION = 0x04  # track extension (16)
    IMMUTABLE_EXTENSIONS = 0x0B
    DEFAULT_PUBLISHER_PRIORITY = 0x0E  # track extension (16)
    DEFAULT_PUBLISHER_GROUP_ORDER = 0x22  # track extension (16)
    DYNAMIC_GROUPS = 0x30  # track extension (16)
    PRIOR_GROUP_ID_GAP = 0x3C
    PRIOR_OBJECT_ID_GAP = 0x3E


class MalformedTrack(ProtocolViolation):
    """The track is malformed (draft 'Malformed Tracks'): a relay ends it with MALFORMED_TRACK.

    A subclass of :class:`ProtocolViolation` so code that only knows peer errors
    still treats it as the peer's fault.
    """


def check_version(version: int) -> None:
    if version != DRAFT_16 and version != DRAFT_14:
        raise LocalError(f"unsupported MoQT version {version:#x}")


def encode_extensions(extensions: Extensions, version: int) -> bytes:
    """The Key-Value-Pair sequence for ``extensions`` (no length prefix)."""
    out = bytearray()
    delta = version == DRAFT_16
    items = sorted(extensions, key=_type_of) if delta else extensions
    prev = 0
    try:
        for ext_type, value in items:
            if ext_type < 0:
                raise LocalError(f"extension type {ext_type} is negative")
            if delta:
                out += encode_varint(ext_type - prev)
                prev = ext_type
            else:
                out += encode_varint(ext_type)
            if ext_type & 1:
                if not isinstance(value, bytes | bytearray | memoryview):
                    raise LocalError(
                        f"extension type {ext_type:#x} is odd: its value must be bytes"
                    )
                if len(value) > MAX_EXTENSION_VALUE_LENGTH:
                    raise LocalError(
                        f"extension {ext_type:#x} value is {len(value)} bytes"
                        f" (max {MAX_EXTENSION_VALUE_LENGTH})"
                    )
                out += encode_varint(len(value))
                out += value
            else:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise LocalError(f"extension type {ext_type:#x} is even: its value must be int")
                out += encode_varint(value)
    except ValueError as exc:  # varint out of range
        raise LocalError(f"extension does not fit a varint: {exc}") from None
    return bytes(out)


def _type_of(ext: Extension) -> int:
    return ext[0]


def decode_extensions(data: bytes | memoryview, version: int) -> Extensions:
    """Parse a complete Key-Value-Pair sequence; any malformation is a ProtocolViolation."""
    exts: list[Extension] = []
    delta = version == DRAFT_16
    pos = 0
    end = len(data)
    prev = 0
    while pos < end:
        raw_type, pos = _kvp_varint(data, pos, end)
        if delta:
            ext_type = prev + raw_type
            if ext_type > MAX_KVP_TYPE:
                raise ProtocolViolation(f"extension delta type overflows 2^64-1 ({ext_type})")
            prev = ext_type
        else:
            ext_type = raw_type
        if ext_type & 1:
            length, pos = _kvp_varint(data, pos, end)
            if length > MAX_EXTENSION_VALUE_LENGTH:
                raise ProtocolViolation(
                    f"extension {ext_type:#x} value length {length} exceeds"
                    f" {MAX_EXTENSION_VALUE_LENGTH}"
                )
            if pos + length > end:
                raise ProtocolViolation(
                    f"extension {ext_type:#x} value overruns the extension headers"
                )
            exts.append((ext_type, bytes(data[pos : pos + length])))
            pos += length
        else:
            value, pos = _kvp_varint(data, pos, end)
            exts.append((ext_type, value))
    return tuple(exts)


def _kvp_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise ProtocolViolation("extension header varint overruns the extension headers")
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > end:
        raise ProtocolViolation("extension header varint overruns the extension headers")
    value = first & 0x3F
    for i in range(pos + 1, pos + size):
        value = (value << 8) | data[i]
    return value, pos + size


def extension_values(extensions: Extensions, ext_type: int) -> list[ExtensionValue]:
    """Every value of ``ext_type`` in ``extensions``, in order."""
    return [value for t, value in extensions if t == ext_type]


def encode_immutable_extensions(extensions: Extensions, version: int) -> Extension:
    """Wrap ``extensions`` in one Immutable Extensions (0x0B) header."""
    if any(t == ExtensionType.IMMUTABLE_EXTENSIONS for t, _ in extensions):
        raise LocalError("Immutable Extensions must not contain Immutable Extensions")
    return (ExtensionType.IMMUTABLE_EXTENSIONS, encode_extensions(extensions, version))


def decode_immutable_extensions(extensions: Extensions, version: int) -> Extensions:
    """The pairs inside the object's Immutable Extensions header (``()`` when absent).

    Raises :class:`MalformedTrack` when there is more than one such header, it
    does not parse, or it nests another Immutable Extensions key.
    """
    found = extension_values(extensions, ExtensionType.IMMUTABLE_EXTENSIONS)
    if not found:
        return ()
    if len(found) > 1:
        raise MalformedTrack("more than one Immutable Extensions header")
    value = found[0]
    assert isinstance(value, bytes)  # type 0x0B is odd: decoded as bytes
    try:
        inner = decode_extensions(value, version)
    except ProtocolViolation as exc:
        raise MalformedTrack(f"Immutable Extensions do not parse: {exc.reason}") from None
    if any(t == ExtensionType.IMMUTABLE_EXTENSIONS for t, _ in inner):
        raise MalformedTrack("Immutable Extensions contain another Immutable Extensions key")
    return inner


def _single_gap(extensions: Extensions, ext_type: ExtensionType, limit: int) -> int | None:
    found = extension_values(extensions, ext_type)
    if not found:
        return None
    if len(found) > 1:
        raise MalformedTrack(f"more than one {ext_type.name} extension")
    gap = found[0]
    assert isinstance(gap, int)  # even type: decoded as a varint
    if gap > limit:
        raise MalformedTrack(f"{ext_type.name} {gap} is larger than the id {limit}")
    return gap


def prior_group_id_gap(extensions: Extensions, group_id: int) -> int | None:
    """The Prior Group ID Gap (0x3C) of an object in ``group_id``, or None.

    Raises :class:`MalformedTrack` for a duplicate or a gap larger than the Group ID.
    """
    return _single_gap(extensions, ExtensionType.PRIOR_GROUP_ID_GAP, group_id)


def prior_object_id_gap(extensions: Extensions, object_id: int) -> int | None:
    """The Prior Object ID Gap (0x3E) of object ``object_id``, or None.

    Raises :class:`MalformedTrack` for a duplicate or a gap larger than the Object ID.
    """
    return _single_gap(extensions, ExtensionType.PRIOR_OBJECT_ID_GAP, object_id)
