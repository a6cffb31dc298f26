"""AMF0 (Action Message Format 0) encoding and decoding, as used by RTMP commands and metadata.

Python mapping:

=================  =============================================
AMF0 type          Python value
=================  =============================================
number (0x00)      ``float`` (``int`` accepted when encoding)
boolean (0x01)     ``bool``
string (0x02)      ``str`` (up to 65535 UTF-8 bytes)
long string (0x0C) ``str`` (encoder picks it for longer strings)
object (0x03)      ``dict[str, value]``
null (0x05)        ``None``
undefined (0x06)   :data:`UNDEFINED`
reference (0x07)   the referenced object itself (decode only)
ECMA array (0x08)  :class:`EcmaArray` (a ``dict`` subclass)
strict array (0x0A) ``list``
date (0x0B)        :class:`AmfDate`
typed object (0x10) :class:`TypedObject`
=================  =============================================

A message payload is complete when it is decoded (RTMP reassembles messages
first), so short input is a malformed message: every decoding failure raises
:class:`~origin.rtmp.errors.AmfDecodeError` and nothing else.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from origin.rtmp.errors import AmfDecodeError, AmfEncodeError

__all__ = [
    "MAX_DEPTH",
    "UNDEFINED",
    "AmfDate",
    "AmfValue",
    "EcmaArray",
    "Marker",
    "TypedObject",
    "Undefined",
    "decode",
    "decode_all",
    "encode",
    "encode_all",
]

#: Deepest nesting of objects/arrays accepted when decoding (guards the stack).
MAX_DEPTH: Final = 64


class Marker(enum.IntEnum):
    NUMBER = 0x00
    BOOLEAN = 0x01
    STRING = 0x02
    OBJECT = 0x03
    MOVIECLIP = 0x04
    NULL = 0x05
    UNDEFINED = 0x06
    REFERENCE = 0x07
    ECMA_ARRAY = 0x08
    OBJECT_END = 0x09
    STRICT_ARRAY = 0x0A
    DATE = 0x0B
    LONG_STRING = 0x0C
    UNSUPPORTED = 0x0D
    RECORDSET = 0x0E
    XML_DOCUMENT = 0x0F
    TYPED_OBJECT = 0x10
    AVMPLUS = 0x11


class Undefined:
    """The AMF0 ``undefined`` value (distinct from ``null``/``None``); use :data:`UNDEFINED`."""

    __slots__ = ()
    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = Undefined()


class EcmaArray(dict[str, "AmfValue"]):
    """An AMF0 ECMA (associative) array: a ``dict`` that encodes with marker 0x08."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AmfDate:
    """AMF0 date: milliseconds since the epoch (UTC) and the (ignored by spec) time zone."""

    milliseconds: float
    timezone: int = 0


@dataclass(frozen=True, slots=True)
class TypedObject:
    """AMF0 typed object: a class name and its properties."""

    class_name: str
    properties: dict[str, AmfValue] = field(default_factory=dict)


type AmfValue = (
    float
    | int
    | bool
    | str
    | Undefined
    | dict[str, AmfValue]
    | EcmaArray
    | list[AmfValue]
    | AmfDate
    | TypedObject
    | None
)

_OBJECT_END: Final = b"\x00\x00\x09"
_F64: Final = struct.Struct(">d")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_S16: Final = struct.Struct(">h")


# ---------------------------------------------------------------------------- encoding


def encode(value: AmfValue) -> bytes:
    """Encode one value."""
    out = bytearray()
    _encode_into(out, value, 0)
    return bytes(out)


def encode_all(values: Sequence[AmfValue]) -> bytes:
    """Encode several values back to back (an RTMP command or data message payload)."""
    out = bytearray()
    for value in values:
        _encode_into(out, value, 0)
    return bytes(out)


def _encode_key(out: bytearray, key: object) -> None:
    if not isinstance(key, str):
        raise AmfEncodeError(f"AMF0 object keys must be str, not {type(key).__name__}")
    raw = key.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise AmfEncodeError("AMF0 object key longer than 65535 bytes")
    out += _U16.pack(len(raw))
    out += raw


def _encode_props(out: bytearray, props: Mapping[str, AmfValue], depth: int) -> None:
    for key, item in props.items():
        if key == "":
            raise AmfEncodeError("AMF0 object keys must not be empty (that marks the object end)")
        _encode_key(out, key)
        _encode_into(out, item, depth + 1)
    out += _OBJECT_END


def _encode_into(out: bytearray, value: AmfValue, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise AmfEncodeError(f"AMF0 value nested deeper than {MAX_DEPTH}")
    if value is None:
        out.append(Marker.NULL)
    elif isinstance(value, Undefined):
        out.append(Marker.UNDEFINED)
    elif isinstance(value, bool):
        out.append(Marker.BOOLEAN)
        out.append(1 if value else 0)
    elif isinstance(value, int | float):
        out.append(Marker.NUMBER)
        out += _F64.pack(float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) <= 0xFFFF:
            out.append(Marker.STRING)
            out += _U16.pack(len(raw))
        elif len(raw) <= 0xFFFFFFFF:
            out.append(Marker.LONG_STRING)
            out += _U32.pack(len(raw))
        else:
            raise AmfEncodeError("string longer than 4 GiB")
        out += raw
    elif isinstance(value, EcmaArray):
        out.append(Marker.ECMA_ARRAY)
        out += _U32.pack(len(value))
        _encode_props(out, value, depth)
    elif isinstance(value, dict):
        out.append(Marker.OBJECT)
        _encode_props(out, value, depth)
    elif isinstance(value, list):
        out.append(Marker.STRICT_ARRAY)
        out += _U32.pack(len(value))
        for item in value:
            _encode_into(out, item, depth + 1)
    elif isinstance(value, AmfDate):
        out.append(Marker.DATE)
        out += _F64.pack(value.milliseconds)
        out += _S16.pack(value.timezone)
    elif isinstance(value, TypedObject):
        out.append(Marker.TYPED_OBJECT)
        _encode_key(out, value.class_name)
        _encode_props(out, value.properties, depth)
    else:
        raise AmfEncodeError(f"cannot encode {type(value).__name__} as AMF0")


# ---------------------------------------------------------------------------- decoding


class _Decoder:
    __slots__ = ("_data", "_pos", "_refs")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._refs: list[AmfValue] = []

    @property
    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    @property
    def offset(self) -> int:
        return self._pos

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise AmfDecodeError(
                f"truncated AMF0 at offset {self._pos}: need {n} bytes, "
                f"have {len(self._data) - self._pos}"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def _utf8(self, n: int) -> str:
        start = self._pos
        raw = self._take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AmfDecodeError(f"invalid UTF-8 in AMF0 string at offset {start}") from exc

    def _short_string(self) -> str:
        (n,) = _U16.unpack(self._take(2))
        return self._utf8(n)

    def _props(self, target: dict[str, AmfValue], depth: int) -> None:
        while True:
            key = self._short_string()
            if key == "":
                marker = self._take(1)[0]
                if marker != Marker.OBJECT_END:
                    raise AmfDecodeError(
                        f"empty AMF0 property name not followed by object end (0x{marker:02x})"
                    )
                return
            target[key] = self.value(depth + 1)

    def value(self, depth: int = 0) -> AmfValue:
        if depth > MAX_DEPTH:
            raise AmfDecodeError(f"AMF0 value nested deeper than {MAX_DEPTH}")
        start = self._pos
        marker = self._take(1)[0]
        if marker == Marker.NUMBER:
            (number,) = _F64.unpack(self._take(8))
            return float(number)
        if marker == Marker.BOOLEAN:
            return self._take(1)[0] != 0
        if marker == Marker.STRING:
            return self._short_string()
        if marker == Marker.LONG_STRING:
            (n,) = _U32.unpack(self._take(4))
            return self._utf8(n)
        if marker == Marker.NULL:
            return None
        if marker == Marker.UNDEFINED:
            return UNDEFINED
        if marker == Marker.OBJECT:
            obj: dict[str, AmfValue] = {}
            self._refs.append(obj)
            self._props(obj, depth)
            return obj
        if marker == Marker.ECMA_ARRAY:
            self._take(4)  # count: a hint only, encoders disagree about it
            arr = EcmaArray()
            self._refs.append(arr)
            self._props(arr, depth)
            return arr
        if marker == Marker.STRICT_ARRAY:
            (count,) = _U32.unpack(self._take(4))
            if count > len(self._data) - self._pos:  # every value takes >= 1 byte
                raise AmfDecodeError(f"AMF0 strict array claims {count} items past the end")
            items: list[AmfValue] = []
            self._refs.append(items)
            for _ in range(count):
                items.append(self.value(depth + 1))
            return items
        if marker == Marker.DATE:
            (ms,) = _F64.unpack(self._take(8))
            (tz,) = _S16.unpack(self._take(2))
            if math.isnan(ms):
                raise AmfDecodeError(f"AMF0 date at offset {start} is NaN")
            return AmfDate(ms, tz)
        if marker == Marker.TYPED_OBJECT:
            name = self._short_string()
            props: dict[str, AmfValue] = {}
            typed = TypedObject(name, props)
            self._refs.append(typed)
            self._props(props, depth)
            return typed
        if marker == Marker.REFERENCE:
            (index,) = _U16.unpack(self._take(2))
            if index >= len(self._refs):
                raise AmfDecodeError(f"AMF0 reference {index} to an object not yet decoded")
            return self._refs[index]
        if marker == Marker.OBJECT_END:
            raise AmfDecodeError(f"AMF0 object end marker outside an object at offset {start}")
        if marker in (Marker.MOVIECLIP, Marker.RECORDSET):
            raise AmfDecodeError(f"reserved AMF0 marker 0x{marker:02x} at offset {start}")
        if marker in (Marker.UNSUPPORTED, Marker.XML_DOCUMENT, Marker.AVMPLUS):
            raise AmfDecodeError(f"unsupported AMF0 marker 0x{marker:02x} at offset {start}")
        raise AmfDecodeError(f"unknown AMF0 marker 0x{marker:02x} at offset {start}")


def decode(data: bytes | bytearray | memoryview) -> AmfValue:
    """Decode exactly one value; trailing bytes are an error."""
    dec = _Decoder(data)
    value = dec.value()
    if not dec.at_end:
        raise AmfDecodeError(f"{len(bytes(data)) - dec.offset} trailing bytes after AMF0 value")
    return value


def decode_all(data: bytes | bytearray | memoryview) -> list[AmfValue]:
    """Decode every value of a payload (an RTMP command or data message)."""
    dec = _Decoder(data)
    values: list[AmfValue] = []
    while not dec.at_end:
        values.append(dec.value())
    return values
