"""Split a multi-track (muxed) fMP4 into single-track CMAF: one init and one chunk per track.

A muxer such as ffmpeg writing audio and video into one fragmented MP4 puts a
``traf`` per track into each ``moof`` and both tracks' samples into one
``mdat``. CMSF objects carry exactly one track, so each track's samples are
copied into a ``moof`` + ``mdat`` of their own, with the ``trun`` data offsets
rewritten; the movie header is cut into one ``moov`` per ``trak``.
"""

from __future__ import annotations

import struct

from ._boxes import Box, children, iter_boxes, make_box
from ._fragment import (
    TFHD_BASE_DATA_OFFSET,
    TFHD_DEFAULT_DURATION,
    TFHD_DEFAULT_FLAGS,
    TFHD_DEFAULT_SIZE,
    TFHD_SAMPLE_DESCRIPTION_INDEX,
    scan_trun,
)
from ._init import InitSegment, parse_init_segment
from .errors import MalformedBox, UnsupportedMedia

__all__ = ["split_init_segment", "split_muxed_chunk"]

_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000


def split_init_segment(init: InitSegment) -> list[InitSegment]:
    """One single-track init segment per ``trak`` (the init itself when it has one track)."""
    if len(init.tracks) == 1:
        return [init]
    ftyp = b""
    moov: Box | None = None
    for box in iter_boxes(init.data):
        if box.type == "ftyp":
            ftyp = box.raw()
        elif box.type == "moov":
            moov = box
    if moov is None:
        raise MalformedBox("init segment has no moov box")
    header = b""
    shared = b""  # boxes every track needs (pssh: content protection)
    traks: list[Box] = []
    mehd = b""
    trex: dict[int, bytes] = {}
    for child in children(moov):
        if child.type == "mvhd":
            header = child.raw()
        elif child.type == "trak":
            traks.append(child)
        elif child.type == "pssh":
            shared += child.raw()
        elif child.type == "mvex":
            for ext in children(child):
                if ext.type == "mehd":
                    mehd = ext.raw()
                elif ext.type == "trex":
                    trex[
                        int.from_bytes(
                            ext.data[ext.payload_start + 4 : ext.payload_start + 8], "big"
                        )
                    ] = ext.raw()
    out: list[InitSegment] = []
    for track, trak in zip(init.tracks, traks, strict=True):
        mvex = make_box("mvex", mehd + trex.get(track.track_id, b""))
        data = ftyp + make_box("moov", header + trak.raw() + mvex + shared)
        out.append(parse_init_segment(data))
    return out


def split_muxed_chunk(data: bytes, init: InitSegment) -> list[bytes]:
    """Cut one chunk (prefix boxes, ``moof`` with N ``traf``, ``mdat``) into N single-track chunks."""
    prefix: list[Box] = []
    moof: Box | None = None
    mdat: Box | None = None
    for box in iter_boxes(data):
        if box.type == "moof":
            moof = box
        elif box.type == "mdat":
            mdat = box
        elif moof is None and box.type != "sidx":  # a sidx indexes the muxed layout: dropped
            prefix.append(box)
    if moof is None or mdat is None:
        raise MalformedBox("chunk lacks a moof + mdat pair")
    mfhd = b""
    trafs: list[Box] = []
    for child in children(moof):
        if child.type == "mfhd":
            mfhd = child.raw()
        elif child.type == "traf":
            trafs.append(child)
    if len(trafs) <= 1:
        return [data]
    chunks: list[bytes] = []
    base = moof.start
    for traf in trafs:
        body, patches, pieces, base = _rebuild_traf(data, traf, moof, mdat, init, base)
        track_id = _traf_track_id(traf)
        new_moof = bytearray(make_box("moof", mfhd + make_box("traf", body)))
        traf_at = 8 + len(mfhd)
        data_start = len(new_moof) + 8
        for field_pos, piece_offset in patches:
            struct.pack_into(">i", new_moof, traf_at + 8 + field_pos, data_start + piece_offset)
        payload = b"".join(data[s : s + n] for s, n in pieces)
        kept = b"".join(b.raw() for b in prefix if b.type != "prft" or _prft_track(b) == track_id)
        chunks.append(kept + bytes(new_moof) + make_box("mdat", payload))
    return chunks


def _traf_track_id(traf: Box) -> int:
    for child in children(traf):
        if child.type == "tfhd":
            return child.reader(full_box=True).u32()
    raise MalformedBox("traf has no tfhd", box_type="traf", offset=traf.start)


def _prft_track(prft: Box) -> int:
    return prft.reader(full_box=True).u32()


def _rebuild_traf(
    data: bytes, traf: Box, moof: Box, mdat: Box, init: InitSegment, base: int
) -> tuple[bytes, list[tuple[int, int]], list[tuple[int, int]], int]:
    """The traf payload with trun offsets to patch, the sample byte ranges it uses, and where they end."""
    tf_flags = 0
    defaults = (0, 0, 0)
    for child in children(traf):
        if child.type == "tfhd":
            r = child.reader()
            _, tf_flags = r.version_flags()
            track = init.track_by_id(r.u32())
            if track is None:
                raise MalformedBox(
                    "traf for a track the init segment does not declare", box_type="tfhd"
                )
            if tf_flags & TFHD_BASE_DATA_OFFSET:
                raise UnsupportedMedia(
                    "tfhd base-data-offset (absolute file offsets) cannot be re-muxed"
                )
            if tf_flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
                r.u32()
            duration = (
                r.u32() if tf_flags & TFHD_DEFAULT_DURATION else track.default_sample_duration
            )
            size = r.u32() if tf_flags & TFHD_DEFAULT_SIZE else track.default_sample_size
            flags = r.u32() if tf_flags & TFHD_DEFAULT_FLAGS else track.default_sample_flags
            defaults = (duration, size, flags)
    if tf_flags & _TFHD_DEFAULT_BASE_IS_MOOF:
        base = moof.start
    body = bytearray()
    patches: list[
        tuple[int, int]
    ] = []  # (offset of the data_offset field in body, offset in new mdat)
    pieces: list[tuple[int, int]] = []  # (start in data, length)
    cursor = base
    new_offset = 0
    for child in children(traf):
        if child.type == "trun":
            run = scan_trun(child, 0, *defaults)
            if run.data_offset is None:
                if not pieces:
                    raise UnsupportedMedia(
                        "trun without data_offset at the start of a track fragment"
                    )
            else:
                cursor = base + run.data_offset
            if cursor < mdat.payload_start or cursor + run.size > mdat.end:
                raise MalformedBox(
                    "trun sample data lies outside mdat", box_type="trun", offset=child.start
                )
            if run.data_offset is not None:
                patches.append((len(body) + child.header_size + 8, new_offset))
            pieces.append((cursor, run.size))
            cursor += run.size
            new_offset += run.size
        body += child.raw()
    return bytes(body), patches, pieces, cursor
