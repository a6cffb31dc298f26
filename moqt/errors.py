"""Typed MoQT errors that carry their wire codes.

Two families, never mixed: :class:`PeerError` subclasses mean the *peer* broke
the protocol (the session closes with the carried code); :class:`LocalError`
subclasses mean *we* were asked to do something invalid (a programming error in
the caller, never sent on the wire as the peer's fault). The session translates
``PeerError`` into a close in exactly one place.
"""

from __future__ import annotations

import enum

__all__ = [
    "DataStreamResetCode",
    "LocalError",
    "MoqtError",
    "PeerError",
    "ProtocolViolation",
    "PublishDoneCode",
    "RequestErrorCode",
    "SessionCloseCode",
    "SessionError",
]


class SessionCloseCode(enum.IntEnum):
    """Session termination codes (draft-16 section 'Session Termination'; same values in -14)."""

    NO_ERROR = 0x0
    INTERNAL_ERROR = 0x1
    UNAUTHORIZED = 0x2
    PROTOCOL_VIOLATION = 0x3
    INVALID_REQUEST_ID = 0x4
    DUPLICATE_TRACK_ALIAS = 0x5
    KEY_VALUE_FORMATTING_ERROR = 0x6
    TOO_MANY_REQUESTS = 0x7
    INVALID_PATH = 0x8
    MALFORMED_PATH = 0x9
    GOAWAY_TIMEOUT = 0x10
    CONTROL_MESSAGE_TIMEOUT = 0x11
    DATA_STREAM_TIMEOUT = 0x12
    AUTH_TOKEN_CACHE_OVERFLOW = 0x13
    DUPLICATE_AUTH_TOKEN_ALIAS = 0x14
    VERSION_NEGOTIATION_FAILED = 0x15
    MALFORMED_AUTH_TOKEN = 0x16
    UNKNOWN_AUTH_TOKEN_ALIAS = 0x17
    EXPIRED_AUTH_TOKEN = 0x18
    INVALID_AUTHORITY = 0x19
    MALFORMED_AUTHORITY = 0x1A


class RequestErrorCode(enum.IntEnum):
    """REQUEST_ERROR codes (draft-16); draft-14's SUBSCRIBE_ERROR etc. share these values."""

    INTERNAL_ERROR = 0x0
    UNAUTHORIZED = 0x1
    TIMEOUT = 0x2
    NOT_SUPPORTED = 0x3
    MALFORMED_AUTH_TOKEN = 0x4
    EXPIRED_AUTH_TOKEN = 0x5
    DOES_NOT_EXIST = 0x10
    INVALID_RANGE = 0x11
    MALFORMED_TRACK = 0x12
    DUPLICATE_SUBSCRIPTION = 0x19
    UNINTERESTED = 0x20
    PREFIX_OVERLAP = 0x30
    INVALID_JOINING_REQUEST_ID = 0x32


class PublishDoneCode(enum.IntEnum):
    INTERNAL_ERROR = 0x0
    UNAUTHORIZED = 0x1
    TRACK_ENDED = 0x2
    SUBSCRIPTION_ENDED = 0x3
    GOING_AWAY = 0x4
    EXPIRED = 0x5
    TOO_FAR_BEHIND = 0x6
    UPDATE_FAILED = 0x8
    MALFORMED_TRACK = 0x12


class DataStreamResetCode(enum.IntEnum):
    INTERNAL_ERROR = 0x0
    CANCELLED = 0x1
    DELIVERY_TIMEOUT = 0x2
    SESSION_CLOSED = 0x3
    UNKNOWN_OBJECT_STATUS = 0x4
    MALFORMED_TRACK = 0x12


class MoqtError(Exception):
    """Base of every error this package raises on purpose."""


class PeerError(MoqtError):
    """The peer violated the protocol; the session must close with ``code``."""

    code: SessionCloseCode = SessionCloseCode.PROTOCOL_VIOLATION

    def __init__(self, reason: str, code: SessionCloseCode | None = None):
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, code={self.code.name})"


class ProtocolViolation(PeerError):
    """Malformed or out-of-order input: PROTOCOL_VIOLATION unless another code is given."""


class SessionError(PeerError):
    """A session-level fault with a specific termination code (e.g. TOO_MANY_REQUESTS)."""


class LocalError(MoqtError):
    """We (the local application) asked for something the protocol forbids."""
