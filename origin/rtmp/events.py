"""Events emitted by the sans-I/O :class:`~origin.rtmp.connection.ServerConnection`."""

from __future__ import annotations

from dataclasses import dataclass

from origin.rtmp.amf0 import AmfValue
from origin.rtmp.tags import MediaTag

__all__ = [
    "ConnectRequested",
    "Event",
    "HandshakeCompleted",
    "MediaReceived",
    "MetadataReceived",
    "Notice",
    "PlayRequested",
    "PublishFinished",
    "PublishRequested",
]


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """C2 arrived; chunks follow."""


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """``connect``: answer with ``accept_connect`` or ``reject_connect``."""

    transaction_id: float
    app: str
    tc_url: str
    flash_ver: str
    properties: dict[str, AmfValue]


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """``publish`` on a created stream: answer with ``accept_publish`` or ``reject_publish``.

    ``name`` is the raw publish name: it carries the stream key, never log it.
    """

    stream_id: int
    transaction_id: float
    name: str
    publish_type: str


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    """``@setDataFrame onMetaData`` (or a bare ``onMetaData``) on a publishing stream."""

    stream_id: int
    timestamp: int
    metadata: dict[str, AmfValue]


@dataclass(frozen=True, slots=True)
class MediaReceived:
    """An audio or video message on a publishing (or publish-pending) stream."""

    stream_id: int
    tag: MediaTag


@dataclass(frozen=True, slots=True)
class PublishFinished:
    """The publisher ended cleanly (``FCUnpublish``, ``closeStream`` or ``deleteStream``)."""

    stream_id: int
    command: str


@dataclass(frozen=True, slots=True)
class PlayRequested:
    """``play``: this server only ingests; the adapter refuses it."""

    stream_id: int
    transaction_id: float


@dataclass(frozen=True, slots=True)
class Notice:
    """Something odd but harmless was ignored (for logs and counters): ``kind`` is stable."""

    kind: str
    detail: str


type Event = (
    HandshakeCompleted
    | ConnectRequested
    | PublishRequested
    | MetadataReceived
    | MediaReceived
    | PublishFinished
    | PlayRequested
    | Notice
)
