"""AMF0 codec: a table of known-good encodings, round trips, and the fuzz rule."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin.rtmp import amf0
from origin.rtmp.amf0 import UNDEFINED, AmfDate, AmfValue, EcmaArray, TypedObject
from origin.rtmp.errors import AmfDecodeError, AmfEncodeError


def num(x: float) -> bytes:
    return b"\x00" + struct.pack(">d", x)


CASES: list[tuple[AmfValue, bytes]] = [
    (0.0, num(0.0)),
    (1.5, num(1.5)),
    (-3.0, num(-3.0)),
    (True, b"\x01\x01"),
    (False, b"\x01\x00"),
    ("", b"\x02\x00\x00"),
    ("connect", b"\x02\x00\x07connect"),
    ("é", b"\x02\x00\x02\xc3\xa9"),
    (None, b"\x05"),
    (UNDEFINED, b"\x06"),
    ({}, b"\x03\x00\x00\x09"),
    ({"app": "live"}, b"\x03\x00\x03app\x02\x00\x04live\x00\x00\x09"),
    (EcmaArray(), b"\x08\x00\x00\x00\x00\x00\x00\x09"),
    (
        EcmaArray({"width": 1280.0}),
        b"\x08\x00\x00\x00\x01\x00\x05width" + num(1280.0) + b"\x00\x00\x09",
    ),
    ([], b"\x0a\x00\x00\x00\x00"),
    ([1.0, "x", None], b"\x0a\x00\x00\x00\x03" + num(1.0) + b"\x02\x00\x01x\x05"),
    (
        {"a": {"b": [True]}},
        b"\x03\x00\x01a\x03\x00\x01b\x0a\x00\x00\x00\x01\x01\x01\x00\x00\x09\x00\x00\x09",
    ),
    ("x" * 70000, b"\x0c" + struct.pack(">I", 70000) + b"x" * 70000),
    (AmfDate(1.7e12, 0), b"\x0b" + struct.pack(">d", 1.7e12) + b"\x00\x00"),
    (TypedObject("Point", {"x": 1.0}), b"\x10\x00\x05Point\x00\x01x" + num(1.0) + b"\x00\x00\x09"),
]


@pytest.mark.parametrize(("value", "wire"), CASES, ids=[repr(c[0])[:30] for c in CASES])
def test_known_encodings(value: AmfValue, wire: bytes) -> None:
    assert amf0.encode(value) == wire
    decoded = amf0.decode(wire)
    assert decoded == value
    assert type(decoded) is type(value) or isinstance(value, int)
    assert amf0.decode_all(wire + wire) == [value, value]


@pytest.mark.parametrize(("value", "wire"), CASES[:17], ids=[repr(c[0])[:30] for c in CASES[:17]])
def test_every_truncation_is_a_typed_error(value: AmfValue, wire: bytes) -> None:
    for cut in range(len(wire)):
        if cut == 0:
            assert amf0.decode_all(b"") == []
            continue
        with pytest.raises(AmfDecodeError):
            amf0.decode(wire[:cut])


def test_trailing_bytes_after_a_single_value() -> None:
    with pytest.raises(AmfDecodeError, match="trailing"):
        amf0.decode(b"\x05\x05")


def test_ints_encode_as_numbers() -> None:
    assert amf0.encode(3) == num(3.0)
    assert amf0.decode(amf0.encode(3)) == 3.0


def test_long_string_decodes_even_when_short() -> None:
    assert amf0.decode(b"\x0c\x00\x00\x00\x02hi") == "hi"


def test_references_point_at_earlier_objects() -> None:
    wire = b"\x0a\x00\x00\x00\x02" + b"\x03\x00\x01k\x05\x00\x00\x09" + b"\x07\x00\x01"
    decoded = amf0.decode(wire)
    assert isinstance(decoded, list)
    first, second = decoded
    assert first == {"k": None} and second is first
    with pytest.raises(AmfDecodeError, match="reference"):
        amf0.decode(b"\x07\x00\x00")


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (b"\x09", "object end"),
        (b"\x04", "reserved"),
        (b"\x0e", "reserved"),
        (b"\x0d", "unsupported"),
        (b"\x11\x01", "unsupported"),
        (b"\x0f\x00\x00\x00\x00", "unsupported"),
        (b"\x42", "unknown"),
        (b"\x02\x00\x02\xff\xfe", "UTF-8"),
        (b"\x03\x00\x00\x05", "object end"),
        (b"\x0a\xff\xff\xff\xff\x05", "past the end"),
        (b"\x0b" + struct.pack(">d", math.nan) + b"\x00\x00", "NaN"),
        (b"\x0a\x00\x00\x00\x01" * 100 + b"\x05", "deeper"),
        (b"\x03\x00\x01a" * 100 + b"\x05", "deeper"),
    ],
)
def test_malformed_input_raises_typed_errors(wire: bytes, match: str) -> None:
    with pytest.raises(AmfDecodeError, match=match):
        amf0.decode_all(wire)


@pytest.mark.parametrize(
    "value",
    [object(), {1: "x"}, {"": 1.0}, set(), b"bytes"],
    ids=["object", "int-key", "empty-key", "set", "bytes"],
)
def test_unencodable_values_raise_encode_errors(value: object) -> None:
    with pytest.raises(AmfEncodeError):
        amf0.encode(value)  # type: ignore[arg-type]


def test_encoding_depth_is_bounded() -> None:
    deep: list[AmfValue] = []
    cur = deep
    for _ in range(amf0.MAX_DEPTH + 2):
        nxt: list[AmfValue] = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(AmfEncodeError):
        amf0.encode(deep)


def test_undefined_is_a_falsy_singleton() -> None:
    assert amf0.Undefined() is UNDEFINED
    assert not UNDEFINED
    assert repr(UNDEFINED) == "UNDEFINED"


keys = st.text(min_size=1, max_size=8)
scalars = (
    st.floats(allow_nan=False)
    | st.booleans()
    | st.text(max_size=20)
    | st.none()
    | st.just(UNDEFINED)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.dictionaries(keys, children, max_size=4).map(EcmaArray)
        | st.builds(TypedObject, st.text(max_size=8), st.dictionaries(keys, children, max_size=3))
    ),
    max_leaves=20,
)


@given(st.lists(values, max_size=5))
def test_round_trip(items: list[AmfValue]) -> None:
    assert amf0.decode_all(amf0.encode_all(items)) == items


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_amf_decode_error(data: bytes) -> None:
    try:
        amf0.decode_all(data)
    except AmfDecodeError:
        pass
