"""OBJECT_DATAGRAM in drafts 14 and 16 (status datagrams included).

Draft-16 type ``0b00X0XXXX``: 0x01 EXTENSIONS (block present, length must not
be 0), 0x02 END_OF_GROUP, 0x04 ZERO_OBJECT_ID (no Object ID field, ID 0), 0x08
DEFAULT_PRIORITY (no Priority field), 0x20 STATUS (an Object Status instead of
a payload); STATUS with END_OF_GROUP (0x22, 0x23, 0x26, ...) is invalid.
Fields: ``Track Alias, Group ID, [Object ID], [Priority (8)], [Extensions],
[Object Status] | Payload (rest of the datagram)``.

Draft-14 types 0x00-0x07 carry a payload (0x01 extensions, 0x02 end of group,
0x04 no Object ID) and 0x20-0x21 a status (0x01 extensions; Object ID always
present); the Publisher Priority is always present.
"""

from __future__ import annotations

from ._buffer import encode_varint
from ._data_read import MAX_ID, Short, read_extension_block, read_status, read_uint8, read_varint
from ._data_subgroup import check_object_fields
from ._data_types import DEFAULT_MAX_EXTENSIONS_SIZE, Object, ObjectDatagram, valid_statuses
from ._extensions import Extensions, check_version, encode_extensions
from .errors import LocalError, ProtocolViolation
from .types import ObjectStatus
from .version import DRAFT_16

__all__ = ["decode_datagram", "encode_datagram", "is_datagram_type"]

_EXTENSIONS = 0x01
_END_OF_GROUP = 0x02
_ZERO_OBJECT_ID = 0x04
_DEFAULT_PRIORITY = 0x08
_STATUS = 0x20
_NORMAL = ObjectStatus.NORMAL


def is_datagram_type(datagram_type: int, version: int) -> bool:
    if version == DRAFT_16:
        return datagram_type & ~0x2F == 0 and not (
            datagram_type & _STATUS and datagram_type & _END_OF_GROUP
        )
    return datagram_type <= 0x07 or datagram_type in (0x20, 0x21)


def encode_datagram(datagram: ObjectDatagram, version: int) -> bytes:
    """The OBJECT_DATAGRAM for ``datagram``, choosing the most compact type.

    A non-NORMAL status becomes a status datagram (draft-16 STATUS bit,
    draft-14 types 0x20/0x21); ``publisher_priority`` None (inherit) needs draft-16.
    """
    check_version(version)
    obj = datagram.object
    payload = obj.payload
    status = obj.status
    check_object_fields(version, len(payload), obj.extensions, status)
    for name, value in (
        ("track alias", datagram.track_alias),
        ("group id", obj.group_id),
        ("object id", obj.object_id),
    ):
        if not 0 <= value <= MAX_ID:
            raise LocalError(f"{name} {value} is not a varint")
    priority = obj.publisher_priority
    if priority is not None and not 0 <= priority <= 0xFF:
        raise LocalError(f"publisher priority {priority} is not 0..255")
    is_status = status != _NORMAL
    if is_status and datagram.end_of_group:
        raise LocalError("a status datagram cannot also signal End of Group")
    dtype = _EXTENSIONS if obj.extensions else 0
    if datagram.end_of_group:
        dtype |= _END_OF_GROUP
    if version == DRAFT_16:
        if obj.object_id == 0:
            dtype |= _ZERO_OBJECT_ID
        if priority is None:
            dtype |= _DEFAULT_PRIORITY
        if is_status:
            dtype |= _STATUS
    else:
        if priority is None:
            raise LocalError("draft-14 datagrams always carry a publisher priority")
        if is_status:
            dtype |= _STATUS
        elif obj.object_id == 0:
            dtype |= _ZERO_OBJECT_ID
    out = encode_varint(dtype) + encode_varint(datagram.track_alias) + encode_varint(obj.group_id)
    if not dtype & _ZERO_OBJECT_ID:
        out += encode_varint(obj.object_id)
    if priority is not None:
        out += bytes((priority,))
    if obj.extensions:
        block = encode_extensions(obj.extensions, version)
        out += encode_varint(len(block)) + block
    if is_status:
        return out + encode_varint(status)
    return out + payload if payload else out


def decode_datagram(
    data: bytes | bytearray | memoryview,
    version: int,
    *,
    max_object_size: int | None = None,
    max_extensions_size: int = DEFAULT_MAX_EXTENSIONS_SIZE,
) -> ObjectDatagram:
    """Parse one whole OBJECT_DATAGRAM; anything malformed or truncated is a ProtocolViolation."""
    check_version(version)
    if not isinstance(data, bytes):
        data = bytes(data)
    end = len(data)
    try:
        dtype, pos = read_varint(data, 0, end)
        if not is_datagram_type(dtype, version):
            raise ProtocolViolation(f"invalid OBJECT_DATAGRAM type {dtype:#x}")
        track_alias, pos = read_varint(data, pos, end)
        group_id, pos = read_varint(data, pos, end)
        object_id = 0
        if not dtype & _ZERO_OBJECT_ID:
            object_id, pos = read_varint(data, pos, end)
        priority: int | None = None
        if not (version == DRAFT_16 and dtype & _DEFAULT_PRIORITY):
            priority, pos = read_uint8(data, pos, end)
        exts: Extensions = ()
        if dtype & _EXTENSIONS:
            exts, pos = read_extension_block(data, pos, end, version, max_extensions_size)
            if not exts:
                raise ProtocolViolation("OBJECT_DATAGRAM with the EXTENSIONS bit and no extensions")
        status = _NORMAL
        payload = b""
        if dtype & _STATUS:
            status, pos = read_status(data, pos, end, valid_statuses(version))
            if pos != end:
                raise ProtocolViolation("trailing bytes after the status of an OBJECT_DATAGRAM")
            if (
                exts
                and status != _NORMAL
                and (version == DRAFT_16 or status is ObjectStatus.DOES_NOT_EXIST)
            ):
                raise ProtocolViolation(f"extension headers on an object with status {status.name}")
        else:
            if max_object_size is not None and end - pos > max_object_size:
                raise ProtocolViolation(
                    f"datagram payload of {end - pos} bytes exceeds max_object_size {max_object_size}"
                )
            payload = data[pos:]
    except Short:
        raise ProtocolViolation("truncated OBJECT_DATAGRAM") from None
    return ObjectDatagram(
        track_alias,
        Object(group_id, None, object_id, priority, payload, exts, status),
        bool(dtype & _END_OF_GROUP),
    )
