"""Hypothesis properties of the control-message codec.

* Every message class of both drafts round-trips: decode(encode(m)) == m and the
  bytes re-encode identically.
* Arbitrary bytes (raw, framed with a valid header, or mutated known-good messages)
  only ever produce a message, NeedMoreData or one of our PeerError subclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqt._buffer import MAX_VARINT, Buffer, NeedMoreData, Writer
from moqt.errors import PeerError
from moqt.messages import (
    AuthToken,
    ClientSetup,
    ControlMessage,
    Fetch,
    FetchCancel,
    FetchError,
    FetchOk,
    Goaway,
    JoiningFetch,
    MaxRequestId,
    MessageParameters,
    MessageParameterType,
    Namespace,
    NamespaceDone,
    Publish,
    PublishDone,
    PublishError,
    PublishNamespace,
    PublishNamespaceCancel,
    PublishNamespaceDone,
    PublishNamespaceError,
    PublishNamespaceOk,
    PublishOk,
    RequestError,
    RequestOk,
    RequestsBlocked,
    RequestUpdate,
    ServerSetup,
    SetupParameters,
    SetupParameterType,
    StandaloneFetch,
    Subscribe,
    SubscribeError,
    SubscribeNamespace,
    SubscribeNamespaceError,
    SubscribeNamespaceOk,
    SubscribeOk,
    SubscribeOptions,
    SubscribeUpdate,
    TrackExtensions,
    TrackExtensionType,
    TrackStatus,
    TrackStatusError,
    TrackStatusOk,
    Unsubscribe,
    UnsubscribeNamespace,
    decode_control,
    encode_control,
    message_types,
)
from moqt.types import FetchType, GroupOrder, Location, SubscriptionFilter
from moqt.version import DRAFT_14, DRAFT_16

from .cases_control import CASES

VERSIONS = (DRAFT_14, DRAFT_16)
T = MessageParameterType

varints = st.integers(0, MAX_VARINT)
small = st.integers(0, 1 << 20)
uint8 = st.integers(0, 255)
names = st.binary(max_size=12)
namespaces = st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=32).map(tuple)
prefixes16 = st.lists(st.binary(min_size=1, max_size=6), min_size=0, max_size=32).map(tuple)
reasons = st.text(max_size=20)
locations = st.builds(Location, varints, varints)
delivered_orders = st.sampled_from([GroupOrder.ASCENDING, GroupOrder.DESCENDING])
optional_orders = st.none() | delivered_orders


@st.composite
def filters(draw: st.DrawFn) -> SubscriptionFilter:
    kind = draw(st.integers(1, 4))
    if kind == 1:
        return SubscriptionFilter.next_group_start()
    if kind == 2:
        return SubscriptionFilter.largest_object()
    start = draw(locations)
    if kind == 3:
        return SubscriptionFilter.absolute_start(start)
    return SubscriptionFilter.absolute_range(start, draw(st.integers(start.group, MAX_VARINT)))


tokens = st.one_of(
    st.builds(AuthToken.use_value, st.binary(max_size=20), varints),
    st.builds(AuthToken.register, varints, st.binary(max_size=20), varints),
    st.builds(AuthToken.use_alias, varints),
    st.builds(AuthToken.delete, varints),
)


def _unknown_pairs(known: frozenset[int]) -> st.SearchStrategy[tuple[tuple[int, int | bytes], ...]]:
    """Up to 4 pairs of types outside ``known`` (repeats allowed), even -> int, odd -> bytes."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[tuple[int, int | bytes], ...]:
        pairs: list[tuple[int, int | bytes]] = []
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.integers(0, 1 << 40).filter(lambda k: k not in known))
            value: int | bytes = draw(varints) if key % 2 == 0 else draw(st.binary(max_size=10))
            pairs.append((key, value))
        return tuple(pairs)

    return build()


registering_tokens = st.one_of(
    st.builds(AuthToken.use_value, st.binary(max_size=20), varints),
    st.builds(AuthToken.register, varints, st.binary(max_size=20), varints),
)


@st.composite
def setup_parameters(draw: st.DrawFn, *, client16: bool = False) -> SetupParameters:
    """``client16``: a draft-16 CLIENT_SETUP may not DELETE or USE_ALIAS a token."""
    return SetupParameters.build(
        path=draw(st.none() | st.text(max_size=10)),
        authority=draw(st.none() | st.text(max_size=10)),
        max_request_id=draw(st.none() | varints),
        max_auth_token_cache_size=draw(st.none() | varints),
        implementation=draw(st.none() | st.text(max_size=10)),
        auth_tokens=tuple(draw(st.lists(registering_tokens if client16 else tokens, max_size=2))),
        extra=draw(_unknown_pairs(frozenset(SetupParameterType))),
    )


def message_parameters(
    version: int, *, lifted: frozenset[int] = frozenset()
) -> st.SearchStrategy[MessageParameters]:
    """Valid parameters for ``version`` without the types a message lifts into fields."""

    @st.composite
    def build(draw: st.DrawFn) -> MessageParameters:
        def maybe(key: int, strategy: st.SearchStrategy[Any]) -> Any:
            return None if key in lifted else draw(st.none() | strategy)

        common: dict[str, Any] = {
            "auth_tokens": tuple(draw(st.lists(tokens, max_size=2))),
            "delivery_timeout": maybe(T.DELIVERY_TIMEOUT, st.integers(1, MAX_VARINT)),
        }
        if version == DRAFT_14:
            return MessageParameters.build(
                **common,
                max_cache_duration=maybe(T.MAX_CACHE_DURATION, varints),
                extra=draw(_unknown_pairs(frozenset({2, 3, 4}))),
            )
        return MessageParameters.build(
            **common,
            expires=maybe(T.EXPIRES, varints),
            largest_object=maybe(T.LARGEST_OBJECT, locations),
            forward=maybe(T.FORWARD, st.booleans()),
            subscriber_priority=maybe(T.SUBSCRIBER_PRIORITY, uint8),
            subscription_filter=maybe(T.SUBSCRIPTION_FILTER, filters()),
            group_order=maybe(T.GROUP_ORDER, delivered_orders),
            new_group_request=maybe(T.NEW_GROUP_REQUEST, varints),
            # Kept only when decoding with strict_parameters=False (see test_round_trip).
            extra=draw(_unknown_pairs(frozenset(MessageParameterType))),
        )

    return build()


@st.composite
def track_extensions(draw: st.DrawFn, *, nested: bool = True) -> TrackExtensions:
    return TrackExtensions.build(
        delivery_timeout=draw(st.none() | st.integers(1, MAX_VARINT)),
        max_cache_duration=draw(st.none() | varints),
        default_publisher_priority=draw(st.none() | uint8),
        default_publisher_group_order=draw(st.none() | delivered_orders),
        dynamic_groups=draw(st.none() | st.booleans()),
        immutable=draw(st.none() | track_extensions(nested=False)) if nested else None,
        extra=draw(_unknown_pairs(frozenset(TrackExtensionType))),
    )


def _params(version: int, *lifted: int) -> st.SearchStrategy[MessageParameters]:
    return message_parameters(version, lifted=frozenset(lifted))


def _exts(version: int) -> st.SearchStrategy[TrackExtensions]:
    return track_extensions() if version == DRAFT_16 else st.just(TrackExtensions())


def _subscribe_like(
    cls: type[Subscribe] | type[TrackStatus], v: int
) -> st.SearchStrategy[ControlMessage]:
    d16 = v == DRAFT_16
    return st.builds(
        cls,
        request_id=varints,
        namespace=namespaces,
        name=names,
        subscriber_priority=(st.none() | uint8) if d16 else uint8,
        group_order=optional_orders,
        forward=(st.none() | st.booleans()) if d16 else st.booleans(),
        filter=(st.none() | filters()) if d16 else filters(),
        parameters=_params(
            v, T.SUBSCRIBER_PRIORITY, T.GROUP_ORDER, T.FORWARD, T.SUBSCRIPTION_FILTER
        ),
    )


def _subscribe_ok_like(
    cls: type[SubscribeOk] | type[TrackStatusOk], v: int
) -> st.SearchStrategy[ControlMessage]:
    d16 = v == DRAFT_16
    return st.builds(
        cls,
        request_id=varints,
        track_alias=varints,
        expires=(st.none() | varints) if d16 else varints,
        group_order=st.none() if d16 else delivered_orders,
        largest=st.none() | locations,
        parameters=_params(v, T.EXPIRES, T.LARGEST_OBJECT),
        track_extensions=_exts(v),
    )


@st.composite
def fetches(draw: st.DrawFn, v: int) -> Fetch:
    d16 = v == DRAFT_16
    kind = draw(st.sampled_from(list(FetchType)))
    standalone = joining = None
    if kind is FetchType.STANDALONE:
        standalone = StandaloneFetch(
            draw(namespaces), draw(names), draw(locations), draw(locations)
        )
    else:
        joining = JoiningFetch(draw(varints), draw(varints))
    return Fetch(
        draw(varints),
        kind,
        standalone,
        joining,
        draw((st.none() | uint8) if d16 else uint8),
        draw(optional_orders),
        draw(_params(v, T.SUBSCRIBER_PRIORITY, T.GROUP_ORDER)),
    )


def _error(
    cls: Callable[..., ControlMessage],
) -> Callable[[int], st.SearchStrategy[ControlMessage]]:
    return lambda v: st.builds(cls, varints, varints, reasons)


STRATEGIES: dict[type[ControlMessage], Callable[[int], st.SearchStrategy[ControlMessage]]] = {
    ClientSetup: lambda v: st.builds(
        ClientSetup,
        st.just(()) if v == DRAFT_16 else st.lists(varints, min_size=1, max_size=5).map(tuple),
        setup_parameters(client16=v == DRAFT_16),
    ),
    ServerSetup: lambda v: st.builds(
        ServerSetup, st.none() if v == DRAFT_16 else varints, setup_parameters()
    ),
    Goaway: lambda v: st.builds(Goaway, st.text(max_size=40)),
    MaxRequestId: lambda v: st.builds(MaxRequestId, varints),
    RequestsBlocked: lambda v: st.builds(RequestsBlocked, varints),
    RequestOk: lambda v: st.builds(RequestOk, varints, _params(v)),
    RequestError: lambda v: st.builds(RequestError, varints, varints, reasons, varints),
    Subscribe: lambda v: _subscribe_like(Subscribe, v),
    TrackStatus: lambda v: _subscribe_like(TrackStatus, v),
    SubscribeOk: lambda v: _subscribe_ok_like(SubscribeOk, v),
    TrackStatusOk: lambda v: _subscribe_ok_like(TrackStatusOk, v),
    SubscribeError: _error(SubscribeError),
    TrackStatusError: _error(TrackStatusError),
    PublishError: _error(PublishError),
    FetchError: _error(FetchError),
    PublishNamespaceError: _error(PublishNamespaceError),
    SubscribeNamespaceError: _error(SubscribeNamespaceError),
    SubscribeUpdate: lambda v: st.builds(
        SubscribeUpdate, varints, varints, locations, varints, uint8, st.booleans(), _params(v)
    ),
    RequestUpdate: lambda v: st.builds(RequestUpdate, varints, varints, _params(v)),
    Unsubscribe: lambda v: st.builds(Unsubscribe, varints),
    Publish: lambda v: st.builds(
        Publish,
        request_id=varints,
        namespace=namespaces,
        name=names,
        track_alias=varints,
        group_order=st.none() if v == DRAFT_16 else delivered_orders,
        largest=st.none() | locations,
        forward=(st.none() | st.booleans()) if v == DRAFT_16 else st.booleans(),
        parameters=_params(v, T.LARGEST_OBJECT, T.FORWARD),
        track_extensions=_exts(v),
    ),
    PublishOk: lambda v: st.builds(
        PublishOk,
        request_id=varints,
        forward=(st.none() | st.booleans()) if v == DRAFT_16 else st.booleans(),
        subscriber_priority=(st.none() | uint8) if v == DRAFT_16 else uint8,
        group_order=optional_orders if v == DRAFT_16 else delivered_orders,
        filter=(st.none() | filters()) if v == DRAFT_16 else filters(),
        parameters=_params(
            v, T.FORWARD, T.SUBSCRIBER_PRIORITY, T.GROUP_ORDER, T.SUBSCRIPTION_FILTER
        ),
    ),
    PublishDone: lambda v: st.builds(PublishDone, varints, varints, varints, reasons),
    Fetch: fetches,
    FetchOk: lambda v: st.builds(
        FetchOk,
        varints,
        st.booleans(),
        locations,
        st.none() if v == DRAFT_16 else delivered_orders,
        _params(v),
        _exts(v),
    ),
    FetchCancel: lambda v: st.builds(FetchCancel, varints),
    PublishNamespace: lambda v: st.builds(PublishNamespace, varints, namespaces, _params(v)),
    PublishNamespaceOk: lambda v: st.builds(PublishNamespaceOk, varints),
    PublishNamespaceDone: lambda v: (
        st.builds(PublishNamespaceDone, request_id=varints)
        if v == DRAFT_16
        else st.builds(PublishNamespaceDone, namespace=namespaces)
    ),
    PublishNamespaceCancel: lambda v: (
        st.builds(PublishNamespaceCancel, varints, reasons, request_id=varints)
        if v == DRAFT_16
        else st.builds(PublishNamespaceCancel, varints, reasons, namespace=namespaces)
    ),
    SubscribeNamespace: lambda v: st.builds(
        SubscribeNamespace,
        varints,
        prefixes16 if v == DRAFT_16 else namespaces,
        st.sampled_from(list(SubscribeOptions))
        if v == DRAFT_16
        else st.just(SubscribeOptions.BOTH),
        _params(v),
    ),
    SubscribeNamespaceOk: lambda v: st.builds(SubscribeNamespaceOk, varints),
    UnsubscribeNamespace: lambda v: st.builds(UnsubscribeNamespace, namespaces),
    Namespace: lambda v: st.builds(Namespace, prefixes16),
    NamespaceDone: lambda v: st.builds(NamespaceDone, prefixes16),
}

PAIRS = [(cls, v) for v in VERSIONS for cls in message_types(v).values()]


def test_every_message_has_a_strategy() -> None:
    assert {cls for cls, _ in PAIRS} == set(STRATEGIES)


@pytest.mark.parametrize(
    ("cls", "version"), PAIRS, ids=[f"{c.__name__}-d{v & 0xFF}" for c, v in PAIRS]
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(cls: type[ControlMessage], version: int, data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[cls](version))
    assert type(message) is cls
    wire = encode_control(message, version)
    params = getattr(message, "parameters", None)
    unknown = isinstance(params, MessageParameters) and bool(params.unknown_types(version))
    if unknown and version == DRAFT_16:
        with pytest.raises(PeerError):
            decode_control(Buffer(wire), version)
    buf = Buffer(wire)
    decoded = decode_control(buf, version, strict_parameters=False)
    assert buf.eof()
    assert decoded == message
    assert encode_control(decoded, version) == wire


def _decode_all(data: bytes, version: int, strict: bool = True) -> None:
    """Decode messages until the input runs out; only our outcomes are allowed."""
    buf = Buffer(data)
    try:
        while not buf.eof():
            before = buf.position
            decode_control(buf, version, strict_parameters=strict)
            assert buf.position > before
    except (NeedMoreData, PeerError):
        pass


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=200), version=st.sampled_from(VERSIONS), strict=st.booleans())
def test_random_bytes_only_raise_our_errors(data: bytes, version: int, strict: bool) -> None:
    _decode_all(data, version, strict)


@settings(max_examples=600, deadline=None)
@given(
    version=st.sampled_from(VERSIONS),
    data=st.data(),
    payload=st.binary(max_size=120),
    strict=st.booleans(),
)
def test_framed_random_payloads_only_raise_our_errors(
    version: int, data: st.DataObject, payload: bytes, strict: bool
) -> None:
    """A valid header for a real message type, then arbitrary payload bytes."""
    message_type = data.draw(st.sampled_from(sorted(message_types(version))))
    wire = Writer().push_varint(message_type).push_uint16(len(payload)).push_bytes(payload).data
    try:
        decode_control(Buffer(wire), version, strict_parameters=strict)
    except PeerError:
        pass


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_mutated_known_messages_only_raise_our_errors(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(CASES))
    wire = bytearray(case.wire)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(st.integers(0, 255))
    _decode_all(bytes(wire), case.version, data.draw(st.booleans()))
