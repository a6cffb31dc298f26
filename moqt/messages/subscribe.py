"""SUBSCRIBE and its replies and follow-ups: SUBSCRIBE_OK, SUBSCRIBE_ERROR (14),
SUBSCRIBE_UPDATE (14) / REQUEST_UPDATE (16), UNSUBSCRIBE.

Fields that draft-14 carries as fixed fields and draft-16 as message parameters
(subscriber priority, group order, forward, filter, expires, largest location) are
dataclass fields here, so one class reads the same in both drafts; ``parameters``
holds only the *other* parameters (authorization tokens, delivery timeout, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

from .._buffer import Buffer, Writer
from ..errors import LocalError, ProtocolViolation
from ..types import GroupOrder, Location, Namespace, SubscriptionFilter, TrackName
from ..version import DRAFT_14, DRAFT_16
from ._base import (
    ControlMessage,
    encode_filter,
    is_draft16,
    pull_filter,
    pull_flag,
    pull_location,
    pull_reason,
    pull_track_name,
    push_filter,
    push_flag,
    push_location,
    push_reason,
    push_track_name,
    register,
)
from ._params import (
    KeyValue,
    MessageParameters,
    MessageParameterType,
    TrackExtensions,
    encode_location_value,
)

__all__ = [
    "DEFAULT_SUBSCRIBER_PRIORITY",
    "RequestUpdate",
    "Subscribe",
    "SubscribeError",
    "SubscribeOk",
    "SubscribeUpdate",
    "Unsubscribe",
]

DEFAULT_SUBSCRIBER_PRIORITY = 128
_T = MessageParameterType


# --- helpers shared with publish / fetch / track_status ------------------------------


def merge_lifted(
    params: MessageParameters, lifted: dict[int, int | bytes | None]
) -> MessageParameters:
    """``params`` plus the draft-16 parameters that mirror dataclass fields."""
    clash = params.types() & lifted.keys()
    if clash:
        raise LocalError(
            f"parameter {min(clash):#x} is a message field; set the field, not parameters"
        )
    extra: list[KeyValue] = [(k, v) for k, v in lifted.items() if v is not None]
    return params.with_items(*extra)


def group_order_or_none(value: GroupOrder | None) -> GroupOrder | None:
    """ORIGINAL (draft-14's 0x0) and None both mean "the publisher's order"."""
    if value is None or value == GroupOrder.ORIGINAL:
        return None
    return GroupOrder(value)


def pull_group_order(buf: Buffer, *, allow_original: bool) -> GroupOrder:
    value = buf.pull_uint8()
    low = 0 if allow_original else 1
    if not low <= value <= 2:
        raise ProtocolViolation(f"group order {value} ({low}..2)")
    return GroupOrder(value)


def push_delivered_group_order(w: Writer, value: GroupOrder | None) -> None:
    """Draft-14 Group Order in a reply: Ascending or Descending (None -> Ascending)."""
    order = GroupOrder.ASCENDING if value is None else value
    if order == GroupOrder.ORIGINAL:
        raise LocalError("a reply's group order is ASCENDING or DESCENDING")
    w.push_uint8(order)


def check_priority(value: int | None) -> None:
    if value is not None and not 0 <= value <= 255:
        raise ValueError(f"subscriber priority {value} outside 0..255")


def priority_field(value: int | None) -> int:
    return DEFAULT_SUBSCRIBER_PRIORITY if value is None else value


def bool_param(value: bool | None) -> int | None:
    return None if value is None else int(value)


def order_param(value: GroupOrder | None) -> int | None:
    return None if value is None else int(value)


def filter_param(value: SubscriptionFilter | None) -> bytes | None:
    return None if value is None else encode_filter(value)


class SubscribeFields(Protocol):
    """What SUBSCRIBE and TRACK_STATUS share (their layouts are identical)."""

    @property
    def request_id(self) -> int: ...
    @property
    def namespace(self) -> Namespace: ...
    @property
    def name(self) -> TrackName: ...
    @property
    def subscriber_priority(self) -> int | None: ...
    @property
    def group_order(self) -> GroupOrder | None: ...
    @property
    def forward(self) -> bool | None: ...
    @property
    def filter(self) -> SubscriptionFilter | None: ...
    @property
    def parameters(self) -> MessageParameters: ...


class SubscribeOkFields(Protocol):
    """What SUBSCRIBE_OK and draft-14 TRACK_STATUS_OK share."""

    @property
    def request_id(self) -> int: ...
    @property
    def track_alias(self) -> int: ...
    @property
    def expires(self) -> int | None: ...
    @property
    def group_order(self) -> GroupOrder | None: ...
    @property
    def largest(self) -> Location | None: ...
    @property
    def parameters(self) -> MessageParameters: ...
    @property
    def track_extensions(self) -> TrackExtensions: ...


# Draft-14 has no "unfiltered" SUBSCRIBE; draft-16 defines AbsoluteStart {0, 0} as its equivalent.
UNFILTERED = SubscriptionFilter.absolute_start(Location(0, 0))


def encode_subscribe_like(msg: SubscribeFields, version: int) -> bytes:
    """SUBSCRIBE / TRACK_STATUS payload (identical layouts)."""
    w = Writer().push_varint(msg.request_id)
    push_track_name(w, msg.namespace, msg.name)
    if is_draft16(version):
        params = merge_lifted(
            msg.parameters,
            {
                _T.SUBSCRIBER_PRIORITY: msg.subscriber_priority,
                _T.GROUP_ORDER: order_param(msg.group_order),
                _T.FORWARD: bool_param(msg.forward),
                _T.SUBSCRIPTION_FILTER: filter_param(msg.filter),
            },
        )
    else:
        params = msg.parameters
        w.push_uint8(priority_field(msg.subscriber_priority))
        w.push_uint8(0 if msg.group_order is None else msg.group_order)
        push_flag(w, True if msg.forward is None else msg.forward)
        push_filter(w, UNFILTERED if msg.filter is None else msg.filter)
    params.encode_counted(w, version)
    return w.data


def decode_subscribe_like(buf: Buffer, version: int) -> dict[str, Any]:
    request_id = buf.pull_varint()
    namespace, name = pull_track_name(buf, version)
    fields: dict[str, Any] = {"request_id": request_id, "namespace": namespace, "name": name}
    if is_draft16(version):
        params = MessageParameters.decode_counted(buf, version)
        fields["subscriber_priority"] = params.subscriber_priority
        fields["group_order"] = params.group_order
        fields["forward"] = params.forward
        fields["filter"] = params.subscription_filter
        params = params.without(
            _T.SUBSCRIBER_PRIORITY, _T.GROUP_ORDER, _T.FORWARD, _T.SUBSCRIPTION_FILTER
        )
    else:
        fields["subscriber_priority"] = buf.pull_uint8()
        fields["group_order"] = pull_group_order(buf, allow_original=True)
        fields["forward"] = pull_flag(buf, "forward")
        fields["filter"] = pull_filter(buf)
        params = MessageParameters.decode_counted(buf, version)
    fields["parameters"] = params
    return fields


def encode_subscribe_ok_like(msg: SubscribeOkFields, version: int) -> bytes:
    """SUBSCRIBE_OK / draft-14 TRACK_STATUS_OK payload (identical layouts)."""
    w = Writer().push_varint(msg.request_id).push_varint(msg.track_alias)
    if is_draft16(version):
        if msg.group_order is not None:
            raise LocalError(
                "draft-16 SUBSCRIBE_OK has no group order; use the "
                "DEFAULT_PUBLISHER_GROUP_ORDER track extension"
            )
        largest = None if msg.largest is None else encode_location_value(msg.largest)
        params = merge_lifted(msg.parameters, {_T.EXPIRES: msg.expires, _T.LARGEST_OBJECT: largest})
        params.encode_counted(w, version)
        msg.track_extensions.encode(w, version)
        return w.data
    if len(msg.track_extensions):
        raise LocalError("draft-14 has no track extensions")
    w.push_varint(0 if msg.expires is None else msg.expires)
    push_delivered_group_order(w, msg.group_order)
    push_flag(w, msg.largest is not None)
    if msg.largest is not None:
        push_location(w, msg.largest)
    msg.parameters.encode_counted(w, version)
    return w.data


def decode_subscribe_ok_like(buf: Buffer, version: int) -> dict[str, Any]:
    request_id = buf.pull_varint()
    track_alias = buf.pull_varint()
    fields: dict[str, Any] = {"request_id": request_id, "track_alias": track_alias}
    if is_draft16(version):
        params = MessageParameters.decode_counted(buf, version)
        fields["expires"] = params.expires
        fields["largest"] = params.largest_object
        fields["parameters"] = params.without(_T.EXPIRES, _T.LARGEST_OBJECT)
        fields["track_extensions"] = TrackExtensions.decode(buf, version, None)
        return fields
    fields["expires"] = buf.pull_varint()
    fields["group_order"] = pull_group_order(buf, allow_original=False)
    exists = pull_flag(buf, "content exists")
    fields["largest"] = pull_location(buf) if exists else None
    fields["parameters"] = MessageParameters.decode_counted(buf, version)
    return fields


# --- messages ------------------------------------------------------------------------


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class Subscribe(ControlMessage):
    """SUBSCRIBE (0x3).

    Draft-14: ``Request ID, Track Namespace, Track Name, Subscriber Priority (8),
    Group Order (8), Forward (8), Filter Type (i), [Start Location], [End Group],
    Parameters``. Draft-16: ``Request ID, Track Namespace, Track Name, Parameters``
    with SUBSCRIBER_PRIORITY, GROUP_ORDER, FORWARD and SUBSCRIPTION_FILTER as parameters.

    None means "absent" (draft-16) and the draft's default when a draft-14 field must be
    written: priority 128, the publisher's group order, forward, and no filter (written
    as AbsoluteStart {0, 0}, which draft-16 defines as equivalent). ``group_order``
    ORIGINAL is normalized to None.
    """

    TYPE: ClassVar[int] = 0x3

    request_id: int
    namespace: Namespace
    name: TrackName
    subscriber_priority: int | None = None
    group_order: GroupOrder | None = None
    forward: bool | None = None
    filter: SubscriptionFilter | None = None
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def __post_init__(self) -> None:
        check_priority(self.subscriber_priority)
        object.__setattr__(self, "group_order", group_order_or_none(self.group_order))

    def encode_payload(self, version: int) -> bytes:
        return encode_subscribe_like(self, version)

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(**decode_subscribe_like(buf, version))


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class SubscribeOk(ControlMessage):
    """SUBSCRIBE_OK (0x4).

    Draft-14: ``Request ID, Track Alias, Expires (i), Group Order (8), Content Exists (8),
    [Largest Location], Parameters``. Draft-16: ``Request ID, Track Alias, Parameters,
    Track Extensions`` with EXPIRES and LARGEST_OBJECT as parameters.

    ``largest`` None = no content yet. ``expires`` None = absent (written as 0 in
    draft-14; 0 means "does not expire"). ``group_order`` exists only in draft-14
    (None is written as ASCENDING); draft-16 uses the DEFAULT_PUBLISHER_GROUP_ORDER
    track extension instead. ``track_extensions`` exist only in draft-16.
    """

    TYPE: ClassVar[int] = 0x4

    request_id: int
    track_alias: int
    expires: int | None = None
    group_order: GroupOrder | None = None
    largest: Location | None = None
    parameters: MessageParameters = field(default_factory=MessageParameters)
    track_extensions: TrackExtensions = field(default_factory=TrackExtensions)

    def encode_payload(self, version: int) -> bytes:
        return encode_subscribe_ok_like(self, version)

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(**decode_subscribe_ok_like(buf, version))


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class SubscribeError(ControlMessage):
    """SUBSCRIBE_ERROR (0x5, draft-14): ``Request ID, Error Code (i), Error Reason``."""

    TYPE: ClassVar[int] = 0x5

    request_id: int
    error_code: int
    reason: str = ""

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id).push_varint(self.error_code)
        push_reason(w, self.reason)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        code = buf.pull_varint()
        return cls(request_id, code, pull_reason(buf))


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class SubscribeUpdate(ControlMessage):
    """SUBSCRIBE_UPDATE (0x2, draft-14): ``Request ID, Subscription Request ID,
    Start Location, End Group (i), Subscriber Priority (8), Forward (8), Parameters``.

    ``end_group`` is the wire value: the end group plus 1, 0 = open-ended.
    """

    TYPE: ClassVar[int] = 0x2

    request_id: int
    subscription_request_id: int
    start: Location
    end_group: int
    subscriber_priority: int = DEFAULT_SUBSCRIBER_PRIORITY
    forward: bool = True
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def __post_init__(self) -> None:
        check_priority(self.subscriber_priority)

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id).push_varint(self.subscription_request_id)
        push_location(w, self.start)
        w.push_varint(self.end_group).push_uint8(self.subscriber_priority)
        push_flag(w, self.forward)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        existing = buf.pull_varint()
        start = pull_location(buf)
        end_group = buf.pull_varint()
        priority = buf.pull_uint8()
        forward = pull_flag(buf, "forward")
        params = MessageParameters.decode_counted(buf, version)
        return cls(request_id, existing, start, end_group, priority, forward, params)


@register(DRAFT_16)
@dataclass(frozen=True, slots=True)
class RequestUpdate(ControlMessage):
    """REQUEST_UPDATE (0x2, draft-16): ``Request ID, Existing Request ID, Parameters``.

    What changes (filter, forward, priority, delivery timeout, NEW_GROUP_REQUEST, tokens)
    is read through ``parameters``' typed accessors.
    """

    TYPE: ClassVar[int] = 0x2

    request_id: int
    existing_request_id: int
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id).push_varint(self.existing_request_id)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        existing = buf.pull_varint()
        return cls(request_id, existing, MessageParameters.decode_counted(buf, version))


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class Unsubscribe(ControlMessage):
    """UNSUBSCRIBE (0xA): ``Request ID (i)`` of the subscription to end."""

    TYPE: ClassVar[int] = 0xA

    request_id: int

    def encode_payload(self, version: int) -> bytes:
        return Writer().push_varint(self.request_id).data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(buf.pull_varint())
