"""Incremental fragmented-MP4 / CMAF splitter.

:class:`Fmp4Splitter` turns an arbitrary byte stream (fed in any chunk sizes)
into :class:`InitSegment` items (``ftyp`` + ``moov``) and :class:`Fragment`
items (optional ``styp``/``sidx``/``prft``/``emsg``, then ``moof`` + ``mdat``, as
one byte string). It never holds more than the fragment in progress plus the
header of the next box, and refuses a fragment larger than ``max_fragment_size``.

Stream rules enforced (each violation is a :class:`MalformedBox` subclass):

- boxes have a printable type and a size at least their header's;
- ``moof``/``mdat`` before any init segment: :class:`UnexpectedBox`;
- ``mdat`` without ``moof``, ``moof`` without ``mdat``: :class:`UnexpectedBox`;
- the stream ends inside a box or a fragment: :class:`TruncatedStream` (from ``close``).

With ``split_tracks=True`` a muxed stream (one ``moof`` with a ``traf`` per
track, as ffmpeg writes audio + video into one file) is cut into single-track
init segments and chunks, so every track can become its own MoQT track;
otherwise such a ``moof`` is :class:`UnsupportedMedia`.

No ``sidx`` is needed: live CMAF streams have none, and one that is present is
kept as part of the chunk it precedes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ._boxes import box_header
from ._demux import split_init_segment, split_muxed_chunk
from ._fragment import Fragment, ProducerReference, is_sync_sample, parse_fragment, shift_fragment
from ._init import InitSegment, TrackInfo, parse_init_segment
from .errors import MalformedBox, MediaError, TruncatedStream, UnexpectedBox, UnsupportedMedia

__all__ = [
    "Fmp4Splitter",
    "Fragment",
    "InitSegment",
    "ProducerReference",
    "SplitterStatistics",
    "TrackInfo",
    "is_sync_sample",
    "parse_fragment",
    "parse_init_segment",
    "parse_object",
    "shift_fragment",
    "split_fmp4",
]

# Boxes that may precede a moof inside one CMAF chunk.
_CHUNK_PREFIX = frozenset({"styp", "sidx", "ssix", "prft", "emsg"})
# Boxes with no meaning for a live consumer, dropped when they stand between chunks.
_IGNORED = frozenset({"free", "skip", "mfra", "wide", "pdin", "uuid", "meta"})

DEFAULT_MAX_FRAGMENT_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_INIT_SIZE = 4 * 1024 * 1024

Item = InitSegment | Fragment


@dataclass(frozen=True, slots=True)
class SplitterStatistics:
    bytes_in: int
    init_segments: int
    fragments: int
    keyframes: int
    buffered: int
    dropped_boxes: int


class Fmp4Splitter:
    """Feed bytes, get init segments and media fragments back as soon as they are complete."""

    def __init__(
        self,
        *,
        max_fragment_size: int = DEFAULT_MAX_FRAGMENT_SIZE,
        max_init_size: int = DEFAULT_MAX_INIT_SIZE,
        split_tracks: bool = False,
        init: InitSegment | None = None,
    ) -> None:
        """``init``: a header known out of band (the catalog's ``initData``), so a
        stream that starts directly with fragments (a late joiner's) is accepted."""
        self._split_tracks = split_tracks
        self._max_fragment = max_fragment_size
        self._max_init = max_init_size
        self._buf = bytearray()
        self._scan = 0  # offset in _buf of the next box not yet examined
        self._ftyp: bytes | None = None  # an ftyp waiting for its moov
        self._moof_pending = False
        self._init: InitSegment | None = init
        self._consumed = 0  # stream offset of _buf[0], for error messages
        self._closed = False
        self._bytes_in = 0
        self._inits = 0
        self._fragments = 0
        self._keyframes = 0
        self._dropped = 0
        self._error: MediaError | None = None

    @property
    def init(self) -> InitSegment | None:
        """The latest init segment, or ``None`` before the first one."""
        return self._init

    def statistics(self) -> SplitterStatistics:
        return SplitterStatistics(
            bytes_in=self._bytes_in,
            init_segments=self._inits,
            fragments=self._fragments,
            keyframes=self._keyframes,
            buffered=len(self._buf),
            dropped_boxes=self._dropped,
        )

    def feed(self, data: bytes | bytearray | memoryview) -> list[Item]:
        """Add bytes; return every item they complete, in stream order.

        A :class:`MediaError` is terminal: the stream is broken and every later
        call raises the same error again.
        """
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("feed() after close()")
        self._bytes_in += len(data)
        self._buf += data
        try:
            return self._parse()
        except MediaError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _parse(self) -> list[Item]:
        items: list[Item] = []
        while True:
            header = box_header(self._buf, self._scan, len(self._buf))
            if header is None:
                break
            box_type, size, _ = header
            offset = self._consumed + self._scan
            if size == 0:
                raise MalformedBox(
                    "box size 0 (extends to end of file) cannot be streamed",
                    box_type=box_type,
                    offset=offset,
                )
            limit = self._max_init if self._init is None else self._max_fragment
            if self._scan + size > limit:
                raise MalformedBox(
                    f"box would make the fragment exceed {limit} bytes",
                    box_type=box_type,
                    offset=offset,
                )
            if self._scan + size > len(self._buf):
                break
            item = self._complete_box(box_type, self._scan + size, offset)
            items.extend(item)
        return items

    def close(self) -> None:
        """Declare the end of the stream; raise :class:`TruncatedStream` if it ended mid-box or mid-fragment."""
        if self._error is not None:
            raise self._error
        self._closed = True
        if self._buf or self._ftyp is not None:
            what = "a moof without its mdat" if self._moof_pending else "an incomplete box"
            if self._ftyp is not None and not self._buf:
                what = "an ftyp without its moov"
            raise TruncatedStream(
                f"stream ended inside {what} ({len(self._buf)} bytes pending)",
                offset=self._consumed,
            )

    # -- internals ---------------------------------------------------------------------------

    def _take(self, end: int) -> bytes:
        """Remove and return ``_buf[:end]``."""
        out = bytes(self._buf[:end])
        del self._buf[:end]
        self._consumed += end
        self._scan = 0
        return out

    def _complete_box(self, box_type: str, end: int, offset: int) -> list[Item]:
        chunk_open = self._scan > 0 or self._moof_pending
        if box_type in ("ftyp", "moov"):
            if chunk_open:
                raise UnexpectedBox(
                    "init segment box inside an unfinished fragment",
                    box_type=box_type,
                    offset=offset,
                )
            raw = self._take(end)
            if box_type == "ftyp":
                self._ftyp = raw
                return []
            data = (self._ftyp or b"") + raw
            self._ftyp = None
            self._init = parse_init_segment(data)
            inits = split_init_segment(self._init) if self._split_tracks else [self._init]
            self._inits += len(inits)
            return list(inits)
        if self._ftyp is not None:
            raise UnexpectedBox("ftyp must be followed by moov", box_type=box_type, offset=offset)
        if box_type == "moof":
            if self._init is None:
                raise UnexpectedBox(
                    "moof before the init segment (ftyp + moov)", box_type=box_type, offset=offset
                )
            if self._moof_pending:
                raise UnexpectedBox(
                    "moof without mdat: a second moof arrived", box_type=box_type, offset=offset
                )
            self._moof_pending = True
            self._scan = end
            return []
        if box_type == "mdat":
            if self._init is None:
                raise UnexpectedBox(
                    "mdat before the init segment (ftyp + moov)", box_type=box_type, offset=offset
                )
            if not self._moof_pending:
                raise UnexpectedBox(
                    "mdat without a preceding moof", box_type=box_type, offset=offset
                )
            self._moof_pending = False
            chunk = self._take(end)
            chunks = split_muxed_chunk(chunk, self._init) if self._split_tracks else [chunk]
            fragments: list[Item] = []
            for data in chunks:
                fragment = parse_fragment(data, self._init)
                self._fragments += 1
                self._keyframes += fragment.keyframe
                fragments.append(fragment)
            return fragments
        if box_type in _CHUNK_PREFIX:
            if self._moof_pending:
                raise UnexpectedBox("box between moof and mdat", box_type=box_type, offset=offset)
            if self._init is None:  # a styp or sidx before the init segment is meaningless
                self._take(end)
                self._dropped += 1
                return []
            self._scan = end
            return []
        # free/skip/mfra/unknown: dropped between chunks, kept inside one (it is harmless there).
        if chunk_open:
            self._scan = end
        else:
            self._take(end)
            self._dropped += 1
        return []


def split_fmp4(data: bytes, *, split_tracks: bool = False) -> list[Item]:
    """Split a complete fMP4 byte string; raise if it does not end on a box boundary."""
    size = max(len(data), 1)
    splitter = Fmp4Splitter(max_fragment_size=size, max_init_size=size, split_tracks=split_tracks)
    items = splitter.feed(data)
    splitter.close()
    return items


def parse_object(
    payload: bytes, init: InitSegment, *, group_start: bool = False
) -> tuple[Fragment, ...]:
    """Validate one received MoQT object against CMSF "Object Packaging" and parse its chunks.

    The payload must be one or more whole CMAF chunks (each optional
    ``styp``/``prft``/``emsg`` + ``moof`` + ``mdat``) of one track declared by
    ``init``, in decode order; the first object of a group must start with a SAP
    (type 1 or 2). Anything else raises a :class:`MediaError` subclass, so an
    ingest can refuse a publisher before any byte reaches a viewer.
    """
    if not payload:
        raise MalformedBox("empty object payload")
    # the header travels in the catalog, not in the object
    splitter = Fmp4Splitter(init=init)
    items = splitter.feed(payload)
    splitter.close()
    fragments = tuple(i for i in items if isinstance(i, Fragment))
    if len(fragments) != len(items):
        raise UnexpectedBox(
            "an object carries an init segment; CMSF puts it in the catalog's initData"
        )
    if not fragments:
        raise MalformedBox("object holds no moof + mdat chunk")
    if len({f.track_id for f in fragments}) != 1:
        raise UnsupportedMedia("an object must carry a single track")
    for before, after in itertools.pairwise(fragments):
        if after.base_media_decode_time < before.end_time:
            raise MalformedBox("chunks of an object are not in decode order", box_type="tfdt")
    if group_start and not fragments[0].keyframe:
        raise UnexpectedBox("the first object of a group does not start with a SAP (keyframe)")
    return fragments
