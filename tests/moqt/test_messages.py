"""Control messages against the hand-written table in cases_control.py.

Each case drives encode and decode: whole, byte by byte (every proper prefix is
NeedMoreData and consumes nothing), with bytes after the message (left unconsumed),
with a byte inside the declared length (PROTOCOL_VIOLATION) and with the length cut
short (PROTOCOL_VIOLATION).
"""

from __future__ import annotations

import pytest

import moqt.messages as messages
from moqt._buffer import Buffer, NeedMoreData
from moqt.errors import LocalError, PeerError, ProtocolViolation, SessionCloseCode
from moqt.messages import (
    ClientSetup,
    Fetch,
    FetchOk,
    JoiningFetch,
    MessageParameters,
    PublishNamespaceCancel,
    PublishNamespaceDone,
    ServerSetup,
    Subscribe,
    SubscribeNamespace,
    SubscribeOk,
    SubscribeOptions,
    TrackExtensions,
    decode_control,
    encode_control,
    message_types,
)
from moqt.types import FetchType, GroupOrder, Location
from moqt.version import DRAFT_14, DRAFT_16

from .cases_control import BAD_CASES, CASES, NAME, NS, BadCase, ControlCase

case_param = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


def _relength(wire: bytes, delta: int) -> bytes:
    """The same message with its 16-bit length changed by ``delta`` (payload untouched)."""
    buf = Buffer(wire)
    buf.pull_varint()
    at = buf.position
    length = int.from_bytes(wire[at : at + 2], "big") + delta
    return wire[:at] + length.to_bytes(2, "big") + wire[at + 2 :]


@case_param
def test_encode(case: ControlCase) -> None:
    assert encode_control(case.message, case.version).hex() == case.wire.hex()


@case_param
def test_decode_whole(case: ControlCase) -> None:
    buf = Buffer(case.wire)
    assert decode_control(buf, case.version) == case.message
    assert buf.eof()


@case_param
def test_decode_byte_by_byte(case: ControlCase) -> None:
    for end in range(len(case.wire)):
        buf = Buffer(case.wire[:end])
        with pytest.raises(NeedMoreData):
            decode_control(buf, case.version)
        assert buf.position == 0, f"consumed input on a {end}-byte prefix"
    assert decode_control(Buffer(case.wire), case.version) == case.message


@case_param
def test_bytes_after_message_stay(case: ControlCase) -> None:
    buf = Buffer(case.wire + b"\x0a\x00")
    assert decode_control(buf, case.version) == case.message
    assert buf.remaining == 2
    assert buf.rest() == b"\x0a\x00"


@case_param
def test_byte_inside_length_is_violation(case: ControlCase) -> None:
    wire = _relength(case.wire, +1) + b"\x00"
    with pytest.raises(ProtocolViolation):
        decode_control(Buffer(wire), case.version)


@case_param
def test_length_cut_short_is_violation(case: ControlCase) -> None:
    wire = _relength(case.wire, -1)[:-1]
    with pytest.raises(ProtocolViolation):
        decode_control(Buffer(wire), case.version)


def test_messages_back_to_back() -> None:
    for version in (DRAFT_14, DRAFT_16):
        cases = [c for c in CASES if c.version == version]
        buf = Buffer(b"".join(c.wire for c in cases))
        assert [decode_control(buf, version) for _ in cases] == [c.message for c in cases]
        assert buf.eof()


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.id for c in BAD_CASES])
def test_bad_input(case: BadCase) -> None:
    with pytest.raises(case.error) as info:
        decode_control(Buffer(case.wire), case.version)
    assert info.value.code == case.code, info.value.reason


def test_table_covers_every_message_of_both_versions() -> None:
    for version in (DRAFT_14, DRAFT_16):
        covered = {type(c.message) for c in CASES if c.version == version}
        assert covered == set(message_types(version).values())


def test_message_set_per_version() -> None:
    names = {v: {t: c.__name__ for t, c in message_types(v).items()} for v in (DRAFT_14, DRAFT_16)}
    assert names[DRAFT_16] == {
        0x20: "ClientSetup", 0x21: "ServerSetup", 0x10: "Goaway", 0x15: "MaxRequestId",
        0x1A: "RequestsBlocked", 0x7: "RequestOk", 0x5: "RequestError", 0x3: "Subscribe",
        0x4: "SubscribeOk", 0x2: "RequestUpdate", 0xA: "Unsubscribe", 0x1D: "Publish",
        0x1E: "PublishOk", 0xB: "PublishDone", 0x16: "Fetch", 0x18: "FetchOk",
        0x17: "FetchCancel", 0xD: "TrackStatus", 0x6: "PublishNamespace", 0x8: "Namespace",
        0x9: "PublishNamespaceDone", 0xE: "NamespaceDone", 0xC: "PublishNamespaceCancel",
        0x11: "SubscribeNamespace",
    }  # fmt: skip
    assert names[DRAFT_14] == {
        0x20: "ClientSetup", 0x21: "ServerSetup", 0x10: "Goaway", 0x15: "MaxRequestId",
        0x1A: "RequestsBlocked", 0x3: "Subscribe", 0x4: "SubscribeOk", 0x5: "SubscribeError",
        0x2: "SubscribeUpdate", 0xA: "Unsubscribe", 0xB: "PublishDone", 0x1D: "Publish",
        0x1E: "PublishOk", 0x1F: "PublishError", 0x16: "Fetch", 0x18: "FetchOk",
        0x19: "FetchError", 0x17: "FetchCancel", 0xD: "TrackStatus", 0xE: "TrackStatusOk",
        0xF: "TrackStatusError", 0x6: "PublishNamespace", 0x7: "PublishNamespaceOk",
        0x8: "PublishNamespaceError", 0x9: "PublishNamespaceDone", 0xC: "PublishNamespaceCancel",
        0x11: "SubscribeNamespace", 0x12: "SubscribeNamespaceOk",
        0x13: "SubscribeNamespaceError", 0x14: "UnsubscribeNamespace",
    }  # fmt: skip


def test_exports_are_pinned() -> None:
    message_classes = {c.__name__ for v in (DRAFT_14, DRAFT_16) for c in message_types(v).values()}
    assert set(messages.__all__) == message_classes | {
        "AuthToken", "AuthTokenAliasType", "ControlMessage", "DEFAULT_SUBSCRIBER_PRIORITY",
        "JoiningFetch", "KeyValuePairs", "MAX_CONTROL_PAYLOAD", "MAX_GOAWAY_URI_LENGTH",
        "MAX_KVP_VALUE_LENGTH", "MAX_REASON_PHRASE_LENGTH", "MessageParameterType",
        "MessageParameters", "SetupParameterType", "SetupParameters", "StandaloneFetch",
        "SubscribeOptions", "TrackExtensionType", "TrackExtensions", "decode_control",
        "encode_control", "message_class", "message_types",
    }  # fmt: skip
    assert len(messages.__all__) == len(set(messages.__all__))
    for name in messages.__all__:
        assert hasattr(messages, name)


# --- things we refuse to encode (our own mistakes: LocalError, never a PeerError) ------


@pytest.mark.parametrize(
    ("message", "version"),
    [
        (messages.SubscribeError(1, 2), DRAFT_16),  # draft-14 only
        (messages.RequestOk(1), DRAFT_14),  # draft-16 only
        (ClientSetup(versions=(DRAFT_14,)), DRAFT_16),  # no version list in 16
        (ClientSetup(), DRAFT_14),  # 14 must offer a version
        (ServerSetup(selected_version=DRAFT_14), DRAFT_16),
        (ServerSetup(), DRAFT_14),
        (SubscribeOk(0, 1, group_order=GroupOrder.ASCENDING), DRAFT_16),
        (SubscribeOk(0, 1, track_extensions=TrackExtensions.build(dynamic_groups=True)), DRAFT_14),
        (SubscribeOk(0, 1, group_order=GroupOrder.ORIGINAL), DRAFT_14),
        (FetchOk(0, False, Location(0, 0), group_order=GroupOrder.ASCENDING), DRAFT_16),
        (PublishNamespaceDone(namespace=(b"a",)), DRAFT_16),
        (PublishNamespaceDone(request_id=1), DRAFT_14),
        (PublishNamespaceCancel(0, request_id=1), DRAFT_14),
        (SubscribeNamespace(0, (b"a",), SubscribeOptions.PUBLISH), DRAFT_14),
        (SubscribeNamespace(0, ()), DRAFT_14),  # 14 prefixes have 1..32 fields
        (Subscribe(0, (), NAME), DRAFT_16),
        (Subscribe(0, (b"",), NAME), DRAFT_16),
        (Subscribe(0, NS, b"x" * 4096), DRAFT_16),
        (messages.Goaway("x" * 8193), DRAFT_16),
        (messages.RequestError(0, 0, "x" * 1025), DRAFT_16),
        # A lifted parameter given twice (field and parameters) is ambiguous.
        (
            Subscribe(0, NS, NAME, forward=True, parameters=MessageParameters.build(forward=False)),
            DRAFT_16,
        ),
        (
            Subscribe(0, NS, NAME, parameters=MessageParameters.build(subscriber_priority=1)),
            DRAFT_16,
        ),
        # Payload over the 16-bit length.
        (
            messages.RequestOk(
                0, MessageParameters(tuple((0x41 + 2 * i, b"x" * 60000) for i in range(2)))
            ),
            DRAFT_16,
        ),
    ],
)
def test_local_errors(message: messages.ControlMessage, version: int) -> None:
    with pytest.raises(LocalError):
        encode_control(message, version)


def test_invalid_values_rejected_at_construction() -> None:
    with pytest.raises(ValueError):
        Subscribe(0, NS, NAME, subscriber_priority=256)
    with pytest.raises(ValueError):
        Fetch(0, FetchType.STANDALONE, joining=JoiningFetch(0, 0))
    with pytest.raises(ValueError):
        MessageParameters(((0x2, b"bytes for an even type"),))
    with pytest.raises(ValueError):
        MessageParameters(((0x3, 5),))
    with pytest.raises(ValueError):
        MessageParameters(((0x3, b"x" * 65536),))
    with pytest.raises(ValueError):
        MessageParameters.build(subscriber_priority=256)
    with pytest.raises(ValueError):
        TrackExtensions.build(default_publisher_priority=256)


def test_original_group_order_is_the_absent_one() -> None:
    assert Subscribe(0, NS, NAME, group_order=GroupOrder.ORIGINAL).group_order is None
    wire = encode_control(Subscribe(0, NS, NAME, group_order=GroupOrder.ORIGINAL), DRAFT_16)
    assert wire == encode_control(Subscribe(0, NS, NAME), DRAFT_16)


def test_draft14_defaults_for_absent_fields() -> None:
    """None fields are written as the drafts' defaults where draft-14 needs a value."""
    decoded = decode_control(Buffer(encode_control(Subscribe(0, NS, NAME), DRAFT_14)), DRAFT_14)
    assert isinstance(decoded, Subscribe)
    assert (decoded.subscriber_priority, decoded.group_order, decoded.forward) == (128, None, True)
    assert decoded.filter is not None and decoded.filter.start == Location(0, 0)


def test_decode_control_needs_a_supported_version() -> None:
    with pytest.raises(LocalError):
        decode_control(Buffer(b"\x0a\x00\x01\x03"), 0xFF00000F)


def test_peer_errors_carry_codes() -> None:
    with pytest.raises(PeerError) as info:
        decode_control(Buffer(bytes.fromhex("0a000203ff")), DRAFT_16)
    assert info.value.code == SessionCloseCode.PROTOCOL_VIOLATION
    assert "after the last field" in info.value.reason


def test_unknown_draft16_message_parameter_strict_or_kept() -> None:
    # RequestOk | req 2 | 2 params: LARGEST_OBJECT(+9) {5,7} | 0x30(+0x27) = 1
    wire = bytes.fromhex("0700080202090205072701")
    with pytest.raises(ProtocolViolation, match="unknown message parameter 0x30"):
        decode_control(Buffer(wire), DRAFT_16)
    msg = decode_control(Buffer(wire), DRAFT_16, strict_parameters=False)
    assert isinstance(msg, messages.RequestOk)
    assert msg.parameters.largest_object == Location(5, 7)
    assert msg.parameters.get(0x30) == 1
    assert msg.parameters.unknown_types(DRAFT_16) == {0x30}
    assert encode_control(msg, DRAFT_16) == wire


def test_unknown_draft14_message_parameters_are_kept_and_may_repeat() -> None:
    # PUBLISH_NAMESPACE | 0009 | req 1 | ns ("a",) | 2 params: 0x20=1, 0x20=2 (unknown in 14)
    wire = bytes.fromhex("06 0009 01 01 01 61 02 20 01 20 02".replace(" ", ""))
    msg = decode_control(Buffer(wire), DRAFT_14)
    assert isinstance(msg, messages.PublishNamespace)
    assert msg.parameters.get_all(0x20) == (1, 2)
    assert encode_control(msg, DRAFT_14) == wire


def test_unknown_setup_parameters_are_never_an_error() -> None:
    # CLIENT_SETUP d16 | 1 param: 0x30(+0x30) = 5
    msg = decode_control(Buffer(bytes.fromhex("200003013005")), DRAFT_16)
    assert isinstance(msg, ClientSetup)
    assert msg.parameters.get(0x30) == 5


def test_client_setup_without_versions_decodes() -> None:
    """An empty version list is the session's VERSION_NEGOTIATION_FAILED, not a parse error."""
    msg = decode_control(Buffer(bytes.fromhex("2000020000")), DRAFT_14)
    assert msg == ClientSetup(versions=())


def test_draft16_types_up_to_2_64_minus_1() -> None:
    # SERVER_SETUP d16 | 4 params, each delta 2^62-1: types 2^62-1 (odd, empty),
    # 2^63-2 (even, 0), 3*2^62-3 (odd, empty), 2^64-4 (even, 0)
    wire = bytes.fromhex("21 0025 04" + " ffffffffffffffff 00" * 4)
    msg = decode_control(Buffer(wire), DRAFT_16)
    assert isinstance(msg, ServerSetup)
    top = (1 << 62) - 1
    assert [k for k, _ in msg.parameters] == [top, 2 * top, 3 * top, 4 * top]
    assert encode_control(msg, DRAFT_16) == wire
    with pytest.raises(LocalError):  # such a type has no draft-14 (absolute varint) form
        encode_control(msg, DRAFT_14)
