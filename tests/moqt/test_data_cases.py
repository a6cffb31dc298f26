"""The known-good table (tests/moqt/data_cases.py) drives encode and decode:
whole, byte by byte, and with trailing data."""

from __future__ import annotations

import pytest

from moqt.data import (
    FetchEndOfRange,
    FetchHeader,
    FetchWriter,
    Object,
    ObjectDatagram,
    SubgroupHeader,
    SubgroupWriter,
    UniStreamParser,
    decode_datagram,
    encode_datagram,
)
from moqt.errors import ProtocolViolation
from moqt.types import ObjectStatus

from .data_cases import CASES, Case, Event

STREAM_CASES = [c for c in CASES if c.kind != "datagram"]
DATAGRAM_CASES = [c for c in CASES if c.kind == "datagram"]


def encode(case: Case) -> bytes:
    if case.kind == "datagram":
        (datagram,) = case.events
        assert isinstance(datagram, ObjectDatagram)
        return encode_datagram(datagram, case.version)
    head, *rest = case.events
    out = bytearray()
    if isinstance(head, SubgroupHeader):
        sg = SubgroupWriter(head, case.version)
        out += sg.header_bytes()
        for obj in rest:
            assert isinstance(obj, Object)
            out += sg.write_object(
                obj.object_id, obj.payload, extensions=obj.extensions, status=obj.status
            )
    else:
        assert isinstance(head, FetchHeader)
        fw = FetchWriter(head.request_id, case.version)
        out += fw.header_bytes()
        for ev in rest:
            if isinstance(ev, FetchEndOfRange):
                out += fw.end_of_range(ev.group_id, ev.object_id, unknown=ev.unknown)
            else:
                assert isinstance(ev, Object)
                out += fw.write_object(ev)
    return bytes(out)


def parse_stream(case: Case, chunks: list[bytes], *, fin: bool = True) -> list[Event]:
    parser = UniStreamParser(case.version)
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    assert parser.kind == case.kind
    if fin:
        parser.finish()
    return events


@pytest.mark.parametrize("case", [c for c in CASES if c.canonical], ids=str)
def test_encode(case: Case) -> None:
    assert encode(case).hex() == case.data.hex()


@pytest.mark.parametrize("case", STREAM_CASES, ids=str)
def test_stream_decode_whole(case: Case) -> None:
    assert parse_stream(case, [case.data]) == list(case.events)


@pytest.mark.parametrize("case", STREAM_CASES, ids=str)
def test_stream_decode_byte_by_byte(case: Case) -> None:
    data = case.data
    chunks = [data[i : i + 1] for i in range(len(data))]
    assert parse_stream(case, chunks) == list(case.events)


@pytest.mark.parametrize("case", STREAM_CASES, ids=str)
def test_stream_decode_trailing(case: Case) -> None:
    """Bytes after the last object start another object: nothing more is emitted,
    and a FIN there is a truncated object."""
    parser = UniStreamParser(case.version)
    assert parser.feed(case.data + b"\x40") == list(case.events)
    with pytest.raises(ProtocolViolation, match="middle of an object"):
        parser.finish()


@pytest.mark.parametrize("case", STREAM_CASES, ids=str)
def test_stream_fin_inside_every_prefix(case: Case) -> None:
    """FIN at any point that is not an object boundary is a ProtocolViolation."""
    data = case.data
    boundaries = set()
    parser = UniStreamParser(case.version)
    for i in range(len(data)):
        if parser.feed(data[i : i + 1]):
            boundaries.add(i + 1)
    for cut in range(len(data)):
        if cut in boundaries:
            continue
        p = UniStreamParser(case.version)
        p.feed(data[:cut])
        with pytest.raises(ProtocolViolation):
            p.finish()


@pytest.mark.parametrize("case", DATAGRAM_CASES, ids=str)
def test_datagram_decode(case: Case) -> None:
    (expected,) = case.events
    assert decode_datagram(case.data, case.version) == expected
    assert decode_datagram(memoryview(case.data), case.version) == expected


@pytest.mark.parametrize("case", DATAGRAM_CASES, ids=str)
def test_datagram_trailing(case: Case) -> None:
    """A datagram's payload is the rest of it; a status datagram has nothing after the status."""
    (expected,) = case.events
    assert isinstance(expected, ObjectDatagram)
    data = case.data + b"\x99"
    if case.data[0] & 0x20:
        with pytest.raises(ProtocolViolation, match="trailing"):
            decode_datagram(data, case.version)
    else:
        got = decode_datagram(data, case.version)
        assert got.object.payload == expected.object.payload + b"\x99"
        assert got.object.status is ObjectStatus.NORMAL


@pytest.mark.parametrize("case", DATAGRAM_CASES, ids=str)
def test_datagram_every_truncation(case: Case) -> None:
    """Cutting a datagram inside its header fields is a ProtocolViolation."""
    data = case.data
    (expected,) = case.events
    assert isinstance(expected, ObjectDatagram)
    header_len = len(data) - len(expected.object.payload)
    for cut in range(header_len):
        with pytest.raises(ProtocolViolation):
            decode_datagram(data[:cut], case.version)


def test_table_covers_every_kind_and_version() -> None:
    seen = {(c.kind, c.version) for c in CASES}
    assert len(seen) == 6
