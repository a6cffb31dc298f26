"""MoQT (Media over QUIC Transport), sans-I/O: drafts 16 (primary) and 14.

No asyncio, no sockets, no clock reads; time is passed in as ``now``.
The session is :class:`Session`; what it reports is in :mod:`moqt.events`,
the wire codecs are in :mod:`moqt.messages` and :mod:`moqt.data`.
"""

import logging as _logging

from ._buffer import Buffer, NeedMoreData, Writer, encode_varint
from .errors import (
    DataStreamResetCode,
    LocalError,
    MoqtError,
    PeerError,
    ProtocolViolation,
    PublishDoneCode,
    RequestErrorCode,
    SessionCloseCode,
    SessionError,
)
from .session import FetchHandle, RequestBlockedError, Session, SubgroupHandle
from .types import (
    AuthToken,
    FetchType,
    FilterType,
    GroupOrder,
    Location,
    ObjectStatus,
    SubscriptionFilter,
)
from .version import ALPN_DRAFT_14, ALPN_DRAFT_16, DRAFT_14, DRAFT_16, SUPPORTED_VERSIONS

__all__ = [
    "ALPN_DRAFT_14",
    "ALPN_DRAFT_16",
    "DRAFT_14",
    "DRAFT_16",
    "SUPPORTED_VERSIONS",
    "AuthToken",
    "Buffer",
    "DataStreamResetCode",
    "FetchHandle",
    "FetchType",
    "FilterType",
    "GroupOrder",
    "LocalError",
    "Location",
    "MoqtError",
    "NeedMoreData",
    "ObjectStatus",
    "PeerError",
    "ProtocolViolation",
    "PublishDoneCode",
    "RequestBlockedError",
    "RequestErrorCode",
    "Session",
    "SessionCloseCode",
    "SessionError",
    "SubgroupHandle",
    "SubscriptionFilter",
    "Writer",
    "encode_varint",
]

# A library leaves logging to the program: no output unless the program configures some.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
