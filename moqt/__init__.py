"""MoQT (Media over QUIC Transport), sans-I/O: drafts 16 (primary) and 14.

No asyncio, no sockets, no clock reads; time is passed in as ``now``.
"""

from ._buffer import Buffer, NeedMoreData, Writer, encode_varint
from .errors import (
    LocalError,
    MoqtError,
    PeerError,
    ProtocolViolation,
    PublishDoneCode,
    RequestErrorCode,
    SessionCloseCode,
    SessionError,
)
from .version import ALPN_DRAFT_14, ALPN_DRAFT_16, DRAFT_14, DRAFT_16, SUPPORTED_VERSIONS

__all__ = [
    "ALPN_DRAFT_14",
    "ALPN_DRAFT_16",
    "DRAFT_14",
    "DRAFT_16",
    "SUPPORTED_VERSIONS",
    "Buffer",
    "LocalError",
    "MoqtError",
    "NeedMoreData",
    "PeerError",
    "ProtocolViolation",
    "PublishDoneCode",
    "RequestErrorCode",
    "SessionCloseCode",
    "SessionError",
    "Writer",
    "encode_varint",
]
