"""Typed views of key-value pairs: setup parameters, message parameters, track extensions."""

from __future__ import annotations

import pytest

from moqt._buffer import Buffer, Writer
from moqt.errors import ProtocolViolation, SessionCloseCode, SessionError
from moqt.messages import (
    AuthToken,
    AuthTokenAliasType,
    KeyValuePairs,
    MessageParameters,
    MessageParameterType,
    SetupParameters,
    TrackExtensions,
    TrackExtensionType,
)
from moqt.types import GroupOrder, Location, SubscriptionFilter
from moqt.version import DRAFT_14, DRAFT_16


def _round_trip[P: KeyValuePairs](params: P, version: int) -> P:
    w = Writer()
    params.encode_counted(w, version)
    buf = Buffer(w.data)
    decoded = type(params).decode_counted(buf, version)
    assert buf.eof()
    return decoded


def test_setup_parameter_accessors() -> None:
    token = AuthToken.register(7, b"secret", token_type=2)
    params = SetupParameters.build(
        path="/live?x=1",
        authority="relay.example:443",
        max_request_id=50,
        max_auth_token_cache_size=4096,
        implementation="clutchcall/1",
        auth_tokens=(token, AuthToken.use_value(b"v")),
    )
    for version in (DRAFT_14, DRAFT_16):
        decoded = _round_trip(params, version)
        assert decoded == params
        assert decoded.path == "/live?x=1"
        assert decoded.authority == "relay.example:443"
        assert decoded.max_request_id == 50
        assert decoded.max_auth_token_cache_size == 4096
        assert decoded.implementation == "clutchcall/1"
        assert decoded.auth_tokens == (token, AuthToken.use_value(b"v"))
    empty = SetupParameters()
    assert (empty.path, empty.max_request_id, empty.auth_tokens) == (None, None, ())


def test_message_parameter_accessors() -> None:
    flt = SubscriptionFilter.absolute_start(Location(4, 1))
    params = MessageParameters.build(
        auth_tokens=(AuthToken.use_alias(3),),
        delivery_timeout=250,
        expires=1000,
        largest_object=Location(9, 8),
        forward=False,
        subscriber_priority=7,
        subscription_filter=flt,
        group_order=GroupOrder.DESCENDING,
        new_group_request=10,
    )
    decoded = _round_trip(params, DRAFT_16)
    assert decoded == params
    assert decoded.auth_tokens == (AuthToken.use_alias(3),)
    assert decoded.delivery_timeout == 250
    assert decoded.expires == 1000
    assert decoded.largest_object == Location(9, 8)
    assert decoded.forward is False
    assert decoded.subscriber_priority == 7
    assert decoded.subscription_filter == flt
    assert decoded.group_order is GroupOrder.DESCENDING
    assert decoded.new_group_request == 10
    assert decoded.unknown_types(DRAFT_16) == frozenset()
    d14 = MessageParameters.build(max_cache_duration=5, delivery_timeout=0)
    assert _round_trip(d14, DRAFT_14).max_cache_duration == 5
    assert _round_trip(d14, DRAFT_14).delivery_timeout == 0  # only draft-16 forbids 0


def test_track_extension_accessors() -> None:
    inner = TrackExtensions.build(default_publisher_priority=3, extra=((0x41, b"i"),))
    ext = TrackExtensions.build(
        delivery_timeout=100,
        max_cache_duration=2000,
        default_publisher_priority=64,
        default_publisher_group_order=GroupOrder.ASCENDING,
        dynamic_groups=True,
        immutable=inner,
        extra=((0x3C0, 1), (0x3C0, 2)),  # unknown extensions may repeat
    )
    w = Writer()
    ext.encode(w, DRAFT_16)
    decoded = TrackExtensions.decode(Buffer(w.data), DRAFT_16, None)
    assert decoded == ext
    assert decoded.delivery_timeout == 100
    assert decoded.max_cache_duration == 2000
    assert decoded.default_publisher_priority == 64
    assert decoded.default_publisher_group_order is GroupOrder.ASCENDING
    assert decoded.dynamic_groups is True
    assert decoded.immutable == inner
    assert decoded.get_all(0x3C0) == (1, 2)


def test_nested_immutable_extensions_are_refused() -> None:
    inner = TrackExtensions(((TrackExtensionType.IMMUTABLE_EXTENSIONS, b""),))
    w = Writer()
    TrackExtensions.build(immutable=inner).encode(w, DRAFT_16)
    with pytest.raises(ProtocolViolation, match="inside IMMUTABLE_EXTENSIONS"):
        TrackExtensions.decode(Buffer(w.data), DRAFT_16, None)


def test_pairs_are_kept_sorted_and_editable() -> None:
    params = MessageParameters(((0x22, 1), (0x3, b"a"), (0x3, b"b"), (0x2, 5)))
    assert [k for k, _ in params] == [0x2, 0x3, 0x3, 0x22]
    assert params.get_all(0x3) == (b"a", b"b")  # repeated type keeps its order
    assert 0x22 in params and 0x10 not in params
    assert params.with_value(0x2, 9).get(0x2) == 9
    assert params.with_value(0x2, None).get(0x2) is None
    assert params.without(0x3, 0x22).items == ((0x2, 5),)
    assert params.with_items((0x10, 1)).get(0x10) == 1
    assert len(params) == 4


def test_draft14_writes_absolute_types_draft16_deltas() -> None:
    params = MessageParameters.build(delivery_timeout=1, max_cache_duration=2)
    w14, w16 = Writer(), Writer()
    params.encode(w14, DRAFT_14)
    params.encode(w16, DRAFT_16)
    assert w14.data == bytes.fromhex("0201 0402")
    assert w16.data == bytes.fromhex("0201 0202")


@pytest.mark.parametrize(
    ("token", "wire"),
    [
        (AuthToken.delete(5), "00 05"),
        (AuthToken.register(5, b"ab", 1), "01 05 01 6162"),
        (AuthToken.use_alias(5), "02 05"),
        (AuthToken.use_value(b"ab", 1), "03 01 6162"),
        (AuthToken.use_value(b""), "03 00"),
    ],
)
def test_token_structure(token: AuthToken, wire: str) -> None:
    raw = bytes.fromhex(wire)
    assert token.encode() == raw
    assert AuthToken.decode(raw) == token


def test_token_shape_is_checked() -> None:
    with pytest.raises(ValueError):
        AuthToken(AuthTokenAliasType.USE_VALUE, alias=1, token_type=0, value=b"")
    with pytest.raises(ValueError):
        AuthToken(AuthTokenAliasType.REGISTER, alias=1)
    with pytest.raises(SessionError) as info:
        AuthToken.decode(b"")
    assert info.value.code == SessionCloseCode.KEY_VALUE_FORMATTING_ERROR


def test_message_parameter_type_values() -> None:
    """The draft-16 IANA table, plus draft-14's MAX_CACHE_DURATION."""
    assert {t.name: int(t) for t in MessageParameterType} == {
        "DELIVERY_TIMEOUT": 0x02,
        "AUTHORIZATION_TOKEN": 0x03,
        "MAX_CACHE_DURATION": 0x04,
        "EXPIRES": 0x08,
        "LARGEST_OBJECT": 0x09,
        "FORWARD": 0x10,
        "SUBSCRIBER_PRIORITY": 0x20,
        "SUBSCRIPTION_FILTER": 0x21,
        "GROUP_ORDER": 0x22,
        "NEW_GROUP_REQUEST": 0x32,
    }
