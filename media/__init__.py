"""Media handling: fMP4/CMAF splitting, GOP-to-group mapping, the CMSF catalog, ffmpeg pipelines.

Imports the standard library only (plus the ffmpeg binary at run time).
"""

from .errors import (
    CatalogError,
    FfmpegError,
    MalformedBox,
    MediaError,
    TruncatedStream,
    UnexpectedBox,
    UnsupportedMedia,
)
from .fmp4 import Fmp4Splitter, Fragment, InitSegment, ProducerReference, TrackInfo, split_fmp4
from .grouping import GroupAssembler, MediaObject

__all__ = [
    "CatalogError",
    "FfmpegError",
    "Fmp4Splitter",
    "Fragment",
    "GroupAssembler",
    "InitSegment",
    "MalformedBox",
    "MediaError",
    "MediaObject",
    "ProducerReference",
    "TrackInfo",
    "TruncatedStream",
    "UnexpectedBox",
    "UnsupportedMedia",
    "split_fmp4",
]
