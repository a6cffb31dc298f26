"""Media handling: fMP4/CMAF splitting, GOP-to-group mapping, the CMSF catalog, ffmpeg pipelines.

The RTMP ingest path, end to end::

    tc = Transcoder(PipeSource(width=w, height=h, has_audio=a), LadderSpec())   # media.ffmpeg
    async with tc:                                    # ingest task: await tc.write(flv); tc.close_input()
        packager = tc.packager(namespace=ns)          # resume=old.resume_point() after a restart
        async for rendition, item in tc:              # InitSegment, then Fragments, per rendition
            for event in packager.push(rendition, item):
                ...  # CatalogUpdate -> publish catalog.to_json() on ".catalog" (new group)
                     # ObjectReady   -> publish event.object.payload at (group_id, object_id)

MoQT fMP4 ingest validates each received object with :func:`parse_object`;
viewers read the catalog with :meth:`Catalog.parse_update` and take each
track's CMAF header from ``initData``.

Imports the standard library only (the ffmpeg binary is located through
imageio-ffmpeg, imported lazily, or ``$CLUTCHCALL_FFMPEG``).
"""

import logging as _logging

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

# A library leaves logging to the program: no output unless the program configures some.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
