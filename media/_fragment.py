"""Media fragments: one CMAF chunk (optional styp/prft/emsg, then moof + mdat) and its timing."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ._boxes import Box, children, iter_boxes
from ._init import InitSegment
from .errors import MalformedBox, UnexpectedBox, UnsupportedMedia

__all__ = [
    "TFHD_BASE_DATA_OFFSET",
    "TFHD_DEFAULT_DURATION",
    "TFHD_DEFAULT_FLAGS",
    "TFHD_DEFAULT_SIZE",
    "TFHD_SAMPLE_DESCRIPTION_INDEX",
    "Fragment",
    "ProducerReference",
    "TrunSummary",
    "is_sync_sample",
    "parse_fragment",
    "scan_trun",
    "shift_fragment",
]

# 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch), in seconds.
_NTP_UNIX_OFFSET = 2_208_988_800

# tfhd flags
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
TFHD_DEFAULT_DURATION = 0x000008
TFHD_DEFAULT_SIZE = 0x000010
TFHD_DEFAULT_FLAGS = 0x000020
# trun flags
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIRST_FLAGS = 0x000004
_TRUN_DURATION = 0x000100
_TRUN_SIZE = 0x000200
_TRUN_FLAGS = 0x000400
_TRUN_CTO = 0x000800


def is_sync_sample(flags: int) -> bool:
    """Whether ISO-BMFF sample flags describe a stream access point (SAP type 1 or 2).

    ``sample_is_non_sync_sample`` must be clear and ``sample_depends_on`` must not
    be 1 (depends on others). Value 2 (independent) is what CMAF encoders write;
    0 (unknown) with the sync bit set is accepted too, as the sync bit is the
    normative SAP signal.
    """
    depends_on = (flags >> 24) & 0x3
    non_sync = (flags >> 16) & 0x1
    return not non_sync and depends_on != 1


@dataclass(frozen=True, slots=True)
class ProducerReference:
    """A ``prft`` box: the wallclock (NTP) time at which ``media_time`` was produced.

    ``media_time`` is on the track's decode timeline. A version 1 field holding a
    value >= 2**63 is read as the two's-complement negative time it encodes:
    encoders stamp the first AAC chunk with the priming (encoder delay) pts, e.g.
    ffmpeg writes -1024 as 2**64 - 1024. No real decode time comes near 2**63 ticks.
    """

    track_id: int
    ntp_timestamp: int
    media_time: int

    @property
    def wallclock(self) -> float:
        """The NTP timestamp as Unix seconds."""
        return (
            (self.ntp_timestamp >> 32)
            - _NTP_UNIX_OFFSET
            + (self.ntp_timestamp & 0xFFFFFFFF) / 2**32
        )


@dataclass(frozen=True, slots=True)
class Fragment:
    """One CMAF chunk of one track, as its exact bytes plus what ``moof`` says about them.

    Times are in the track's ``timescale`` units.
    """

    data: bytes
    track_id: int
    sequence_number: int
    base_media_decode_time: int
    duration: int
    sample_count: int
    keyframe: bool
    timescale: int
    earliest_presentation_time: int
    prft: ProducerReference | None = None

    @property
    def start_seconds(self) -> float:
        return self.base_media_decode_time / self.timescale

    @property
    def duration_seconds(self) -> float:
        return self.duration / self.timescale

    @property
    def end_time(self) -> int:
        return self.base_media_decode_time + self.duration

    @property
    def wallclock(self) -> float | None:
        """Unix time the producer gives for this chunk's first sample (``prft``), else ``None``.

        ffmpeg's ``-write_prft wallclock`` stamps the moment it wrote the chunk (its
        last sample encoded), so ``receive_time - wallclock`` is the delivery latency
        and a live source captured the first sample about ``duration_seconds`` earlier.
        """
        if self.prft is None:
            return None
        offset = (self.base_media_decode_time - self.prft.media_time) / self.timescale
        return self.prft.wallclock + offset


def parse_fragment(data: bytes, init: InitSegment) -> Fragment:
    """Parse a complete chunk: optional ``styp``/``sidx``/``prft``/``emsg``, then ``moof`` + ``mdat``."""
    moof: Box | None = None
    mdat: Box | None = None
    prft: ProducerReference | None = None
    for box in iter_boxes(data):
        if box.type == "moof":
            if moof is not None:
                raise UnexpectedBox(
                    "two moof boxes in one chunk", box_type="moof", offset=box.start
                )
            moof = box
        elif box.type == "mdat":
            if moof is None:
                raise UnexpectedBox(
                    "mdat without a preceding moof", box_type="mdat", offset=box.start
                )
            mdat = box
        elif box.type == "prft":
            prft = _parse_prft(box)
    if moof is None or mdat is None:
        raise MalformedBox("chunk lacks a moof + mdat pair")

    sequence_number: int | None = None
    trafs: list[Box] = []
    for child in children(moof):
        if child.type == "mfhd":
            sequence_number = child.reader(full_box=True).u32()
        elif child.type == "traf":
            trafs.append(child)
    if sequence_number is None:
        raise MalformedBox("moof has no mfhd", box_type="moof", offset=moof.start)
    if not trafs:
        raise MalformedBox("moof has no traf", box_type="moof", offset=moof.start)
    if len(trafs) > 1:
        raise UnsupportedMedia(
            f"moof carries {len(trafs)} track fragments; CMAF chunks carry one track"
        )
    return _parse_traf(data, trafs[0], moof, mdat, init, sequence_number, prft)


def shift_fragment(fragment: Fragment, ticks: int) -> Fragment:
    """The same chunk with its decode timeline moved by ``ticks`` (tfdt, and prft media time).

    Used to keep one track's timeline increasing across encoder restarts, whose
    new output starts again at 0. A ``tfdt`` that would not fit its version 0
    (32-bit) field is :class:`UnsupportedMedia`. The ``prft`` media time moves
    with the timeline (a negative one becomes positive, see
    :class:`ProducerReference`); a ``prft`` whose moved time its field cannot
    hold is dropped with its box, as it is informative only, so the bytes and
    :attr:`Fragment.prft` always agree (boxes before ``moof`` shift no offsets).
    """
    if ticks == 0:
        return fragment
    new_time = fragment.base_media_decode_time + ticks
    if new_time < 0:
        raise ValueError("a shift cannot move the timeline before 0")
    data = bytearray()
    prft = fragment.prft
    for box in iter_boxes(fragment.data):
        raw = bytearray(fragment.data[box.start : box.end])
        if box.type == "prft":
            moved = _shift_prft(raw, box.payload_start - box.start, ticks)
            if moved is None:
                if prft is not None and _parse_prft(box) == prft:
                    prft = None
                continue
            raw = moved
        elif box.type == "moof":
            for traf in children(box):
                if traf.type != "traf":
                    continue
                for child in children(traf):
                    if child.type == "tfdt":
                        at = child.payload_start - box.start
                        size = 8 if raw[at] == 1 else 4
                        _patch_uint(raw, at + 4, size, new_time)
        data += raw
    if prft is not None:
        prft = replace(prft, media_time=prft.media_time + ticks)
    return replace(
        fragment,
        data=bytes(data),
        base_media_decode_time=new_time,
        earliest_presentation_time=fragment.earliest_presentation_time + ticks,
        prft=prft,
    )


def _shift_prft(raw: bytearray, payload: int, ticks: int) -> bytearray | None:
    """``raw`` (one whole prft box) with its media time moved, or ``None`` if it cannot hold it."""
    version = raw[payload]
    at = payload + 4 + 4 + 8  # version/flags, reference_track_ID, ntp_timestamp
    size = 8 if version == 1 else 4
    if len(raw) < at + size:
        return None
    moved = _decode_media_time(int.from_bytes(raw[at : at + size], "big"), version) + ticks
    if version == 1:
        if not -(1 << 63) <= moved < 1 << 63:
            return None
        moved %= 1 << 64  # two's complement for a time still before 0
    elif not 0 <= moved < 1 << 32:
        return None
    raw[at : at + size] = moved.to_bytes(size, "big")
    return raw


def _decode_media_time(value: int, version: int) -> int:
    if version == 1 and value >= 1 << 63:
        return value - (1 << 64)
    return value


def _patch_uint(data: bytearray, at: int, size: int, value: int) -> None:
    if not 0 <= value < 1 << (8 * size):
        raise UnsupportedMedia(
            f"time {value} does not fit a {8 * size}-bit field; the stream needs version 1 boxes"
        )
    data[at : at + size] = value.to_bytes(size, "big")


def _parse_prft(box: Box) -> ProducerReference:
    r = box.reader()
    version, _ = r.version_flags()
    track_id = r.u32()
    ntp = r.u64()
    media_time = r.u64() if version == 1 else r.u32()
    return ProducerReference(track_id, ntp, _decode_media_time(media_time, version))


def _parse_traf(
    data: bytes,
    traf: Box,
    moof: Box,
    mdat: Box,
    init: InitSegment,
    sequence_number: int,
    prft: ProducerReference | None,
) -> Fragment:
    tfhd = tfdt = None
    truns: list[Box] = []
    for child in children(traf):
        if child.type == "tfhd":
            tfhd = child
        elif child.type == "tfdt":
            tfdt = child
        elif child.type == "trun":
            truns.append(child)
    if tfhd is None:
        raise MalformedBox("traf has no tfhd", box_type="traf", offset=traf.start)
    r = tfhd.reader()
    _, tf_flags = r.version_flags()
    track_id = r.u32()
    track = init.track_by_id(track_id)
    if track is None:
        raise MalformedBox(
            f"traf for track {track_id}, which the init segment does not declare", box_type="tfhd"
        )
    base_offset_absolute = bool(tf_flags & TFHD_BASE_DATA_OFFSET)
    if base_offset_absolute:
        r.u64()
    if tf_flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        r.u32()
    default_duration = (
        r.u32() if tf_flags & TFHD_DEFAULT_DURATION else track.default_sample_duration
    )
    default_size = r.u32() if tf_flags & TFHD_DEFAULT_SIZE else track.default_sample_size
    default_flags = r.u32() if tf_flags & TFHD_DEFAULT_FLAGS else track.default_sample_flags

    if tfdt is None:
        raise MalformedBox("traf has no tfdt (CMAF requires baseMediaDecodeTime)", box_type="traf")
    r = tfdt.reader()
    version, _ = r.version_flags()
    base_time = r.u64() if version == 1 else r.u32()

    duration = 0
    sample_count = 0
    first_flags: int | None = None
    earliest: int | None = None
    for trun in truns:
        run = scan_trun(trun, base_time + duration, default_duration, default_size, default_flags)
        if run.count == 0:
            continue
        if first_flags is None:
            first_flags = run.first_flags
        earliest = run.earliest if earliest is None else min(earliest, run.earliest)
        duration += run.duration
        sample_count += run.count
        if run.data_offset is not None and not base_offset_absolute and run.size:
            begin = moof.start + run.data_offset
            if begin < mdat.payload_start or begin + run.size > mdat.end:
                raise MalformedBox(
                    f"trun sample data [{begin}, {begin + run.size}) lies outside mdat "
                    f"[{mdat.payload_start}, {mdat.end})",
                    box_type="trun",
                    offset=trun.start,
                )
    return Fragment(
        data=data,
        track_id=track_id,
        sequence_number=sequence_number,
        base_media_decode_time=base_time,
        duration=duration,
        sample_count=sample_count,
        keyframe=first_flags is not None and is_sync_sample(first_flags),
        timescale=track.timescale,
        earliest_presentation_time=base_time if earliest is None else earliest,
        prft=prft,
    )


@dataclass(frozen=True, slots=True)
class TrunSummary:
    """One trun: sample count, total duration and bytes, first sample flags, earliest presentation."""

    count: int
    duration: int
    size: int
    first_flags: int
    earliest: int
    data_offset: int | None


def scan_trun(
    trun: Box, start_time: int, default_duration: int, default_size: int, default_flags: int
) -> TrunSummary:
    """Sum one ``trun``: sample count, duration, byte size, first sample flags, earliest presentation."""
    r = trun.reader()
    version, flags = r.version_flags()
    count = r.u32()
    data_offset = r.i32() if flags & _TRUN_DATA_OFFSET else None
    first_flags = r.u32() if flags & _TRUN_FIRST_FLAGS else None
    per_sample = 4 * bin(flags & (_TRUN_DURATION | _TRUN_SIZE | _TRUN_FLAGS | _TRUN_CTO)).count("1")
    if per_sample == 0:  # every field from the defaults: O(1) whatever the count
        return TrunSummary(
            count,
            count * default_duration,
            count * default_size,
            default_flags if first_flags is None else first_flags,
            start_time,
            data_offset,
        )
    if count * per_sample > r.remaining:
        raise r.fail(f"trun declares {count} samples but holds {r.remaining} bytes of entries")
    duration = size = 0
    earliest: int | None = None
    for i in range(count):
        sample_duration = r.u32() if flags & _TRUN_DURATION else default_duration
        size += r.u32() if flags & _TRUN_SIZE else default_size
        sample_flags = r.u32() if flags & _TRUN_FLAGS else default_flags
        cto = (r.i32() if version else r.u32()) if flags & _TRUN_CTO else 0
        if i == 0 and first_flags is None:
            first_flags = sample_flags
        presentation = start_time + duration + cto
        earliest = presentation if earliest is None else min(earliest, presentation)
        duration += sample_duration
    return TrunSummary(
        count,
        duration,
        size,
        default_flags if first_flags is None else first_flags,
        start_time if earliest is None else earliest,
        data_offset,
    )
