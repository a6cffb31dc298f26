"""RTMP ingest for the origin: a sans-I/O RTMP core, an asyncio server, and FLV muxing.

Encoders (OBS, ffmpeg) publish to ``rtmp://<host>/live/<external_input_id>`` with
the stream key as the stream name; :class:`RtmpServer` admits them through an
async authorizer and hands every admitted publish to a sink (see
:mod:`origin.rtmp.publish`). :class:`FlvMuxer` re-muxes what a sink receives into
an FLV byte stream for ``ffmpeg -f flv -i pipe:0``.
"""

from origin.rtmp.amf0 import UNDEFINED, AmfDate, AmfValue, EcmaArray, TypedObject
from origin.rtmp.chunk import ChunkReader, ChunkWriter, MessageType, RtmpMessage
from origin.rtmp.connection import ConnectionLimits, ServerConnection
from origin.rtmp.errors import (
    AmfDecodeError,
    AmfEncodeError,
    ChunkStreamError,
    FlvFormatError,
    HandshakeError,
    LimitExceeded,
    RtmpError,
    RtmpPeerError,
    RtmpProtocolViolation,
    RtmpUsageError,
)
from origin.rtmp.flv import FlvHeader, FlvMuxer, FlvReader, FlvTag, read_flv
from origin.rtmp.flv_sink import FlvSink
from origin.rtmp.publish import (
    Admission,
    Authorizer,
    EndReason,
    InvalidPublishTarget,
    PublishEnd,
    PublishInfo,
    PublishSink,
    PublishTarget,
    SinkFactory,
    parse_publish_target,
)
from origin.rtmp.server import RtmpServer, RtmpServerSettings, RtmpServerStatistics
from origin.rtmp.tags import AudioTagHeader, MediaTag, TagType, VideoTagHeader

__all__ = [
    "UNDEFINED",
    "Admission",
    "AmfDate",
    "AmfDecodeError",
    "AmfEncodeError",
    "AmfValue",
    "AudioTagHeader",
    "Authorizer",
    "ChunkReader",
    "ChunkStreamError",
    "ChunkWriter",
    "ConnectionLimits",
    "EcmaArray",
    "EndReason",
    "FlvFormatError",
    "FlvHeader",
    "FlvMuxer",
    "FlvReader",
    "FlvSink",
    "FlvTag",
    "HandshakeError",
    "InvalidPublishTarget",
    "LimitExceeded",
    "MediaTag",
    "MessageType",
    "PublishEnd",
    "PublishInfo",
    "PublishSink",
    "PublishTarget",
    "RtmpError",
    "RtmpMessage",
    "RtmpPeerError",
    "RtmpProtocolViolation",
    "RtmpServer",
    "RtmpServerSettings",
    "RtmpServerStatistics",
    "RtmpUsageError",
    "ServerConnection",
    "SinkFactory",
    "TagType",
    "TypedObject",
    "VideoTagHeader",
    "parse_publish_target",
    "read_flv",
]
