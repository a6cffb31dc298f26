"""Namespace messages: PUBLISH_NAMESPACE and its replies, PUBLISH_NAMESPACE_DONE / _CANCEL,
SUBSCRIBE_NAMESPACE and its replies (14), UNSUBSCRIBE_NAMESPACE (14), NAMESPACE and
NAMESPACE_DONE (16, sent on the SUBSCRIBE_NAMESPACE response stream)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, Self

from .._buffer import Buffer, Writer
from ..errors import LocalError, ProtocolViolation
from ..types import Namespace as NamespaceTuple
from ..version import DRAFT_14, DRAFT_16
from ._base import (
    ControlMessage,
    is_draft16,
    pull_namespace,
    pull_reason,
    push_namespace,
    push_reason,
    register,
)
from ._params import MessageParameters

__all__ = [
    "Namespace",
    "NamespaceDone",
    "PublishNamespace",
    "PublishNamespaceCancel",
    "PublishNamespaceDone",
    "PublishNamespaceError",
    "PublishNamespaceOk",
    "SubscribeNamespace",
    "SubscribeNamespaceError",
    "SubscribeNamespaceOk",
    "SubscribeOptions",
    "UnsubscribeNamespace",
]


class SubscribeOptions(enum.IntEnum):
    """Draft-16 SUBSCRIBE_NAMESPACE Subscribe Options: which announcements to send."""

    PUBLISH = 0x0
    NAMESPACE = 0x1
    BOTH = 0x2


def _error_fields(w: Writer, code: int, reason: str) -> bytes:
    w.push_varint(code)
    push_reason(w, reason)
    return w.data


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class PublishNamespace(ControlMessage):
    """PUBLISH_NAMESPACE (0x6): ``Request ID, Track Namespace, Parameters``."""

    TYPE: ClassVar[int] = 0x6

    request_id: int
    namespace: NamespaceTuple
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id)
        push_namespace(w, self.namespace)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        namespace = pull_namespace(buf, version)
        return cls(request_id, namespace, MessageParameters.decode_counted(buf, version))


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class PublishNamespaceOk(ControlMessage):
    """PUBLISH_NAMESPACE_OK (0x7, draft-14): ``Request ID (i)``."""

    TYPE: ClassVar[int] = 0x7

    request_id: int

    def encode_payload(self, version: int) -> bytes:
        return Writer().push_varint(self.request_id).data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(buf.pull_varint())


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class PublishNamespaceError(ControlMessage):
    """PUBLISH_NAMESPACE_ERROR (0x8, draft-14): ``Request ID, Error Code (i), Error Reason``."""

    TYPE: ClassVar[int] = 0x8

    request_id: int
    error_code: int
    reason: str = ""

    def encode_payload(self, version: int) -> bytes:
        return _error_fields(Writer().push_varint(self.request_id), self.error_code, self.reason)

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        code = buf.pull_varint()
        return cls(request_id, code, pull_reason(buf))


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class PublishNamespaceDone(ControlMessage):
    """PUBLISH_NAMESPACE_DONE (0x9).

    Draft-14 names the namespace (``Track Namespace``); draft-16 names the
    PUBLISH_NAMESPACE request (``Request ID (i)``). Set the field your version uses:
    ``namespace`` for draft-14, ``request_id`` for draft-16.
    """

    TYPE: ClassVar[int] = 0x9

    request_id: int | None = None
    namespace: NamespaceTuple | None = None

    def encode_payload(self, version: int) -> bytes:
        w = Writer()
        if is_draft16(version):
            if self.request_id is None or self.namespace is not None:
                raise LocalError("draft-16 PUBLISH_NAMESPACE_DONE carries request_id only")
            return w.push_varint(self.request_id).data
        if self.namespace is None or self.request_id is not None:
            raise LocalError("draft-14 PUBLISH_NAMESPACE_DONE carries namespace only")
        push_namespace(w, self.namespace)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        if is_draft16(version):
            return cls(request_id=buf.pull_varint())
        return cls(namespace=pull_namespace(buf, version))


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class PublishNamespaceCancel(ControlMessage):
    """PUBLISH_NAMESPACE_CANCEL (0xC).

    Draft-14: ``Track Namespace, Error Code (i), Error Reason``; draft-16:
    ``Request ID (i), Error Code (i), Error Reason``. Set ``namespace`` for draft-14,
    ``request_id`` for draft-16.
    """

    TYPE: ClassVar[int] = 0xC

    error_code: int
    reason: str = ""
    request_id: int | None = None
    namespace: NamespaceTuple | None = None

    def encode_payload(self, version: int) -> bytes:
        w = Writer()
        if is_draft16(version):
            if self.request_id is None or self.namespace is not None:
                raise LocalError("draft-16 PUBLISH_NAMESPACE_CANCEL carries request_id only")
            w.push_varint(self.request_id)
        else:
            if self.namespace is None or self.request_id is not None:
                raise LocalError("draft-14 PUBLISH_NAMESPACE_CANCEL carries namespace only")
            push_namespace(w, self.namespace)
        return _error_fields(w, self.error_code, self.reason)

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        if is_draft16(version):
            request_id: int | None = buf.pull_varint()
            namespace = None
        else:
            request_id = None
            namespace = pull_namespace(buf, version)
        code = buf.pull_varint()
        return cls(code, pull_reason(buf), request_id, namespace)


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class SubscribeNamespace(ControlMessage):
    """SUBSCRIBE_NAMESPACE (0x11).

    Draft-14: ``Request ID, Track Namespace Prefix (1..32 fields), Parameters``.
    Draft-16: ``Request ID, Track Namespace Prefix (0..32 fields), Subscribe Options (i),
    Parameters`` (sent on its own bidirectional stream). Draft-14 behaves as
    ``SubscribeOptions.BOTH``, the only value it can carry.
    """

    TYPE: ClassVar[int] = 0x11

    request_id: int
    prefix: NamespaceTuple
    subscribe_options: SubscribeOptions = SubscribeOptions.BOTH
    parameters: MessageParameters = field(default_factory=MessageParameters)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subscribe_options", SubscribeOptions(self.subscribe_options))

    def encode_payload(self, version: int) -> bytes:
        w = Writer().push_varint(self.request_id)
        d16 = is_draft16(version)
        push_namespace(w, self.prefix, allow_empty=d16)
        if d16:
            w.push_varint(self.subscribe_options)
        elif self.subscribe_options is not SubscribeOptions.BOTH:
            raise LocalError("draft-14 SUBSCRIBE_NAMESPACE always asks for both")
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        d16 = is_draft16(version)
        prefix = pull_namespace(buf, version, allow_empty=d16)
        options = SubscribeOptions.BOTH
        if d16:
            raw = buf.pull_varint()
            try:
                options = SubscribeOptions(raw)
            except ValueError:
                raise ProtocolViolation(f"unknown subscribe options {raw:#x}") from None
        return cls(request_id, prefix, options, MessageParameters.decode_counted(buf, version))


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class SubscribeNamespaceOk(ControlMessage):
    """SUBSCRIBE_NAMESPACE_OK (0x12, draft-14): ``Request ID (i)``."""

    TYPE: ClassVar[int] = 0x12

    request_id: int

    def encode_payload(self, version: int) -> bytes:
        return Writer().push_varint(self.request_id).data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(buf.pull_varint())


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class SubscribeNamespaceError(ControlMessage):
    """SUBSCRIBE_NAMESPACE_ERROR (0x13, draft-14): ``Request ID, Error Code (i), Error Reason``."""

    TYPE: ClassVar[int] = 0x13

    request_id: int
    error_code: int
    reason: str = ""

    def encode_payload(self, version: int) -> bytes:
        return _error_fields(Writer().push_varint(self.request_id), self.error_code, self.reason)

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        request_id = buf.pull_varint()
        code = buf.pull_varint()
        return cls(request_id, code, pull_reason(buf))


@register(DRAFT_14)
@dataclass(frozen=True, slots=True)
class UnsubscribeNamespace(ControlMessage):
    """UNSUBSCRIBE_NAMESPACE (0x14, draft-14): ``Track Namespace Prefix``."""

    TYPE: ClassVar[int] = 0x14

    prefix: NamespaceTuple

    def encode_payload(self, version: int) -> bytes:
        w = Writer()
        push_namespace(w, self.prefix)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(pull_namespace(buf, version))


@register(DRAFT_16)
@dataclass(frozen=True, slots=True)
class Namespace(ControlMessage):
    """NAMESPACE (0x8, draft-16): ``Track Namespace Suffix`` - a namespace matching a
    SUBSCRIBE_NAMESPACE prefix, without the prefix fields (sent on its response stream).

    (The class shares its name with the draft's message; the namespace *value* type is
    :data:`moqt.types.Namespace`.)
    """

    TYPE: ClassVar[int] = 0x8

    suffix: NamespaceTuple

    def encode_payload(self, version: int) -> bytes:
        w = Writer()
        push_namespace(w, self.suffix, allow_empty=True)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(pull_namespace(buf, version, allow_empty=True))


@register(DRAFT_16)
@dataclass(frozen=True, slots=True)
class NamespaceDone(ControlMessage):
    """NAMESPACE_DONE (0xE, draft-16): ``Track Namespace Suffix`` no longer published."""

    TYPE: ClassVar[int] = 0xE

    suffix: NamespaceTuple

    def encode_payload(self, version: int) -> bytes:
        w = Writer()
        push_namespace(w, self.suffix, allow_empty=True)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        return cls(pull_namespace(buf, version, allow_empty=True))
