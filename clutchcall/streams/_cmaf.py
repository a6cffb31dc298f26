"""Join single-track CMAF into one playable fragmented MP4 (what a viewer writes to a file).

A broadcast's tracks arrive as separate CMAF tracks, each with its own header
(the catalog's ``initData``: ``ftyp`` + a ``moov`` with one ``trak``) and chunks
(``moof`` + ``mdat``), and every encoder output may call its track 1. One file
needs one header declaring all of them with distinct ids:

* :func:`merge_init_segments` builds ``ftyp`` + ``moov`` (the first header's
  ``mvhd``, every ``trak`` and ``trex`` with its new track id);
* :func:`retag_chunk` rewrites the track id of a chunk (``tfhd``, ``prft``) in
  place, a fixed-size patch that keeps every offset valid.

Malformed input raises :class:`CmafError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from clutchcall.streams._errors import StreamsError

__all__ = ["CmafError", "merge_init_segments", "retag_chunk"]


class CmafError(StreamsError):
    """A CMAF header or chunk could not be parsed."""


@dataclass(frozen=True, slots=True)
class _Box:
    type: str
    start: int  # offset of the box header in the buffer
    header: int  # header length (8 or 16)
    end: int

    @property
    def payload(self) -> int:
        return self.start + self.header


def _boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[_Box]:
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise CmafError(f"truncated box header at offset {pos}")
        size, raw_type = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise CmafError(f"truncated large box header at offset {pos}")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise CmafError(f"box {raw_type!r} at offset {pos} overruns its parent")
        yield _Box(raw_type.decode("latin-1"), pos, header, pos + size)
        pos += size


def _children(data: bytes | bytearray, box: _Box) -> Iterator[_Box]:
    return _boxes(data, box.payload, box.end)


def _make_box(box_type: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", len(payload) + 8, box_type.encode("latin-1")) + payload


def _raw(data: bytes, box: _Box) -> bytes:
    return data[box.start : box.end]


def _with_track_id(data: bytes, box: _Box, offset_v0: int, offset_v1: int, track_id: int) -> bytes:
    """A copy of full box ``box`` with the u32 track id at ``offset_v0``/``_v1`` (after version/flags)."""
    raw = bytearray(_raw(data, box))
    version = raw[box.header]
    at = box.header + 4 + (offset_v1 if version == 1 else offset_v0)
    if at + 4 > len(raw):
        raise CmafError(f"{box.type} too short for a track id")
    struct.pack_into(">I", raw, at, track_id)
    return bytes(raw)


@dataclass(frozen=True, slots=True)
class _Header:
    ftyp: bytes
    mvhd: _Box
    trak: _Box
    trex: _Box | None
    data: bytes


def _parse_header(data: bytes) -> _Header:
    ftyp = b""
    moov: _Box | None = None
    for box in _boxes(data):
        if box.type == "ftyp":
            ftyp = _raw(data, box)
        elif box.type == "moov":
            moov = box
    if moov is None:
        raise CmafError("init segment has no moov")
    mvhd = trak = trex = None
    traks = 0
    for child in _children(data, moov):
        if child.type == "mvhd":
            mvhd = child
        elif child.type == "trak":
            trak = child
            traks += 1
        elif child.type == "mvex":
            for ext in _children(data, child):
                if ext.type == "trex":
                    trex = ext
    if mvhd is None or trak is None:
        raise CmafError("init segment lacks mvhd or trak")
    if traks != 1:
        raise CmafError(f"expected a single-track CMAF header, found {traks} tracks")
    return _Header(ftyp, mvhd, trak, trex, data)


def _retag_trak(h: _Header, track_id: int) -> bytes:
    data = h.data
    parts: list[bytes] = []
    for child in _children(data, h.trak):
        if child.type == "tkhd":
            # v0: creation(4) modification(4) track_ID; v1: creation(8) modification(8) track_ID
            parts.append(_with_track_id(data, child, 8, 16, track_id))
        else:
            parts.append(_raw(data, child))
    return _make_box("trak", b"".join(parts))


def merge_init_segments(inits: Sequence[bytes], track_ids: Sequence[int]) -> bytes:
    """One ``ftyp`` + ``moov`` declaring every single-track header of ``inits``, the
    ``i``-th with track id ``track_ids[i]`` (the first header gives ftyp and mvhd)."""
    if not inits or len(inits) != len(track_ids):
        raise ValueError("one track id per init segment is needed")
    if len(set(track_ids)) != len(track_ids) or min(track_ids) < 1:
        raise ValueError(f"track ids must be distinct and positive: {list(track_ids)}")
    headers = [_parse_header(bytes(d)) for d in inits]
    first = headers[0]
    mvhd = bytearray(_raw(first.data, first.mvhd))
    if len(mvhd) < first.mvhd.header + 4 + 4:
        raise CmafError("mvhd too short")
    struct.pack_into(">I", mvhd, len(mvhd) - 4, max(track_ids) + 1)  # next_track_ID is last
    traks = b"".join(_retag_trak(h, tid) for h, tid in zip(headers, track_ids, strict=True))
    trexes = b""
    for h, tid in zip(headers, track_ids, strict=True):
        if h.trex is None:
            raise CmafError("a fragmented MP4 header needs mvex/trex")
        trexes += _with_track_id(h.data, h.trex, 0, 0, tid)
    moov = _make_box("moov", bytes(mvhd) + traks + _make_box("mvex", trexes))
    return first.ftyp + moov


def retag_chunk(chunk: bytes, track_id: int) -> bytes:
    """``chunk`` (prefix boxes, ``moof``, ``mdat``; maybe several) with every ``tfhd`` and
    ``prft`` naming ``track_id``."""
    data = bytearray(chunk)
    found = False
    for box in _boxes(data):
        if box.type == "prft":
            struct.pack_into(">I", data, box.payload + 4, track_id)
        elif box.type == "moof":
            for traf in _children(data, box):
                if traf.type != "traf":
                    continue
                for child in _children(data, traf):
                    if child.type == "tfhd":
                        if child.end - child.payload < 8:
                            raise CmafError("tfhd too short")
                        struct.pack_into(">I", data, child.payload + 4, track_id)
                        found = True
    if not found:
        raise CmafError("chunk has no moof/traf/tfhd")
    return bytes(data)
