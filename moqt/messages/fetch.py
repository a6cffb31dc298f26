"""FETCH (standalone, relative joining, absolute joining), FETCH_OK, FETCH_ERROR (14), FETCH_CANCEL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from .._buffer import Buffer, Writer
from ..errors import LocalError, ProtocolViolation
from ..types import FetchType, GroupOrder, Location, Namespace, TrackName
from ..version import DRAFT_14, DRAFT_16
from ._base import (
    ControlMessage,
    is_draft16,
    pull_flag,
    pull_location,
    pull_reason,
    pull_track_name,
    push_flag,
    push_location,
    push_reason,
    push_track_name,
    register,
)
from ._params import MessageParameters, MessageParameterType, TrackExtensions
from .subscribe import (
    check_priority,
    group_order_or_none,
    merge_lifted,
    order_param,
    priority_field,
    pull_group_order,
    push_delivered_group_order,
)

__all__ = ["Fetch", "FetchCancel", "FetchError", "FetchOk", "JoiningFetch", "StandaloneFetch"]

_T = MessageParameterType


@dataclass(frozen=True, slots=True)
class StandaloneFetch:
    """``Track Namespace, Track Name, Start Location, End Location``.

    ``end`` is the last wanted object plus one; ``end.object == 0`` asks for the whole
    end group.
    """

    namespace: Namespace
    name: TrackName
    start: Location
    end: Location


@dataclass(frozen=True, slots=True)
class JoiningFetch:
    """``Joining Request ID (i), Joining Start (i)``: relative (groups before the
    subscription's largest group) or absolute (a group id), per the Fetch Type."""

    joining_request_id: int
    joining_start: int


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class Fetch(ControlMessage):
    """FETCH (0x16).

    Draft-14: ``Request ID, Subscriber Priority (8), Group Order (8), Fetch Type (i),
    [Standalone | Joining], Parameters``. Draft-16: ``Request ID, Fetch Type (i),
    [Standalone | Joining], Parameters`` with SUBSCRIBER_PRIORITY and GROUP_ORDER as
    parameters.

    Exactly one of ``standalone`` (STANDALONE) and ``joining`` (RELATIVE_JOINING,
    ABSOLUTE_JOINING) is set. None priority/group order = absent (draft-16); draft-14
    writes 128 and 0 (the publisher's order). ORIGINAL is normalized to None.
    """

    TYPE: ClassVar[int] = 0x16

    request_id: int
    fetch_type: FetchType
    standalone: StandaloneFetch | None = None
    joining: JoiningFetch | None = None
    subscriber_priority: int | None = None
    group_order: GroupOrder | None = None
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def __post_init__(self) -> None:
        kind = FetchType(self.fetch_type)
        object.__setattr__(self, "fetch_type", kind)
        is_standalone = kind is FetchType.STANDALONE
        if is_standalone != (self.standalone is not None) or is_standalone == (
            self.joining is not None
        ):
            raise ValueError(f"a {kind.name} fetch sets exactly the matching target")
        check_priority(self.subscriber_priority)
        object.__setattr__(self, "group_order", group_order_or_none(self.group_order))

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id)
        d16 = is_draft16(version)
        if not d16:
            w.push_uint8(priority_field(self.subscriber_priority))
            w.push_uint8(0 if self.group_order is None else self.group_order)
        w.push_varint(self.fetch_type)
        if self.standalone is not None:
            push_track_name(w, self.standalone.namespace, self.standalone.name)
            push_location(w, self.standalone.start)
            push_location(w, self.standalone.end)
        elif self.joining is not None:
            w.push_varint(self.joining.joining_request_id).push_varint(self.joining.joining_start)
        params = self.parameters
        if d16:
            params = merge_lifted(
                params,
                {
                    _T.SUBSCRIBER_PRIORITY: self.subscriber_priority,
                    _T.GROUP_ORDER: order_param(self.group_order),
                },
            )
        params.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        d16 = is_draft16(version)
        priority: int | None = None
        order: GroupOrder | None = None
        if not d16:
            priority = buf.pull_uint8()
            order = pull_group_order(buf, allow_original=True)
        raw_type = buf.pull_varint()
        try:
            kind = FetchType(raw_type)
        except ValueError:
            raise ProtocolViolation(f"unknown fetch type {raw_type:#x}") from None
        standalone = joining = None
        if kind is FetchType.STANDALONE:
            namespace, name = pull_track_name(buf, version)
            start = pull_location(buf)
            standalone = StandaloneFetch(namespace, name, start, pull_location(buf))
        else:
            joined = buf.pull_varint()
            joining = JoiningFetch(joined, buf.pull_varint())
        params = MessageParameters.decode_counted(buf, version)
        if d16:
            priority = params.subscriber_priority
            order = params.group_order
            params = params.without(_T.SUBSCRIBER_PRIORITY, _T.GROUP_ORDER)
        return cls(request_id, kind, standalone, joining, priority, order, params)


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class FetchOk(ControlMessage):
    """FETCH_OK (0x18).

    Draft-14: ``Request ID, Group Order (8), End Of Track (8), End Location, Parameters``.
    Draft-16: ``Request ID, End Of Track (8), End Location, Parameters, Track Extensions``.

    ``group_order`` exists only in draft-14 (None is written as ASCENDING);
    ``track_extensions`` only in draft-16.
    """

    TYPE: ClassVar[int] = 0x18

    request_id: int
    end_of_track: bool
    end: Location
    group_order: GroupOrder | None = None
    parameters: MessageParameters = field(default_factory=MessageParameters)
    track_extensions: TrackExtensions = field(default_factory=TrackExtensions)

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id)
        d16 = is_draft16(version)
        if d16:
            if self.group_order is not None:
                raise LocalError("draft-16 FETCH_OK has no group order")
        else:
            if len(self.track_extensions):
                raise LocalError("draft-14 has no track extensions")
            push_delivered_group_order(w, self.group_order)
        push_flag(w, self.end_of_track)
        push_location(w, self.end)
        self.parameters.encode_counted(w, version)
        if d16:
            self.track_extensions.encode(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        d16 = is_draft16(version)
        order = None if d16 else pull_group_order(buf, allow_original=False)
        end_of_track = pull_flag(buf, "end of track")
        end = pull_location(buf)
        params = MessageParameters.decode_counted(buf, version)
        extensions = TrackExtensions.decode(buf, version, None) if d16 else TrackExtensions()
        return cls(request_id, end_of_track, end, order, params, extensions)


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class FetchError(ControlMessage):
    """FETCH_ERROR (0x19, draft-14): ``Request ID, Error Code (i), Error Reason``."""

    TYPE: ClassVar[int] = 0x19

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
class FetchCancel(ControlMessage):
    """FETCH_CANCEL (0x17): ``Request ID (i)`` of the fetch to cancel."""

    TYPE: ClassVar[int] = 0x17

    request_id: int

    def encode_payload(self, version: int) -> bytes:
        return Writer().push_varint(self.request_id).data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(buf.pull_varint())
