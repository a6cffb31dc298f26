"""Pin the public surface of the media package and keep its import rule (stdlib only)."""

from __future__ import annotations

import ast
import importlib
import pathlib
import sys

import media

PUBLIC = {
    "media": {
        "CATALOG_TRACK", "CATALOG_TRACK_NAMES", "MSF_CATALOG_TRACK", "AudioSpec", "BroadcastPackager", "Catalog",
        "CatalogError", "CatalogTrack", "CatalogUpdate", "ObjectReady", "TrackPlan", "FfmpegError", "Fmp4Splitter", "Fragment", "GroupAssembler", "InitSegment",
        "LadderSpec", "MalformedBox", "MediaError", "MediaObject", "ProducerReference", "ResumePoint", "TrackInfo",
        "TruncatedStream", "UnexpectedBox", "UnsupportedMedia", "VideoRung", "is_catalog_track", "parse_object", "split_fmp4",
    },
    "media.fmp4": {
        "Fmp4Splitter", "Fragment", "InitSegment", "ProducerReference", "SplitterStatistics", "TrackInfo",
        "is_sync_sample", "parse_fragment", "parse_init_segment", "parse_object", "shift_fragment", "split_fmp4",
    },
    "media.grouping": {"AssemblerStatistics", "GroupAssembler", "MediaObject", "group_slot"},
    "media.packager": {
        "BroadcastPackager", "CatalogUpdate", "ObjectReady", "ResumePoint", "TrackPlan", "build_catalog",
    },
    "media.catalog": {
        "CATALOG_TRACK", "CATALOG_TRACK_NAMES", "MSF_CATALOG_TRACK", "MSF_VERSION", "PACKAGING_CMAF",
        "Catalog", "CatalogTrack", "is_catalog_track",
    },
    "media.ladder": {"DEFAULT_VIDEO_RUNGS", "AudioSpec", "LadderPlan", "LadderSpec", "PlannedVideo", "VideoRung"},
    "media.ffmpeg": {
        "FileSource", "PipeSource", "ProbeResult", "Source", "TestPatternSource", "TranscodeResult",
        "TranscodeStatistics", "Transcoder", "build_ladder_command", "encoder_command", "ffmpeg_exe", "probe",
        "test_pattern_transcoder",
    },
    "media.errors": {
        "CatalogError", "FfmpegError", "MalformedBox", "MediaError", "TruncatedStream", "UnexpectedBox",
        "UnsupportedMedia",
    },
}  # fmt: skip


def test_exports_are_pinned() -> None:
    for name, expected in PUBLIC.items():
        module = importlib.import_module(name)
        assert set(module.__all__) == expected, name
        for attr in expected:
            assert hasattr(module, attr), f"{name}.{attr}"


def test_media_imports_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {
        "media",
        "imageio_ffmpeg",
    }  # the binary's locator, lazily
    for path in pathlib.Path(media.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [] if node.level else [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in allowed, f"{path.name} imports {root}"
