"""Peer faults (ProtocolViolation), local misuse (LocalError), limits and copy behaviour."""

from __future__ import annotations

import pytest

from moqt.data import (
    ExtensionType,
    FetchEndOfRange,
    FetchStreamParser,
    FetchWriter,
    MalformedTrack,
    Object,
    ObjectDatagram,
    SubgroupHeader,
    SubgroupIdMode,
    SubgroupStreamParser,
    SubgroupWriter,
    UniStreamParser,
    classify_uni_stream,
    decode_datagram,
    decode_extensions,
    decode_immutable_extensions,
    encode_datagram,
    encode_extensions,
    encode_fetch_end_of_range,
    encode_fetch_object,
    encode_immutable_extensions,
    encode_subgroup_header,
    encode_subgroup_object,
    prior_group_id_gap,
    prior_object_id_gap,
)
from moqt.errors import LocalError, ProtocolViolation, SessionCloseCode
from moqt.types import ObjectStatus
from moqt.version import DRAFT_14, DRAFT_16

BOTH = pytest.mark.parametrize("version", [DRAFT_14, DRAFT_16], ids=["d14", "d16"])
EOG = ObjectStatus.END_OF_GROUP
EOT = ObjectStatus.END_OF_TRACK
DNE = ObjectStatus.DOES_NOT_EXIST


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def feed_all(
    parser: SubgroupStreamParser | FetchStreamParser | UniStreamParser, data: bytes
) -> list[object]:
    return list(parser.feed(data))


# ---- stream types --------------------------------------------------------------------


@BOTH
def test_classify(version: int) -> None:
    assert classify_uni_stream(0x05, version) == "fetch"
    for t in (*range(0x10, 0x16), *range(0x18, 0x1E)):
        assert classify_uni_stream(t, version) == "subgroup"
    bad = [
        0x00,
        0x04,
        0x06,
        0x0F,
        0x16,
        0x17,
        0x1E,
        0x1F,
        0x20,
        0x36,
        0x37,
        0x3E,
        0x3F,
        0x40,
        0x50,
        0x90,
    ]
    for t in bad:
        with pytest.raises(ProtocolViolation, match="unknown unidirectional stream type") as info:
            classify_uni_stream(t, version)
        assert info.value.code is SessionCloseCode.PROTOCOL_VIOLATION


def test_default_priority_types_are_draft16_only() -> None:
    for t in (*range(0x30, 0x36), *range(0x38, 0x3E)):
        assert classify_uni_stream(t, DRAFT_16) == "subgroup"
        with pytest.raises(ProtocolViolation):
            classify_uni_stream(t, DRAFT_14)


@BOTH
def test_subgroup_parser_rejects_reserved_mode(version: int) -> None:
    with pytest.raises(ProtocolViolation, match="invalid SUBGROUP_HEADER type 0x16"):
        SubgroupStreamParser(version).feed(h("16 01 02 03"))
    with pytest.raises(ProtocolViolation, match="invalid FETCH_HEADER type"):
        FetchStreamParser(version).feed(h("14 01"))


def test_unsupported_version_is_local_error() -> None:
    with pytest.raises(LocalError):
        SubgroupStreamParser(0xFF00000D)
    with pytest.raises(LocalError):
        decode_datagram(b"\x00", 0xFF00000F)


# ---- limits --------------------------------------------------------------------------


@BOTH
def test_max_object_size_refused_when_length_is_read(version: int) -> None:
    parser = SubgroupStreamParser(version, max_object_size=1000)
    parser.feed(h("14 01 02 03 04"))
    assert parser.feed(h("00 43e8") + b"x" * 1000)  # exactly 1000 is fine
    with pytest.raises(ProtocolViolation, match="payload length 1001 exceeds max_object_size 1000"):
        parser.feed(h("00 43e9"))  # only the length has arrived


@BOTH
def test_max_object_size_fetch(version: int) -> None:
    parser = FetchStreamParser(version, max_object_size=10)
    head = "1c 01 00 05" if version == DRAFT_16 else "01 00 00 05 00"
    with pytest.raises(ProtocolViolation, match="exceeds max_object_size 10"):
        parser.feed(h(f"05 00 {head} 0b"))


@BOTH
def test_max_object_size_datagram(version: int) -> None:
    data = h("04 01 02 80") + b"y" * 11
    assert decode_datagram(data, version, max_object_size=11).object.payload == b"y" * 11
    with pytest.raises(ProtocolViolation, match="max_object_size 10"):
        decode_datagram(data, version, max_object_size=10)


@BOTH
def test_max_extensions_size(version: int) -> None:
    parser = SubgroupStreamParser(version, max_extensions_size=16)
    parser.feed(h("15 01 02 03 04"))
    with pytest.raises(
        ProtocolViolation, match="extension headers length 17 exceeds the limit of 16"
    ):
        parser.feed(h("00 11"))


# ---- object status and extensions --------------------------------------------------


@BOTH
@pytest.mark.parametrize("status", [0x2, 0x5, 0x3F])
def test_unknown_status(version: int, status: int) -> None:
    with pytest.raises(ProtocolViolation, match="unknown object status"):
        SubgroupStreamParser(version).feed(h(f"14 01 02 03 04 00 00 {status:02x}"))


def test_does_not_exist_is_draft14_only() -> None:
    assert SubgroupStreamParser(DRAFT_14).feed(h("14 01 02 03 04 00 00 01"))[1] == Object(
        2, 3, 0, 4, b"", (), DNE
    )
    with pytest.raises(ProtocolViolation, match="unknown object status 0x1"):
        SubgroupStreamParser(DRAFT_16).feed(h("14 01 02 03 04 00 00 01"))
    with pytest.raises(ProtocolViolation, match="unknown object status 0x1"):
        decode_datagram(h("20 01 02 03 04 01"), DRAFT_16)


def test_extensions_on_status_objects() -> None:
    # draft-16: any non-Normal status with extensions closes the session.
    with pytest.raises(
        ProtocolViolation, match="extension headers on an object with status END_OF_GROUP"
    ):
        SubgroupStreamParser(DRAFT_16).feed(h("15 01 02 03 04 | 00 02 0201 00 03".replace("|", "")))
    # draft-14: only Does Not Exist may not carry them.
    events = SubgroupStreamParser(DRAFT_14).feed(h("15 01 02 03 04 00 02 0201 00 03"))
    assert events[1] == Object(2, 3, 0, 4, b"", ((2, 1),), EOG)
    with pytest.raises(ProtocolViolation, match="DOES_NOT_EXIST"):
        SubgroupStreamParser(DRAFT_14).feed(h("15 01 02 03 04 00 02 0201 00 01"))
    with pytest.raises(ProtocolViolation, match="DOES_NOT_EXIST"):
        FetchStreamParser(DRAFT_14).feed(h("05 00 01 00 00 05 02 0201 00 01"))
    with pytest.raises(ProtocolViolation, match="END_OF_TRACK"):
        decode_datagram(h("21 01 02 03 04 02 0201 04"), DRAFT_16)
    assert decode_datagram(h("21 01 02 03 04 02 0201 04"), DRAFT_14).object.status is EOT


@BOTH
@pytest.mark.parametrize("status", ["03", "04"])
def test_object_after_end_status(version: int, status: str) -> None:
    parser = SubgroupStreamParser(version)
    parser.feed(h(f"14 01 02 03 04 00 00 {status}"))
    with pytest.raises(ProtocolViolation, match="after an End of Group/Track"):
        parser.feed(h("00 01 61"))


@BOTH
def test_object_id_overflow(version: int) -> None:
    parser = SubgroupStreamParser(version)
    parser.feed(h("14 01 02 03 04 | ffffffffffffffff 01 61".replace("|", "")))
    with pytest.raises(ProtocolViolation, match="overflows"):
        parser.feed(h("00 01 62"))


@BOTH
@pytest.mark.parametrize(
    "block",
    [
        "03 03 02 61",  # odd type 3 claims 2 bytes, 1 left
        "02 02 40",  # even type 2, 2-byte varint cut by the block end
        "05 05 4100 00 00",  # odd type 5 with length 0x100 beyond the block
        "01 02",  # even type 2 and no value at all
    ],
)
def test_malformed_extension_block(version: int, block: str) -> None:
    with pytest.raises(ProtocolViolation, match="overruns"):
        SubgroupStreamParser(version).feed(h(f"15 01 02 03 04 00 {block} 01 61"))


@BOTH
def test_extension_value_too_long(version: int) -> None:
    with pytest.raises(ProtocolViolation, match="value length 65536 exceeds 65535"):
        decode_extensions(h("01 80010000"), version)


def test_delta_type_overflow_draft16() -> None:
    big = "ffffffffffffffff 00"  # delta 2^62-1 (even type), value 0
    assert decode_extensions(h(big * 4), DRAFT_16)[-1][0] == 4 * ((1 << 62) - 1)  # 2^64 - 4
    with pytest.raises(ProtocolViolation, match="overflows 2\\^64-1"):
        decode_extensions(h(big * 5), DRAFT_16)


# ---- fetch (draft-16 serialization flags) -------------------------------------------


@pytest.mark.parametrize(
    ("objects", "reason"),
    [
        ("8000 0080", "invalid fetch serialization flags 0x80"),
        ("408d", "invalid fetch serialization flags 0x8d"),
        ("420c 00 00", "invalid fetch serialization flags 0x20c"),
        ("14 00 05 00", "prior Group ID"),  # Object|Priority, no Group
        ("18 01 05 00", "prior Object ID"),  # Group|Priority, no Object
        ("0c 01 00 00", "prior Publisher Priority"),  # Group|Object, no Priority
        ("1d 01 00 05 00", "Subgroup ID of a prior object"),  # subgroup = prior
        ("1e 01 00 05 00", "Subgroup ID of a prior object"),  # subgroup = prior + 1
        # a datagram object has no Subgroup ID to reference
        ("405c 01 00 05 00 | 01 00", "Subgroup ID of a prior object"),
        # after a marker with no real object before it, the priority is unknown
        ("408c 01 02 | 00 00", "prior Publisher Priority"),
    ],
)
def test_fetch16_bad_flags(objects: str, reason: str) -> None:
    with pytest.raises(ProtocolViolation, match=reason):
        FetchStreamParser(DRAFT_16).feed(h("05 00 " + objects.replace("|", "")))


def test_fetch14_has_no_end_of_range() -> None:
    # 0x8c is just a (2-byte) Group ID in draft-14.
    events = FetchStreamParser(DRAFT_14).feed(h("05 00 408c 00 00 05 00 01 61"))
    assert events[1] == Object(0x8C, 0, 0, 5, b"a")
    with pytest.raises(LocalError):
        encode_fetch_end_of_range(FetchEndOfRange(1, 2), DRAFT_14)


# ---- datagrams -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "dtype"),
    [
        *(
            (DRAFT_16, t)
            for t in (0x10, 0x1F, 0x22, 0x23, 0x26, 0x27, 0x2A, 0x2B, 0x2E, 0x2F, 0x30, 0x40)
        ),
        *((DRAFT_14, t) for t in (0x08, 0x0C, 0x0F, 0x10, 0x22, 0x24, 0x28, 0x2C, 0x30)),
    ],
)
def test_invalid_datagram_types(version: int, dtype: int) -> None:
    data = bytes([dtype]) + h("01 02 03 04 05") if dtype < 0x40 else h("4040 01 02 03 04")
    with pytest.raises(ProtocolViolation, match="invalid OBJECT_DATAGRAM type"):
        decode_datagram(data, version)


@BOTH
def test_datagram_extensions_bit_with_empty_block(version: int) -> None:
    with pytest.raises(ProtocolViolation, match="EXTENSIONS bit and no extensions"):
        decode_datagram(h("01 01 02 03 04 00 61"), version)


@BOTH
def test_datagram_truncated(version: int) -> None:
    for data in (
        b"",
        h("00"),
        h("00 01"),
        h("00 01 02"),
        h("00 01 02 03"),
        h("01 01 02 03 04 05 02"),
    ):
        with pytest.raises(ProtocolViolation, match="truncated OBJECT_DATAGRAM"):
            decode_datagram(data, version)


# ---- FIN and parser life cycle -------------------------------------------------------


@BOTH
def test_fin_cases(version: int) -> None:
    for data, reason in (
        (b"", "before its header"),
        (h("14 01"), "before its header"),
        (h("14 01 02 03 04 00"), "middle of an object"),
        (h("14 01 02 03 04 00 05 6162"), "middle of an object"),
    ):
        parser = SubgroupStreamParser(version)
        parser.feed(data)
        with pytest.raises(ProtocolViolation, match=reason):
            parser.finish()
    parser = SubgroupStreamParser(version)
    parser.feed(h("14 01 02 03 04"))
    parser.finish()  # a header and no objects is a complete stream
    with pytest.raises(LocalError):
        parser.feed(b"\x00")
    uni = UniStreamParser(version)
    uni.feed(h("40"))
    with pytest.raises(ProtocolViolation, match="before its type"):
        uni.finish()


@BOTH
def test_feed_after_failure_is_local_error(version: int) -> None:
    parser = SubgroupStreamParser(version)
    with pytest.raises(ProtocolViolation):
        parser.feed(h("16"))
    with pytest.raises(LocalError):
        parser.feed(b"\x00")


@BOTH
def test_empty_feeds_and_mid_object(version: int) -> None:
    parser = SubgroupStreamParser(version)
    assert parser.feed(b"") == []
    assert parser.feed(h("14 01 02 03")) == []
    assert parser.feed(h("04")) == [SubgroupHeader(1, 2, 3, 4)]
    assert not parser.mid_object
    assert parser.feed(h("00 03 61")) == []
    assert parser.mid_object
    assert parser.feed(b"") == []
    assert parser.feed(b"bc") == [Object(2, 3, 0, 4, b"abc")]
    assert not parser.mid_object
    assert parser.last_object_id == 0


# ---- copies --------------------------------------------------------------------------


@BOTH
def test_payload_fed_as_its_own_chunk_is_not_copied(version: int) -> None:
    payload = bytes(range(256)) * 4096
    parser = SubgroupStreamParser(version)
    parser.feed(h("14 01 02 03 04"))
    parser.feed(h("00 80100000"))
    (obj,) = parser.feed(payload)
    assert isinstance(obj, Object)
    assert obj.payload is payload


@BOTH
def test_payload_split_over_many_chunks(version: int) -> None:
    payload = bytes(range(256)) * 400
    head = h("14 01 02 03 04 00 80019000")
    parser = SubgroupStreamParser(version)
    events = parser.feed(head + payload[:1000])
    assert len(events) == 1
    for i in range(1000, len(payload), 777):
        events += parser.feed(payload[i : i + 777])
    assert events[-1] == Object(2, 3, 0, 4, payload)
    parser.finish()


def test_non_bytes_input_is_accepted() -> None:
    parser = SubgroupStreamParser(DRAFT_16)
    events = parser.feed(bytearray(h("14 01 02 03 04 00 01 61")))  # type: ignore[arg-type]
    events += parser.feed(memoryview(h("00 01 62")))  # type: ignore[arg-type]
    assert [e.payload for e in events[1:] if isinstance(e, Object)] == [b"a", b"b"]


# ---- local errors (our own misuse) ---------------------------------------------------


def test_header_local_errors() -> None:
    with pytest.raises(LocalError, match="draft-14 subgroup headers always carry"):
        encode_subgroup_header(SubgroupHeader(1, 2, 3, None), DRAFT_14)
    with pytest.raises(LocalError, match=r"not 0\.\.255"):
        encode_subgroup_header(SubgroupHeader(1, 2, 3, 256), DRAFT_16)
    with pytest.raises(LocalError, match="needs a subgroup_id"):
        encode_subgroup_header(SubgroupHeader(1, 2, None, 1), DRAFT_16)
    with pytest.raises(LocalError, match="ZERO subgroup id mode"):
        encode_subgroup_header(
            SubgroupHeader(1, 2, 5, 1, subgroup_id_mode=SubgroupIdMode.ZERO), DRAFT_16
        )
    with pytest.raises(LocalError, match="not a varint"):
        encode_subgroup_header(SubgroupHeader(1 << 62, 2, 5, 1), DRAFT_16)


def test_for_subgroup_picks_compact_mode() -> None:
    assert SubgroupHeader.for_subgroup(1, 2, 0, 3).subgroup_id_mode is SubgroupIdMode.ZERO
    assert SubgroupHeader.for_subgroup(1, 2, 7, 3, first_object_id=7).subgroup_id_mode is (
        SubgroupIdMode.FIRST_OBJECT
    )
    assert SubgroupHeader.for_subgroup(1, 2, 7, 3, first_object_id=6).subgroup_id_mode is (
        SubgroupIdMode.EXPLICIT
    )


@BOTH
def test_object_local_errors(version: int) -> None:
    kw = {"prev_object_id": None, "extensions_present": False}
    with pytest.raises(LocalError, match="must have an empty payload"):
        encode_subgroup_object(0, b"x", version, status=EOG, **kw)  # type: ignore[arg-type]
    with pytest.raises(LocalError, match="no EXTENSIONS bit"):
        encode_subgroup_object(0, b"x", version, extensions=((2, 1),), **kw)  # type: ignore[arg-type]
    with pytest.raises(LocalError, match="must increase"):
        encode_subgroup_object(3, b"x", version, prev_object_id=3, extensions_present=False)
    if version == DRAFT_16:
        with pytest.raises(LocalError, match="does not exist in version"):
            encode_subgroup_object(0, b"", version, status=DNE, **kw)  # type: ignore[arg-type]
        with pytest.raises(LocalError, match="cannot carry extension headers"):
            encode_subgroup_object(
                0,
                b"",
                version,
                prev_object_id=None,
                extensions_present=True,
                extensions=((2, 1),),
                status=EOG,
            )


def test_writer_local_errors() -> None:
    w = SubgroupWriter(
        SubgroupHeader(1, 2, 5, 0, subgroup_id_mode=SubgroupIdMode.FIRST_OBJECT), DRAFT_16
    )
    with pytest.raises(LocalError, match="must start with object 5"):
        w.write_object(4, b"x")
    w.write_object(5, b"x")
    assert w.subgroup_id == 5
    w.write_object(6, status=EOG)
    with pytest.raises(LocalError, match="after an End of Group/Track"):
        w.write_object(7, b"y")


def test_fetch_local_errors() -> None:
    with pytest.raises(LocalError, match="no Object Status"):
        encode_fetch_object(Object(1, 0, 0, 1, b"", (), EOG), DRAFT_16)
    with pytest.raises(LocalError, match="needs a publisher priority"):
        encode_fetch_object(Object(1, 0, 0, None, b"x"), DRAFT_14)
    fw = FetchWriter(1, DRAFT_16)
    fw.write_object(Object(1, 0, 0, 1, b"a"))
    fw.end_of_range(1, 5)
    # after a marker the writer repeats every field (flags 0x1c), never a prior reference
    assert fw.write_object(Object(1, 0, 6, 1, b"b"))[0] == 0x1C


def test_datagram_local_errors() -> None:
    with pytest.raises(LocalError, match="cannot also signal End of Group"):
        encode_datagram(ObjectDatagram(1, Object(1, None, 1, 1, b"", (), EOG), True), DRAFT_16)
    with pytest.raises(LocalError, match="always carry a publisher priority"):
        encode_datagram(ObjectDatagram(1, Object(1, None, 1, None, b"x")), DRAFT_14)


@BOTH
def test_extension_local_errors(version: int) -> None:
    with pytest.raises(LocalError, match="even: its value must be int"):
        encode_extensions(((2, b"x"),), version)
    with pytest.raises(LocalError, match="odd: its value must be bytes"):
        encode_extensions(((3, 1),), version)
    with pytest.raises(LocalError, match="max 65535"):
        encode_extensions(((3, b"x" * 65536),), version)
    with pytest.raises(LocalError, match="negative"):
        encode_extensions(((-2, 1),), version)
    with pytest.raises(LocalError, match="varint"):
        encode_extensions(((2, 1 << 62),), version)


# ---- immutable extensions and gaps ----------------------------------------------------


@BOTH
def test_immutable_extensions(version: int) -> None:
    inner = ((2, 5), (9, b"sig"), (0x3E, 1))  # ascending: draft-16 delta-codes the types
    wrapped = encode_immutable_extensions(inner, version)
    assert wrapped[0] == ExtensionType.IMMUTABLE_EXTENSIONS
    exts = ((4, 1), wrapped)
    # survives the wire inside an object
    block = encode_extensions(exts, version)
    assert decode_immutable_extensions(decode_extensions(block, version), version) == inner
    assert decode_immutable_extensions(((4, 1),), version) == ()
    with pytest.raises(MalformedTrack, match="more than one"):
        decode_immutable_extensions((wrapped, wrapped), version)
    with pytest.raises(MalformedTrack, match="do not parse"):
        decode_immutable_extensions(((0x0B, b"\x03\x05a"),), version)
    nested = (0x0B, encode_extensions(((0x0B, b""),), version))
    with pytest.raises(MalformedTrack, match="another Immutable Extensions"):
        decode_immutable_extensions((nested,), version)
    with pytest.raises(LocalError):
        encode_immutable_extensions(((0x0B, b""),), version)


def test_gap_extensions() -> None:
    assert prior_object_id_gap(((0x3E, 2),), 10) == 2
    assert prior_object_id_gap((), 10) is None
    assert prior_group_id_gap(((0x3C, 3),), 3) == 3
    with pytest.raises(MalformedTrack, match="larger than the id"):
        prior_group_id_gap(((0x3C, 4),), 3)
    with pytest.raises(MalformedTrack, match="more than one PRIOR_OBJECT_ID_GAP"):
        prior_object_id_gap(((0x3E, 1), (0x3E, 1)), 10)
    assert issubclass(MalformedTrack, ProtocolViolation)


@BOTH
def test_uni_parser_life_cycle(version: int) -> None:
    uni = UniStreamParser(version)
    with pytest.raises(ProtocolViolation, match="unknown unidirectional stream type 0x40"):
        uni.feed(h("4040 01"))
    with pytest.raises(LocalError):
        uni.feed(h("14"))
    empty = UniStreamParser(version)
    with pytest.raises(ProtocolViolation, match="before its type"):
        empty.finish()
    with pytest.raises(LocalError):
        empty.finish()
    assert UniStreamParser(version).feed(h("05")) == []  # a fetch stream, header incomplete


def test_stream_type_is_checked_against_the_version() -> None:
    header = SubgroupHeader(1, 2, 3, None)
    assert header.stream_type(DRAFT_16) == 0x34
    with pytest.raises(LocalError, match="no SUBGROUP_HEADER type 0x34"):
        header.stream_type(DRAFT_14)
