"""Control-message framing, the per-version registry and the field codecs messages share.

Every control message is ``Type (i), Length (16), Payload (..)`` in drafts 14 and 16.
:func:`encode_control` and :func:`decode_control` own that framing; each message
class owns only its payload (``encode_payload`` / ``decode_payload``).

Decoding rules (the same for every message):

* short input -> :class:`~moqt._buffer.NeedMoreData`, and nothing is consumed;
* a type the version does not define -> :class:`~moqt.errors.ProtocolViolation`;
* a payload that ends before its fields do, or has bytes left after them ->
  :class:`~moqt.errors.ProtocolViolation` (the Length is authoritative);
* a field value the draft forbids -> ``ProtocolViolation`` (or a
  :class:`~moqt.errors.SessionError` with the draft's specific close code).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, Self, TypeVar, runtime_checkable

from .._buffer import Buffer, NeedMoreData, Writer
from ..errors import LocalError, ProtocolViolation
from ..types import (
    MAX_FULL_TRACK_NAME_LENGTH,
    MAX_NAMESPACE_FIELDS,
    FilterType,
    Location,
    Namespace,
    SubscriptionFilter,
    TrackName,
)
from ..version import DRAFT_14, DRAFT_16, SUPPORTED_VERSIONS

__all__ = [
    "MAX_CONTROL_PAYLOAD",
    "MAX_GOAWAY_URI_LENGTH",
    "MAX_REASON_PHRASE_LENGTH",
    "ControlMessage",
    "decode_control",
    "encode_control",
    "message_class",
    "message_types",
]

MAX_CONTROL_PAYLOAD = 0xFFFF  # Message Length is a 16-bit field
MAX_REASON_PHRASE_LENGTH = 1024
MAX_GOAWAY_URI_LENGTH = 8192


class ControlMessage:
    """Base of every control message class.

    Subclasses are frozen, slotted dataclasses with a class-level ``TYPE`` (the wire
    message type) and ``VERSIONS`` (the drafts that define the message with that type).
    """

    __slots__ = ()

    TYPE: ClassVar[int]
    VERSIONS: ClassVar[frozenset[int]]

    def encode_payload(self, version: int) -> bytes:
        """The message payload (without type and length) in ``version``'s layout."""
        raise NotImplementedError

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        """Read the payload fields from ``buf`` (bounded to the payload)."""
        raise NotImplementedError


_REGISTRY: dict[int, dict[int, type[ControlMessage]]] = {v: {} for v in SUPPORTED_VERSIONS}

_M = TypeVar("_M", bound=type[ControlMessage])


def register(*versions: int) -> Callable[[_M], _M]:
    """Class decorator: record ``cls.TYPE`` as this class in each of ``versions``."""

    def deco(cls: _M) -> _M:
        cls.VERSIONS = frozenset(versions)
        for version in versions:
            table = _REGISTRY[version]
            if cls.TYPE in table:
                raise RuntimeError(f"message type {cls.TYPE:#x} registered twice for {version:#x}")
            table[cls.TYPE] = cls
        return cls

    return deco


def _check_version(version: int) -> None:
    if version not in _REGISTRY:
        raise LocalError(f"unsupported MoQT version {version:#x}")


def message_class(message_type: int, version: int) -> type[ControlMessage] | None:
    """The class that decodes ``message_type`` in ``version``, or None if undefined there."""
    _check_version(version)
    return _REGISTRY[version].get(message_type)


def message_types(version: int) -> dict[int, type[ControlMessage]]:
    """A copy of ``{type: class}`` for ``version``."""
    _check_version(version)
    return dict(_REGISTRY[version])


def encode_control(msg: ControlMessage, version: int) -> bytes:
    """``Type (i), Length (16), Payload`` for ``msg`` in ``version``.

    Raises LocalError when the message does not exist in ``version`` or its payload
    does not fit the 16-bit length.
    """
    _check_version(version)
    if version not in type(msg).VERSIONS:
        raise LocalError(f"{type(msg).__name__} does not exist in version {version:#x}")
    payload = msg.encode_payload(version)
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise LocalError(
            f"{type(msg).__name__} payload is {len(payload)} bytes (max {MAX_CONTROL_PAYLOAD})"
        )
    return Writer().push_varint(msg.TYPE).push_uint16(len(payload)).push_bytes(payload).data


def _peek_header(buf: Buffer) -> tuple[int, int, int]:
    """(type, payload length, header size) without consuming ``buf``; NeedMoreData if short."""
    # Buffer has no rewind, so read the header from a second cursor over the same bytes.
    probe = Buffer(buf._data, buf.position, buf.position + buf.remaining)
    message_type = probe.pull_varint()
    length = probe.pull_uint16()
    return message_type, length, probe.position - buf.position


@runtime_checkable
class _ParameterSet(Protocol):
    def unknown_types(self, version: int) -> frozenset[int]: ...


def decode_control(buf: Buffer, version: int, *, strict_parameters: bool = True) -> ControlMessage:
    """Decode one control message from ``buf``, advancing it past the message.

    NeedMoreData (``buf`` untouched) when the message is not complete yet; bytes after
    the message stay in ``buf``. ProtocolViolation (or another PeerError) when the
    message is malformed or its type is not defined in ``version``.

    ``strict_parameters``: draft-16 says an unknown *message* parameter closes the
    session (PROTOCOL_VIOLATION). aiomoqt 0.13.3 sends draft-14's MAX_CACHE_DURATION
    (0x04) in draft-16 SUBSCRIBEs (its join example), so a peer that must interoperate
    with it passes False: unknown parameters are then kept in ``parameters`` and
    ignored. Setup parameters are never strict (the drafts say to ignore unknown ones),
    and draft-14 ignores unknown message parameters either way.
    """
    _check_version(version)
    message_type, length, header = _peek_header(buf)
    cls = _REGISTRY[version].get(message_type)
    if cls is None:
        raise ProtocolViolation(
            f"unknown control message type {message_type:#x} for version {version:#x}"
        )
    if buf.remaining < header + length:
        raise NeedMoreData
    buf.pull_bytes(header)
    payload = buf.sub_buffer(length)
    try:
        msg = cls.decode_payload(payload, version)
    except NeedMoreData:
        raise ProtocolViolation(
            f"{cls.__name__}: fields run past the message length ({length})"
        ) from None
    if not payload.eof():
        raise ProtocolViolation(f"{cls.__name__}: {payload.remaining} bytes after the last field")
    if strict_parameters and version == DRAFT_16:
        params = getattr(msg, "parameters", None)
        if isinstance(params, _ParameterSet):
            unknown = params.unknown_types(version)
            if unknown:
                raise ProtocolViolation(
                    f"{cls.__name__}: unknown message parameter {min(unknown):#x}"
                )
    return msg


# --- field codecs shared by the message modules ---------------------------------------


def is_draft16(version: int) -> bool:
    """True for draft-16 layouts, False for draft-14; LocalError for anything else."""
    if version == DRAFT_16:
        return True
    if version == DRAFT_14:
        return False
    raise LocalError(f"unsupported MoQT version {version:#x}")


def push_namespace(w: Writer, namespace: Namespace, *, allow_empty: bool = False) -> None:
    low = 0 if allow_empty else 1
    if not low <= len(namespace) <= MAX_NAMESPACE_FIELDS:
        raise LocalError(f"a namespace has {low}..{MAX_NAMESPACE_FIELDS} fields")
    w.push_varint(len(namespace))
    for field in namespace:
        if not isinstance(field, bytes) or not field:
            raise LocalError("a namespace field is non-empty bytes")
        w.push_length_prefixed(field)


def pull_namespace(buf: Buffer, version: int, *, allow_empty: bool = False) -> Namespace:
    """Track Namespace: 1..32 (0..32 for a prefix/suffix) fields, at most 4096 bytes."""
    count = buf.pull_varint()
    low = 0 if allow_empty else 1
    if not low <= count <= MAX_NAMESPACE_FIELDS:
        raise ProtocolViolation(f"namespace with {count} fields ({low}..{MAX_NAMESPACE_FIELDS})")
    fields: list[bytes] = []
    total = 0
    for _ in range(count):
        size = buf.pull_varint()
        total += size
        if total > MAX_FULL_TRACK_NAME_LENGTH:
            raise ProtocolViolation(f"namespace longer than {MAX_FULL_TRACK_NAME_LENGTH} bytes")
        if size == 0:
            # Draft-16's rule; draft-14 is silent, and moqt.types forbids empty fields.
            raise ProtocolViolation("empty namespace field")
        fields.append(buf.pull_bytes(size))
    return tuple(fields)


def push_track_name(w: Writer, namespace: Namespace, name: TrackName) -> None:
    push_namespace(w, namespace)
    if sum(len(f) for f in namespace) + len(name) > MAX_FULL_TRACK_NAME_LENGTH:
        raise LocalError(f"full track name longer than {MAX_FULL_TRACK_NAME_LENGTH} bytes")
    w.push_length_prefixed(name)


def pull_track_name(buf: Buffer, version: int) -> tuple[Namespace, TrackName]:
    """Track Namespace then Track Name; the full name is at most 4096 bytes."""
    namespace = pull_namespace(buf, version)
    size = buf.pull_varint()
    if sum(len(f) for f in namespace) + size > MAX_FULL_TRACK_NAME_LENGTH:
        raise ProtocolViolation(f"full track name longer than {MAX_FULL_TRACK_NAME_LENGTH} bytes")
    return namespace, buf.pull_bytes(size)


def push_reason(w: Writer, reason: str) -> None:
    raw = reason.encode()
    if len(raw) > MAX_REASON_PHRASE_LENGTH:
        raise LocalError(f"reason phrase longer than {MAX_REASON_PHRASE_LENGTH} bytes")
    w.push_length_prefixed(raw)


def pull_reason(buf: Buffer) -> str:
    """Reason Phrase: at most 1024 bytes of UTF-8."""
    size = buf.pull_varint()
    if size > MAX_REASON_PHRASE_LENGTH:
        raise ProtocolViolation(f"reason phrase of {size} bytes (max {MAX_REASON_PHRASE_LENGTH})")
    return decode_utf8(buf.pull_bytes(size), "reason phrase")


def decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ProtocolViolation(f"{what} is not UTF-8") from None


def push_location(w: Writer, loc: Location) -> None:
    w.push_varint(loc.group).push_varint(loc.object)


def pull_location(buf: Buffer) -> Location:
    group = buf.pull_varint()
    return Location(group, buf.pull_varint())


def push_flag(w: Writer, value: bool) -> None:
    w.push_uint8(1 if value else 0)


def pull_flag(buf: Buffer, what: str) -> bool:
    """An 8-bit field that must be 0 or 1."""
    value = buf.pull_uint8()
    if value > 1:
        raise ProtocolViolation(f"{what} is {value} (0 or 1)")
    return value == 1


def push_filter(w: Writer, flt: SubscriptionFilter) -> None:
    """Filter Type (i), [Start Location], [End Group (i)]."""
    w.push_varint(flt.type)
    if flt.start is not None:
        push_location(w, flt.start)
    if flt.end_group is not None:
        w.push_varint(flt.end_group)


def pull_filter(buf: Buffer) -> SubscriptionFilter:
    raw = buf.pull_varint()
    try:
        ftype = FilterType(raw)
    except ValueError:
        raise ProtocolViolation(f"unknown filter type {raw:#x}") from None
    start = (
        pull_location(buf)
        if ftype in (FilterType.ABSOLUTE_START, FilterType.ABSOLUTE_RANGE)
        else None
    )
    end_group = buf.pull_varint() if ftype is FilterType.ABSOLUTE_RANGE else None
    return SubscriptionFilter.checked(ftype, start, end_group)


def encode_filter(flt: SubscriptionFilter) -> bytes:
    w = Writer()
    push_filter(w, flt)
    return w.data
