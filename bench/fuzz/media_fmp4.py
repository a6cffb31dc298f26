"""fMP4 / CMAF boxes: ``Fmp4Splitter`` (init segment, moov/trak parsing, moof/traf/trun
fragments, muxed-track demux) and ``parse_object`` (CMSF object packaging).

Byte 0: bit 0 splits muxed tracks, bit 1 re-checks each fragment with
``parse_object``; byte 1 is the chunk size the stream is fed in (0: all at once).
Allowed: MediaError (MalformedBox, TruncatedStream, UnexpectedBox, UnsupportedMedia).
"""

from __future__ import annotations

from collections.abc import Iterator

from media.errors import MediaError
from media.fmp4 import Fmp4Splitter, Fragment, InitSegment, parse_object

__all__ = ["TestOneInput", "seeds"]

_LIMIT = 1 << 16


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    split, recheck = bool(data[0] & 1), bool(data[0] & 2)
    step = data[1] or len(data)
    body = data[2:]
    splitter = Fmp4Splitter(max_fragment_size=_LIMIT, max_init_size=_LIMIT, split_tracks=split)
    items = []
    try:
        for i in range(0, len(body), step):
            items += splitter.feed(body[i : i + step])
        splitter.close()
    except MediaError:
        pass
    if not recheck:
        return
    init: InitSegment | None = None
    for item in items:
        if isinstance(item, InitSegment):
            init = item
        elif isinstance(item, Fragment) and init is not None:
            try:
                parse_object(item.data, init, group_start=item.keyframe)
            except MediaError:
                pass


def seeds() -> Iterator[bytes]:
    """ffmpeg-made video, audio and muxed CMAF, fed whole and in odd chunks."""
    from bench.fuzz._media_seeds import ffmpeg_fmp4

    for name, data in ffmpeg_fmp4().items():
        flags = 3 if name == "muxed" else 2
        yield bytes((flags, 0)) + data
        yield bytes((flags & 1, 97)) + data
