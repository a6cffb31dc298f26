"""PUBLISH (a publisher-initiated subscription) and PUBLISH_OK, PUBLISH_ERROR (14), PUBLISH_DONE."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from .._buffer import Buffer, Writer
from ..errors import LocalError
from ..types import GroupOrder, Location, Namespace, SubscriptionFilter, TrackName
from ..version import DRAFT_14, DRAFT_16
from ._base import (
    ControlMessage,
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
from ._params import MessageParameters, MessageParameterType, TrackExtensions, encode_location_value
from .subscribe import (
    UNFILTERED,
    bool_param,
    check_priority,
    filter_param,
    group_order_or_none,
    merge_lifted,
    order_param,
    priority_field,
    pull_group_order,
    push_delivered_group_order,
)

__all__ = ["Publish", "PublishDone", "PublishError", "PublishOk"]

_T = MessageParameterType


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class Publish(ControlMessage):
    """PUBLISH (0x1D).

    Draft-14: ``Request ID, Track Namespace, Track Name, Track Alias (i), Group Order (8),
    Content Exists (8), [Largest Location], Forward (8), Parameters``.
    Draft-16: ``Request ID, Track Namespace, Track Name, Track Alias (i), Parameters,
    Track Extensions`` with LARGEST_OBJECT and FORWARD as parameters.

    ``largest`` None = nothing published yet; ``forward`` None = absent (forward, 1).
    ``group_order`` exists only in draft-14 (None is written as ASCENDING);
    ``track_extensions`` only in draft-16.
    """

    TYPE: ClassVar[int] = 0x1D

    request_id: int
    namespace: Namespace
    name: TrackName
    track_alias: int
    group_order: GroupOrder | None = None
    largest: Location | None = None
    forward: bool | None = None
    parameters: MessageParameters = field(default_factory=MessageParameters)
    track_extensions: TrackExtensions = field(default_factory=TrackExtensions)

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id)
        push_track_name(w, self.namespace, self.name)
        w.push_varint(self.track_alias)
        if is_draft16(version):
            if self.group_order is not None:
                raise LocalError(
                    "draft-16 PUBLISH has no group order; use the "
                    "DEFAULT_PUBLISHER_GROUP_ORDER track extension"
                )
            largest = None if self.largest is None else encode_location_value(self.largest)
            params = merge_lifted(
                self.parameters, {_T.LARGEST_OBJECT: largest, _T.FORWARD: bool_param(self.forward)}
            )
            params.encode_counted(w, version)
            self.track_extensions.encode(w, version)
            return w.data
        if len(self.track_extensions):
            raise LocalError("draft-14 has no track extensions")
        push_delivered_group_order(w, self.group_order)
        push_flag(w, self.largest is not None)
        if self.largest is not None:
            push_location(w, self.largest)
        push_flag(w, True if self.forward is None else self.forward)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        namespace, name = pull_track_name(buf, version)
        alias = buf.pull_varint()
        if is_draft16(version):
            params = MessageParameters.decode_counted(buf, version)
            extensions = TrackExtensions.decode(buf, version, None)
            return cls(
                request_id,
                namespace,
                name,
                alias,
                largest=params.largest_object,
                forward=params.forward,
                parameters=params.without(_T.LARGEST_OBJECT, _T.FORWARD),
                track_extensions=extensions,
            )
        order = pull_group_order(buf, allow_original=False)
        largest = pull_location(buf) if pull_flag(buf, "content exists") else None
        forward = pull_flag(buf, "forward")
        params = MessageParameters.decode_counted(buf, version)
        return cls(request_id, namespace, name, alias, order, largest, forward, params)


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class PublishOk(ControlMessage):
    """PUBLISH_OK (0x1E).

    Draft-14: ``Request ID, Forward (8), Subscriber Priority (8), Group Order (8),
    Filter Type (i), [Start Location], [End Group], Parameters``. Draft-16:
    ``Request ID, Parameters`` with FORWARD, SUBSCRIBER_PRIORITY, GROUP_ORDER and
    SUBSCRIPTION_FILTER as parameters.

    None = absent (draft-16); draft-14 writes the defaults forward=1, priority 128,
    ASCENDING and no filter (as AbsoluteStart {0, 0}). ORIGINAL group order is
    normalized to None.
    """

    TYPE: ClassVar[int] = 0x1E

    request_id: int
    forward: bool | None = None
    subscriber_priority: int | None = None
    group_order: GroupOrder | None = None
    filter: SubscriptionFilter | None = None
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def __post_init__(self) -> None:
        check_priority(self.subscriber_priority)
        object.__setattr__(self, "group_order", group_order_or_none(self.group_order))

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id)
        if is_draft16(version):
            params = merge_lifted(
                self.parameters,
                {
                    _T.FORWARD: bool_param(self.forward),
                    _T.SUBSCRIBER_PRIORITY: self.subscriber_priority,
                    _T.GROUP_ORDER: order_param(self.group_order),
                    _T.SUBSCRIPTION_FILTER: filter_param(self.filter),
                },
            )
            params.encode_counted(w, version)
            return w.data
        push_flag(w, True if self.forward is None else self.forward)
        w.push_uint8(priority_field(self.subscriber_priority))
        push_delivered_group_order(w, self.group_order)
        push_filter(w, UNFILTERED if self.filter is None else self.filter)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        if is_draft16(version):
            params = MessageParameters.decode_counted(buf, version)
            return cls(
                request_id,
                params.forward,
                params.subscriber_priority,
                params.group_order,
                params.subscription_filter,
                params.without(
                    _T.FORWARD, _T.SUBSCRIBER_PRIORITY, _T.GROUP_ORDER, _T.SUBSCRIPTION_FILTER
                ),
            )
        forward = pull_flag(buf, "forward")
        priority = buf.pull_uint8()
        order = pull_group_order(buf, allow_original=False)
        flt = pull_filter(buf)
        params = MessageParameters.decode_counted(buf, version)
        return cls(request_id, forward, priority, order, flt, params)


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class PublishError(ControlMessage):
    """PUBLISH_ERROR (0x1F, draft-14): ``Request ID, Error Code (i), Error Reason``."""

    TYPE: ClassVar[int] = 0x1F

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


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class PublishDone(ControlMessage):
    """PUBLISH_DONE (0xB): ``Request ID, Status Code (i), Stream Count (i), Error Reason``.

    ``status_code`` values are :class:`~moqt.errors.PublishDoneCode`; ``stream_count``
    2^62-1 means "unknown".
    """

    TYPE: ClassVar[int] = 0xB

    request_id: int
    status_code: int
    stream_count: int
    reason: str = ""

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id).push_varint(self.status_code)
        w.push_varint(self.stream_count)
        push_reason(w, self.reason)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        code = buf.pull_varint()
        count = buf.pull_varint()
        return cls(request_id, code, count, pull_reason(buf))
