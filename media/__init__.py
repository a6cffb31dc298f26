"""Media handling: fMP4/CMAF splitting, GOP-to-group mapping, the CMSF catalog, ffmpeg pipelines.

Imports the standard library only (plus the ffmpeg binary at run time).
"""

from .catalog import (
    CATALOG_TRACK,
    CATALOG_TRACK_NAMES,
    MSF_CATALOG_TRACK,
    Catalog,
    CatalogTrack,
    is_catalog_track,
)
from .errors import (
    CatalogError,
    FfmpegError,
    MalformedBox,
    MediaError,
    TruncatedStream,
    UnexpectedBox,
    UnsupportedMedia,
)
from .fmp4 import (
    Fmp4Splitter,
    Fragment,
    InitSegment,
    ProducerReference,
    TrackInfo,
    parse_object,
    split_fmp4,
)
from .grouping import GroupAssembler, MediaObject
from .ladder import AudioSpec, LadderSpec, VideoRung
from .packager import BroadcastPackager, CatalogUpdate, ObjectReady, ResumePoint, TrackPlan

__all__ = [
    "CATALOG_TRACK",
    "CATALOG_TRACK_NAMES",
    "MSF_CATALOG_TRACK",
    "AudioSpec",
    "BroadcastPackager",
    "Catalog",
    "CatalogError",
    "CatalogTrack",
    "CatalogUpdate",
    "FfmpegError",
    "Fmp4Splitter",
    "Fragment",
    "GroupAssembler",
    "InitSegment",
    "LadderSpec",
    "MalformedBox",
    "MediaError",
    "MediaObject",
    "ObjectReady",
    "ProducerReference",
    "ResumePoint",
    "TrackInfo",
    "TrackPlan",
    "TruncatedStream",
    "UnexpectedBox",
    "UnsupportedMedia",
    "VideoRung",
    "is_catalog_track",
    "parse_object",
    "split_fmp4",
]
