"""ffmpeg pipelines: ABR ladder transcodes into per-rendition CMAF tracks, test patterns, probing.

- :class:`Transcoder` runs one ffmpeg per input (FLV on stdin, a file, or a lavfi
  test pattern) and yields ``(rendition, InitSegment | Fragment)``.
- :func:`test_pattern_transcoder` is the demo/test source: ``testsrc2`` + ``sine``
  encoded as one video rendition and one audio track, each its own fMP4.
"""

from __future__ import annotations

from ._ffmpeg_cmd import (
    FileSource,
    PipeSource,
    ProbeResult,
    Source,
    TestPatternSource,
    build_ladder_command,
    encoder_command,
    ffmpeg_exe,
    probe,
)
from ._transcoder import Transcoder, TranscodeResult, TranscodeStatistics
from .ladder import AudioSpec, LadderSpec

__all__ = [
    "FileSource",
    "PipeSource",
    "ProbeResult",
    "Source",
    "TestPatternSource",
    "TranscodeResult",
    "TranscodeStatistics",
    "Transcoder",
    "build_ladder_command",
    "encoder_command",
    "ffmpeg_exe",
    "probe",
    "test_pattern_transcoder",
]


def test_pattern_transcoder(
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    duration: float | None = None,
    realtime: bool = True,
    bitrate: int = 800_000,
    audio: bool = True,
    group_duration: float = 2.0,
    chunk_duration: float = 0.5,
    queue_size: int = 64,
) -> Transcoder:
    """A single-rendition transcode of ``testsrc2`` (+ a 440 Hz ``sine`` as AAC) at the given size."""
    source = TestPatternSource(width=width, height=height, fps=fps, duration=duration, realtime=realtime,
                               has_audio=audio)  # fmt: skip
    ladder = LadderSpec.single(
        height,
        bitrate,
        name="video",
        audio=AudioSpec() if audio else None,
        group_duration=group_duration,
        chunk_duration=chunk_duration,
    )
    return Transcoder(source, ladder, queue_size=queue_size)


test_pattern_transcoder.__test__ = False  # type: ignore[attr-defined]
