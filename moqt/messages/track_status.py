"""TRACK_STATUS (same layout as SUBSCRIBE) and draft-14's TRACK_STATUS_OK / TRACK_STATUS_ERROR.

Draft-16 answers TRACK_STATUS with REQUEST_OK / REQUEST_ERROR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from .._buffer import Buffer, Writer
from ..types import GroupOrder, Location, Namespace, SubscriptionFilter, TrackName
from ..version import DRAFT_14, DRAFT_16
from ._base import ControlMessage, pull_reason, push_reason, register
from ._params import MessageParameters, TrackExtensions
from .subscribe import (
    check_priority,
    decode_subscribe_like,
    decode_subscribe_ok_like,
    encode_subscribe_like,
    encode_subscribe_ok_like,
    group_order_or_none,
)

__all__ = ["TrackStatus", "TrackStatusError", "TrackStatusOk"]


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class TrackStatus(ControlMessage):
    """TRACK_STATUS (0xD): the SUBSCRIBE layout (see :class:`~moqt.messages.Subscribe`).

    Draft-16 says delivery parameters (e.g. SUBSCRIBER_PRIORITY) are not included;
    leave those fields None there.
    """

    TYPE: ClassVar[int] = 0xD

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


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class TrackStatusOk(ControlMessage):
    """TRACK_STATUS_OK (0xE, draft-14): the draft-14 SUBSCRIBE_OK layout, Track Alias 0."""

    TYPE: ClassVar[int] = 0xE

    request_id: int
    track_alias: int = 0
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
class TrackStatusError(ControlMessage):
    """TRACK_STATUS_ERROR (0xF, draft-14): ``Request ID, Error Code (i), Error Reason``."""

    TYPE: ClassVar[int] = 0xF

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
