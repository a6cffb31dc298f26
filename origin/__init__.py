"""The origin role: publisher admission, MoQT fMP4 and RTMP ingest, the ABR ladder, serving POPs.

:class:`OriginNode` runs one origin (``clutchcall origin``). Both ingest paths end
as the same tracks in the relay: a :class:`Broadcast` per live input (the CMSF
catalog on ``.catalog`` and ``catalog``, one track per rendition) under
``stream/<org_id>/<external_input_id>``.
"""

from .broadcast import Broadcast, BroadcastStatistics, namespace_of, namespace_text
from .moqt_ingest import MalformedStream, MoqtIngest
from .node import OriginNode, OriginStatistics
from .rtmp_ingest import RtmpIngest, RtmpIngestSettings, RtmpIngestStatistics
from .settings import OriginNodeSettings
from .status import INPUT_STATUS_CHANNEL, INPUT_STATUS_PREFIX, InputStatus, StatusReporter

__all__ = [
    "INPUT_STATUS_CHANNEL",
    "INPUT_STATUS_PREFIX",
    "Broadcast",
    "BroadcastStatistics",
    "InputStatus",
    "MalformedStream",
    "MoqtIngest",
    "OriginNode",
    "OriginNodeSettings",
    "OriginStatistics",
    "RtmpIngest",
    "RtmpIngestSettings",
    "RtmpIngestStatistics",
    "StatusReporter",
    "namespace_of",
    "namespace_text",
]
