"""Session-wide control: GOAWAY, MAX_REQUEST_ID, REQUESTS_BLOCKED, and draft-16's
generic request replies REQUEST_OK and REQUEST_ERROR."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from .._buffer import Buffer, Writer
from ..errors import LocalError, ProtocolViolation
from ..version import DRAFT_14, DRAFT_16
from ._base import (
    MAX_GOAWAY_URI_LENGTH,
    ControlMessage,
    decode_utf8,
    pull_reason,
    push_reason,
    register,
)
from ._params import MessageParameters

__all__ = ["Goaway", "MaxRequestId", "RequestError", "RequestOk", "RequestsBlocked"]


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class Goaway(ControlMessage):
    """GOAWAY (0x10): ``New Session URI Length (i), New Session URI (..)`` (at most 8192 bytes).

    An empty URI means "reconnect to the current URI".
    """

    TYPE: ClassVar[int] = 0x10

    new_session_uri: str = ""

    def encode_payload(self, version: int) -> bytes:
        raw = self.new_session_uri.encode()
        if len(raw) > MAX_GOAWAY_URI_LENGTH:
            raise LocalError(f"GOAWAY URI longer than {MAX_GOAWAY_URI_LENGTH} bytes")
        return Writer().push_length_prefixed(raw).data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        size = buf.pull_varint()
        if size > MAX_GOAWAY_URI_LENGTH:
            raise ProtocolViolation(f"GOAWAY URI of {size} bytes (max {MAX_GOAWAY_URI_LENGTH})")
        return cls(decode_utf8(buf.pull_bytes(size), "GOAWAY URI"))


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class MaxRequestId(ControlMessage):
    """MAX_REQUEST_ID (0x15): ``Max Request ID (i)`` - the new maximum request ID plus 1."""

    TYPE: ClassVar[int] = 0x15

    max_request_id: int

    def encode_payload(self, version: int) -> bytes:
        return Writer().push_varint(self.max_request_id).data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(buf.pull_varint())


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class RequestsBlocked(ControlMessage):
    """REQUESTS_BLOCKED (0x1A): ``Maximum Request ID (i)`` the sender is blocked on."""

    TYPE: ClassVar[int] = 0x1A

    max_request_id: int

    def encode_payload(self, version: int) -> bytes:
        return Writer().push_varint(self.max_request_id).data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(buf.pull_varint())


@register(DRAFT_16)
@dataclass(frozen=True, slots=True)
class RequestOk(ControlMessage):
    """REQUEST_OK (0x7, draft-16): ``Request ID (i), Number of Parameters (i), Parameters``.

    Answers REQUEST_UPDATE, TRACK_STATUS (with LARGEST_OBJECT etc. as SUBSCRIBE_OK
    would set them), SUBSCRIBE_NAMESPACE and PUBLISH_NAMESPACE.
    """

    TYPE: ClassVar[int] = 0x7

    request_id: int
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        return cls(request_id, MessageParameters.decode_counted(buf, version))


@register(DRAFT_16)
@dataclass(frozen=True, slots=True)
class RequestError(ControlMessage):
    """REQUEST_ERROR (0x5, draft-16): ``Request ID (i), Error Code (i), Retry Interval (i),
    Error Reason (Reason Phrase)``.

    ``retry_interval`` is the minimum retry delay in milliseconds plus one; 0 means
    "do not retry". ``error_code`` values are :class:`~moqt.errors.RequestErrorCode`.
    """

    TYPE: ClassVar[int] = 0x5

    request_id: int
    error_code: int
    reason: str = ""
    retry_interval: int = 0

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id).push_varint(self.error_code)
        w.push_varint(self.retry_interval)
        push_reason(w, self.reason)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        code = buf.pull_varint()
        retry = buf.pull_varint()
        return cls(request_id, code, pull_reason(buf), retry)
