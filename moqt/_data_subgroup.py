"""Subgroup streams: SUBGROUP_HEADER and the objects that follow it (drafts 14 and 16).

After the header every object is ``Object ID Delta (i), [Extensions (..)],
Object Payload Length (i), [Object Status (i)], [Object Payload (..)]`` in both
drafts: the first object's ID is the delta itself, later ones are the previous
ID + delta + 1. The Extensions block (``Length (i)`` + Key-Value-Pairs) is
present in every object exactly when the header type has the EXTENSIONS bit.
The Object Status is present exactly when the payload length is 0.
"""

from __future__ import annotations

from ._buffer import encode_varint
from ._data_read import (
    MAX_ID,
    Data,
    StreamParser,
    read_extension_block,
    read_status,
    read_uint8,
    read_varint,
)
from ._data_types import (
    DEFAULT_MAX_EXTENSIONS_SIZE,
    DEFAULT_MAX_OBJECT_SIZE,
    Object,
    SubgroupHeader,
    SubgroupIdMode,
    is_subgroup_type,
    valid_statuses,
)
from ._extensions import Extensions, check_version, encode_extensions
from .errors import LocalError, ProtocolViolation
from .types import ObjectStatus
from .version import DRAFT_16

__all__ = [
    "SubgroupStreamParser",
    "SubgroupWriter",
    "check_object_fields",
    "encode_subgroup_header",
    "encode_subgroup_object",
    "encode_subgroup_object_head",
]

_NORMAL = ObjectStatus.NORMAL
_STREAM_ENDING = frozenset({ObjectStatus.END_OF_GROUP, ObjectStatus.END_OF_TRACK})


def _check_id(name: str, value: int) -> None:
    if not 0 <= value <= MAX_ID:
        raise LocalError(f"{name} {value} is not a varint")


def check_object_fields(
    version: int, payload_length: int, extensions: Extensions, status: ObjectStatus
) -> None:
    """Raise LocalError for a status/payload/extensions combination ``version`` forbids."""
    if status not in valid_statuses(version):
        raise LocalError(f"object status {status!r} does not exist in version {version:#x}")
    if status != _NORMAL:
        if payload_length:
            raise LocalError(f"an object with status {status.name} must have an empty payload")
        if extensions and (version == DRAFT_16 or status == ObjectStatus.DOES_NOT_EXIST):
            raise LocalError(f"an object with status {status.name} cannot carry extension headers")


def encode_subgroup_header(header: SubgroupHeader, version: int) -> bytes:
    """SUBGROUP_HEADER bytes (stream type first) for ``header`` in ``version``."""
    check_version(version)
    mode = header.subgroup_id_mode
    if header.publisher_priority is None:
        if version != DRAFT_16:
            raise LocalError("draft-14 subgroup headers always carry a publisher priority")
    elif not 0 <= header.publisher_priority <= 0xFF:
        raise LocalError(f"publisher priority {header.publisher_priority} is not 0..255")
    _check_id("track alias", header.track_alias)
    _check_id("group id", header.group_id)
    out = encode_varint(header.stream_type(version))
    out += encode_varint(header.track_alias)
    out += encode_varint(header.group_id)
    if mode == SubgroupIdMode.EXPLICIT:
        if header.subgroup_id is None:
            raise LocalError("EXPLICIT subgroup id mode needs a subgroup_id")
        _check_id("subgroup id", header.subgroup_id)
        out += encode_varint(header.subgroup_id)
    elif mode == SubgroupIdMode.ZERO and header.subgroup_id not in (0, None):
        raise LocalError(f"ZERO subgroup id mode with subgroup_id {header.subgroup_id}")
    if header.publisher_priority is not None:
        out += bytes((header.publisher_priority,))
    return out


def encode_subgroup_object_head(
    object_id: int,
    payload_length: int,
    version: int,
    *,
    prev_object_id: int | None,
    extensions_present: bool,
    extensions: Extensions = (),
    status: ObjectStatus = _NORMAL,
) -> bytes:
    """The fields of one subgroup object before its payload.

    Write the payload (``payload_length`` bytes) right after; use this instead of
    :func:`encode_subgroup_object` to avoid copying a large payload.
    ``prev_object_id`` is the previous object's ID on this stream (None for the
    first); ``extensions_present`` is the header's EXTENSIONS bit.
    """
    check_version(version)
    _check_id("object id", object_id)
    check_object_fields(version, payload_length, extensions, status)
    if prev_object_id is None:
        delta = object_id
    elif object_id <= prev_object_id:
        raise LocalError(
            f"object id {object_id} after {prev_object_id}: ids must increase on a subgroup stream"
        )
    else:
        delta = object_id - prev_object_id - 1
    out = encode_varint(delta)
    if extensions_present:
        if extensions:
            block = encode_extensions(extensions, version)
            out += encode_varint(len(block)) + block
        else:
            out += b"\x00"
    elif extensions:
        raise LocalError(
            "extension headers on a subgroup stream whose header has no EXTENSIONS bit"
        )
    if payload_length:
        out += encode_varint(payload_length)
    else:
        out += b"\x00" + encode_varint(status)
    return out


def encode_subgroup_object(
    object_id: int,
    payload: bytes,
    version: int,
    *,
    prev_object_id: int | None,
    extensions_present: bool,
    extensions: Extensions = (),
    status: ObjectStatus = _NORMAL,
) -> bytes:
    """One subgroup object, payload included (see :func:`encode_subgroup_object_head`)."""
    head = encode_subgroup_object_head(
        object_id,
        len(payload),
        version,
        prev_object_id=prev_object_id,
        extensions_present=extensions_present,
        extensions=extensions,
        status=status,
    )
    return head + payload if payload else head


class SubgroupWriter:
    """Encodes one subgroup stream: the header, then objects in increasing ID order.

    Tracks the previous Object ID (for the delta), resolves FIRST_OBJECT mode
    and refuses objects after an End of Group / End of Track status.
    """

    __slots__ = ("_ended", "_header_bytes", "_prev", "header", "subgroup_id", "version")

    def __init__(self, header: SubgroupHeader, version: int) -> None:
        self._header_bytes = encode_subgroup_header(header, version)  # validates early too
        self.header = header
        self.version = version
        self._prev: int | None = None
        self._ended = False
        self.subgroup_id: int | None = (
            0 if header.subgroup_id_mode == SubgroupIdMode.ZERO else header.subgroup_id
        )

    @property
    def last_object_id(self) -> int | None:
        return self._prev

    def header_bytes(self) -> bytes:
        return self._header_bytes

    def object_head(
        self,
        object_id: int,
        payload_length: int,
        *,
        extensions: Extensions = (),
        status: ObjectStatus = _NORMAL,
    ) -> bytes:
        """The next object's head; its payload must be written right after."""
        if self._ended:
            raise LocalError("object after an End of Group/Track status on this subgroup stream")
        if self._prev is None and self.header.subgroup_id_mode == SubgroupIdMode.FIRST_OBJECT:
            if self.subgroup_id is not None and self.subgroup_id != object_id:
                raise LocalError(
                    f"FIRST_OBJECT subgroup {self.subgroup_id} must start with object {self.subgroup_id}"
                )
        head = encode_subgroup_object_head(
            object_id,
            payload_length,
            self.version,
            prev_object_id=self._prev,
            extensions_present=self.header.extensions_present,
            extensions=extensions,
            status=status,
        )
        if self._prev is None:
            self.subgroup_id = (
                object_id
                if self.header.subgroup_id_mode == SubgroupIdMode.FIRST_OBJECT
                else self.subgroup_id
            )
        self._prev = object_id
        if status in _STREAM_ENDING:
            self._ended = True
        return head

    def write_object(
        self,
        object_id: int,
        payload: bytes = b"",
        *,
        extensions: Extensions = (),
        status: ObjectStatus = _NORMAL,
    ) -> bytes:
        """The next object, payload included."""
        head = self.object_head(object_id, len(payload), extensions=extensions, status=status)
        return head + payload if payload else head


# (delta, extensions, payload length, status)
_Head = tuple[int, Extensions, int, ObjectStatus]


class SubgroupStreamParser(StreamParser[SubgroupHeader | Object, _Head]):
    """Incremental parser of one subgroup stream, fed from its first byte.

    ``feed()`` returns the :class:`SubgroupHeader` first, then each complete
    :class:`Object` (with the header's group, resolved subgroup and priority).
    ``finish()`` at FIN rejects a truncated object. Limits: a payload above
    ``max_object_size`` or an extension block above ``max_extensions_size``
    is a ProtocolViolation as soon as its length is read.
    """

    __slots__ = (
        "_ended",
        "_extensions_present",
        "_exts",
        "_max_extensions_size",
        "_max_object_size",
        "_object_id",
        "_prev",
        "_priority",
        "_status",
        "_statuses",
        "header",
        "subgroup_id",
        "version",
    )

    def __init__(
        self,
        version: int,
        *,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        max_extensions_size: int = DEFAULT_MAX_EXTENSIONS_SIZE,
    ) -> None:
        check_version(version)
        super().__init__()
        self.version = version
        self._statuses = valid_statuses(version)
        self._max_object_size = max_object_size
        self._max_extensions_size = max_extensions_size
        self.header: SubgroupHeader | None = None
        self.subgroup_id: int | None = None
        self._extensions_present = False
        self._priority: int | None = None
        self._prev: int | None = None
        self._ended = False
        self._object_id = 0
        self._exts: Extensions = ()
        self._status = _NORMAL

    @property
    def last_object_id(self) -> int | None:
        return self._prev

    def _parse_header(self, data: Data, pos: int, end: int) -> tuple[SubgroupHeader | Object, int]:
        stream_type, pos = read_varint(data, pos, end)
        if not is_subgroup_type(stream_type, self.version):
            raise ProtocolViolation(f"invalid SUBGROUP_HEADER type {stream_type:#x}")
        track_alias, pos = read_varint(data, pos, end)
        group_id, pos = read_varint(data, pos, end)
        mode = SubgroupIdMode((stream_type >> 1) & 0x3)
        subgroup_id: int | None
        if mode == SubgroupIdMode.EXPLICIT:
            subgroup_id, pos = read_varint(data, pos, end)
        else:
            subgroup_id = 0 if mode == SubgroupIdMode.ZERO else None
        priority: int | None
        if stream_type & 0x20:
            priority = None
        else:
            priority, pos = read_uint8(data, pos, end)
        header = SubgroupHeader(
            track_alias,
            group_id,
            subgroup_id,
            priority,
            bool(stream_type & 0x01),
            bool(stream_type & 0x08),
            mode,
        )
        self.header = header
        self.subgroup_id = subgroup_id
        self._extensions_present = header.extensions_present
        self._priority = priority
        return header, pos

    def _parse_head(self, data: Data, pos: int, end: int) -> tuple[_Head, int]:
        delta, pos = read_varint(data, pos, end)
        exts: Extensions
        if self._extensions_present:
            exts, pos = read_extension_block(
                data, pos, end, self.version, self._max_extensions_size
            )
        else:
            exts = ()
        length, pos = read_varint(data, pos, end)
        if length:
            if length > self._max_object_size:
                raise ProtocolViolation(
                    f"object payload length {length} exceeds max_object_size {self._max_object_size}"
                )
            return (delta, exts, length, _NORMAL), pos
        status, pos = read_status(data, pos, end, self._statuses)
        return (delta, exts, 0, status), pos

    def _payload_length(self, head: _Head) -> int:
        return head[2]

    def _begin_object(self, head: _Head, payload_length: int) -> None:
        delta, exts, _, status = head
        if self._ended:
            raise ProtocolViolation(
                "object after an End of Group/Track status on the same subgroup stream"
            )
        prev = self._prev
        if prev is None:
            object_id = delta
            if self.subgroup_id is None:
                self.subgroup_id = object_id
        else:
            object_id = prev + delta + 1
            if object_id > MAX_ID:
                raise ProtocolViolation(f"object id {object_id} overflows a varint")
        if status is not _NORMAL:
            if exts and (self.version == DRAFT_16 or status is ObjectStatus.DOES_NOT_EXIST):
                raise ProtocolViolation(f"extension headers on an object with status {status.name}")
            if status in _STREAM_ENDING:
                self._ended = True
        self._prev = object_id
        self._object_id = object_id
        self._exts = exts
        self._status = status

    def _end_object(self, payload: bytes) -> SubgroupHeader | Object:
        assert self.header is not None
        return Object(
            self.header.group_id,
            self.subgroup_id,
            self._object_id,
            self._priority,
            payload,
            self._exts,
            self._status,
        )
