"""Fetch streams: FETCH_HEADER and the objects that follow it.

``FETCH_HEADER { Type (i) = 0x05, Request ID (i) }`` in both drafts.

Draft-14 objects carry every field: ``Group ID (i), Subgroup ID (i), Object ID
(i), Publisher Priority (8), Extension Headers Length (i) [+ headers], Object
Payload Length (i), [Object Status (i)], Object Payload``; a Datagram-preference
object has Subgroup ID = Object ID.

Draft-16 objects start with ``Serialization Flags (i)``: bits 0-1 the subgroup
mode (0: Subgroup ID 0, 1: the prior object's, 2: prior + 1, 3: field present),
0x04 Object ID present (else prior + 1), 0x08 Group ID present (else prior's),
0x10 Priority present (else prior's), 0x20 Extensions present, 0x40 Datagram
preference (no Subgroup ID; bits 0-1 ignored). 0x8C / 0x10C are End of
Non-Existent / Unknown Range markers followed by Group ID and Object ID only;
any other value >= 0x80 is a PROTOCOL_VIOLATION, as is a reference to a prior
object that does not exist. Draft-16 fetch objects have no Object Status.

What "prior" means right after an End of Range marker is not spelled out by
draft-16; we follow the clarification of later drafts: the marker's location
is the prior Group/Object ID, while Subgroup ID and Priority stay those of the
last real object. Our encoder never references the prior after a marker.
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
from ._data_subgroup import check_object_fields
from ._data_types import (
    DEFAULT_MAX_EXTENSIONS_SIZE,
    DEFAULT_MAX_OBJECT_SIZE,
    FETCH_HEADER_TYPE,
    FetchEndOfRange,
    FetchHeader,
    Object,
    valid_statuses,
)
from ._extensions import Extensions, check_version, encode_extensions
from .errors import LocalError, ProtocolViolation
from .types import ObjectStatus
from .version import DRAFT_16

__all__ = [
    "FETCH_END_OF_NON_EXISTENT_RANGE",
    "FETCH_END_OF_UNKNOWN_RANGE",
    "FetchStreamParser",
    "FetchWriter",
    "encode_fetch_end_of_range",
    "encode_fetch_header",
    "encode_fetch_object",
]

FETCH_END_OF_NON_EXISTENT_RANGE = 0x8C
FETCH_END_OF_UNKNOWN_RANGE = 0x10C

_SG_MASK = 0x03
_SG_ZERO = 0x00
_SG_PRIOR = 0x01
_SG_NEXT = 0x02
_SG_PRESENT = 0x03
_F_OBJECT = 0x04
_F_GROUP = 0x08
_F_PRIORITY = 0x10
_F_EXTENSIONS = 0x20
_F_DATAGRAM = 0x40

_NORMAL = ObjectStatus.NORMAL


def encode_fetch_header(request_id: int, version: int) -> bytes:
    check_version(version)
    if not 0 <= request_id <= MAX_ID:
        raise LocalError(f"request id {request_id} is not a varint")
    return encode_varint(FETCH_HEADER_TYPE) + encode_varint(request_id)


def _check_object(obj: Object) -> int:
    for name, value in (("group id", obj.group_id), ("object id", obj.object_id)):
        if not 0 <= value <= MAX_ID:
            raise LocalError(f"{name} {value} is not a varint")
    if obj.subgroup_id is not None and not 0 <= obj.subgroup_id <= MAX_ID:
        raise LocalError(f"subgroup id {obj.subgroup_id} is not a varint")
    priority = obj.publisher_priority
    if priority is None or not 0 <= priority <= 0xFF:
        raise LocalError(f"a fetch object needs a publisher priority 0..255, not {priority}")
    return priority


def encode_fetch_object(obj: Object, version: int, *, prior: Object | None = None) -> bytes:
    """One object of a fetch stream, payload included.

    Draft-16 only: ``prior`` is the object written just before on this stream;
    fields equal to (or following from) it are omitted. Pass None for the first
    object *and* for the first object after an End of Range marker (or use
    :class:`FetchWriter`, which does this). Draft-16 fetch objects cannot carry
    a non-NORMAL status (use End of Range markers for gaps).
    """
    check_version(version)
    priority = _check_object(obj)
    payload = obj.payload
    if version != DRAFT_16:
        check_object_fields(version, len(payload), obj.extensions, obj.status)
        subgroup = obj.object_id if obj.subgroup_id is None else obj.subgroup_id
        out = (
            encode_varint(obj.group_id)
            + encode_varint(subgroup)
            + encode_varint(obj.object_id)
            + bytes((priority,))
        )
        if obj.extensions:
            block = encode_extensions(obj.extensions, version)
            out += encode_varint(len(block)) + block
        else:
            out += b"\x00"
        if payload:
            return out + encode_varint(len(payload)) + payload
        return out + b"\x00" + encode_varint(obj.status)

    if obj.status != _NORMAL:
        raise LocalError(
            "draft-16 fetch objects carry no Object Status; use an End of Range marker"
        )
    flags = 0
    fields = b""
    if prior is None or prior.group_id != obj.group_id:
        flags |= _F_GROUP
        fields += encode_varint(obj.group_id)
    sub = obj.subgroup_id
    prior_sub = None if prior is None else prior.subgroup_id
    if sub is None:
        flags |= _F_DATAGRAM
    elif sub == 0:
        pass
    elif prior_sub is not None and sub == prior_sub:
        flags |= _SG_PRIOR
    elif prior_sub is not None and sub == prior_sub + 1:
        flags |= _SG_NEXT
    else:
        flags |= _SG_PRESENT
        fields += encode_varint(sub)
    if prior is None or obj.object_id != prior.object_id + 1:
        flags |= _F_OBJECT
        fields += encode_varint(obj.object_id)
    if prior is None or prior.publisher_priority != priority:
        flags |= _F_PRIORITY
        fields += bytes((priority,))
    if obj.extensions:
        flags |= _F_EXTENSIONS
        block = encode_extensions(obj.extensions, version)
        fields += encode_varint(len(block)) + block
    return encode_varint(flags) + fields + encode_varint(len(payload)) + payload


def encode_fetch_end_of_range(marker: FetchEndOfRange, version: int) -> bytes:
    """A draft-16 End of Non-Existent (0x8C) / Unknown (0x10C) Range marker."""
    check_version(version)
    if version != DRAFT_16:
        raise LocalError("End of Range markers exist only in draft-16 fetch streams")
    for value in (marker.group_id, marker.object_id):
        if not 0 <= value <= MAX_ID:
            raise LocalError(f"location field {value} is not a varint")
    flags = FETCH_END_OF_UNKNOWN_RANGE if marker.unknown else FETCH_END_OF_NON_EXISTENT_RANGE
    return encode_varint(flags) + encode_varint(marker.group_id) + encode_varint(marker.object_id)


class FetchWriter:
    """Encodes one fetch stream: the header, objects and (draft-16) End of Range markers."""

    __slots__ = ("_prior", "request_id", "version")

    def __init__(self, request_id: int, version: int) -> None:
        encode_fetch_header(request_id, version)  # validate early
        self.request_id = request_id
        self.version = version
        self._prior: Object | None = None

    def header_bytes(self) -> bytes:
        return encode_fetch_header(self.request_id, self.version)

    def write_object(self, obj: Object) -> bytes:
        data = encode_fetch_object(obj, self.version, prior=self._prior)
        self._prior = obj
        return data

    def end_of_range(self, group_id: int, object_id: int, *, unknown: bool = False) -> bytes:
        data = encode_fetch_end_of_range(
            FetchEndOfRange(group_id, object_id, unknown), self.version
        )
        self._prior = None  # never reference the prior across a marker
        return data


# (group, subgroup, object, priority, extensions, payload length, status, marker)
# marker: 0 = an object, 1 = End of Non-Existent Range, 2 = End of Unknown Range
_Head = tuple[int, int | None, int, int | None, Extensions, int, ObjectStatus, int]
_Event = FetchHeader | Object | FetchEndOfRange


class FetchStreamParser(StreamParser[_Event, _Head]):
    """Incremental parser of one fetch stream, fed from its first byte.

    ``feed()`` returns the :class:`FetchHeader` first, then each complete
    :class:`Object` (and, in draft-16, :class:`FetchEndOfRange` markers).
    ``finish()`` at FIN rejects a truncated object. Same limits as
    :class:`SubgroupStreamParser`.
    """

    __slots__ = (
        "_head",
        "_max_extensions_size",
        "_max_object_size",
        "_prior_group",
        "_prior_object",
        "_prior_priority",
        "_prior_sub",
        "_statuses",
        "header",
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
        self.header: FetchHeader | None = None
        self._head: _Head = (0, None, 0, None, (), 0, _NORMAL, 0)
        self._prior_group: int | None = None  # last object's or marker's location
        self._prior_object = 0
        self._prior_sub: int | None = None  # last real object's subgroup (None: none/datagram)
        self._prior_priority: int | None = None  # last real object's priority

    def _parse_header(self, data: Data, pos: int, end: int) -> tuple[_Event, int]:
        stream_type, pos = read_varint(data, pos, end)
        if stream_type != FETCH_HEADER_TYPE:
            raise ProtocolViolation(f"invalid FETCH_HEADER type {stream_type:#x}")
        request_id, pos = read_varint(data, pos, end)
        self.header = FetchHeader(request_id)
        return self.header, pos

    def _payload(self, data: Data, pos: int, end: int) -> tuple[int, int]:
        length, pos = read_varint(data, pos, end)
        if length > self._max_object_size:
            raise ProtocolViolation(
                f"object payload length {length} exceeds max_object_size {self._max_object_size}"
            )
        return length, pos

    def _parse_head(self, data: Data, pos: int, end: int) -> tuple[_Head, int]:
        if self.version == DRAFT_16:
            return self._parse_head_16(data, pos, end)
        group, pos = read_varint(data, pos, end)
        sub, pos = read_varint(data, pos, end)
        object_id, pos = read_varint(data, pos, end)
        priority, pos = read_uint8(data, pos, end)
        exts, pos = read_extension_block(data, pos, end, self.version, self._max_extensions_size)
        length, pos = self._payload(data, pos, end)
        status = _NORMAL
        if not length:
            status, pos = read_status(data, pos, end, self._statuses)
            if exts and status is ObjectStatus.DOES_NOT_EXIST:
                raise ProtocolViolation("extension headers on an object with status DOES_NOT_EXIST")
        return (group, sub, object_id, priority, exts, length, status, 0), pos

    def _parse_head_16(self, data: Data, pos: int, end: int) -> tuple[_Head, int]:
        flags, pos = read_varint(data, pos, end)
        if flags >= 0x80:
            if flags == FETCH_END_OF_NON_EXISTENT_RANGE or flags == FETCH_END_OF_UNKNOWN_RANGE:
                group, pos = read_varint(data, pos, end)
                object_id, pos = read_varint(data, pos, end)
                marker = 1 if flags == FETCH_END_OF_NON_EXISTENT_RANGE else 2
                return (group, None, object_id, None, (), 0, _NORMAL, marker), pos
            raise ProtocolViolation(f"invalid fetch serialization flags {flags:#x}")
        if flags & _F_GROUP:
            group, pos = read_varint(data, pos, end)
        elif self._prior_group is None:
            raise ProtocolViolation("first fetch object references the prior Group ID")
        else:
            group = self._prior_group
        sub: int | None
        if flags & _F_DATAGRAM:
            sub = None
        else:
            mode = flags & _SG_MASK
            if mode == _SG_ZERO:
                sub = 0
            elif mode == _SG_PRESENT:
                sub, pos = read_varint(data, pos, end)
            elif self._prior_sub is None:
                raise ProtocolViolation(
                    "fetch object references the Subgroup ID of a prior object that has none"
                )
            elif mode == _SG_PRIOR:
                sub = self._prior_sub
            else:
                sub = self._prior_sub + 1
                if sub > MAX_ID:
                    raise ProtocolViolation("subgroup id overflows a varint")
        if flags & _F_OBJECT:
            object_id, pos = read_varint(data, pos, end)
        elif self._prior_group is None:
            raise ProtocolViolation("first fetch object references the prior Object ID")
        else:
            object_id = self._prior_object + 1
            if object_id > MAX_ID:
                raise ProtocolViolation("object id overflows a varint")
        priority: int | None
        if flags & _F_PRIORITY:
            priority, pos = read_uint8(data, pos, end)
        elif self._prior_priority is None:
            raise ProtocolViolation("first fetch object references the prior Publisher Priority")
        else:
            priority = self._prior_priority
        exts: Extensions = ()
        if flags & _F_EXTENSIONS:
            exts, pos = read_extension_block(
                data, pos, end, self.version, self._max_extensions_size
            )
        length, pos = self._payload(data, pos, end)
        return (group, sub, object_id, priority, exts, length, _NORMAL, 0), pos

    def _payload_length(self, head: _Head) -> int:
        return head[5]

    def _begin_object(self, head: _Head, payload_length: int) -> None:
        self._head = head
        self._prior_group = head[0]
        self._prior_object = head[2]
        if not head[7]:
            self._prior_sub = head[1]
            self._prior_priority = head[3]

    def _end_object(self, payload: bytes) -> _Event:
        group, sub, object_id, priority, exts, _, status, marker = self._head
        if marker:
            return FetchEndOfRange(group, object_id, marker == 2)
        return Object(group, sub, object_id, priority, payload, exts, status)
