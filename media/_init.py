"""The CMAF header (init segment: ftyp + moov) and the track information it carries."""

from __future__ import annotations

from dataclasses import dataclass

from ._boxes import Box, children, find_child, iter_boxes
from ._codecs import parse_sample_entry
from .errors import MalformedBox, UnsupportedMedia

__all__ = ["InitSegment", "TrackInfo", "parse_init_segment"]

_ROLES = {
    "vide": "video",
    "soun": "audio",
    "subt": "subtitle",
    "text": "subtitle",
    "sbtl": "subtitle",
}


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One ``trak`` of a movie header, with its ``trex`` fragment defaults."""

    track_id: int
    handler: str
    timescale: int
    codec: str
    fourcc: str
    width: int | None = None
    height: int | None = None
    display_width: int | None = None
    display_height: int | None = None
    sample_rate: int | None = None
    channel_count: int | None = None
    language: str | None = None
    default_sample_duration: int = 0
    default_sample_size: int = 0
    default_sample_flags: int = 0

    @property
    def role(self) -> str:
        """MSF track role: ``video``, ``audio``, ``subtitle`` or ``data``."""
        return _ROLES.get(self.handler, "data")


@dataclass(frozen=True, slots=True)
class InitSegment:
    """A CMAF header: the exact ``ftyp`` + ``moov`` bytes and the tracks they declare."""

    data: bytes
    tracks: tuple[TrackInfo, ...]
    major_brand: str = ""
    compatible_brands: tuple[str, ...] = ()

    @property
    def track(self) -> TrackInfo:
        """The single track of a CMAF header (CMAF tracks carry exactly one)."""
        if len(self.tracks) != 1:
            raise UnsupportedMedia(
                f"init segment declares {len(self.tracks)} tracks, expected exactly one"
            )
        return self.tracks[0]

    def track_by_id(self, track_id: int) -> TrackInfo | None:
        for track in self.tracks:
            if track.track_id == track_id:
                return track
        return None


def parse_init_segment(data: bytes) -> InitSegment:
    """Parse a complete init segment (``ftyp`` optional, ``moov`` required)."""
    major: str = ""
    brands: tuple[str, ...] = ()
    moov: Box | None = None
    for box in iter_boxes(data):
        if box.type == "ftyp":
            major, brands = _parse_ftyp(box)
        elif box.type == "moov":
            moov = box
    if moov is None:
        raise MalformedBox("init segment has no moov box")
    return InitSegment(data, _parse_moov(moov), major, brands)


def _parse_ftyp(box: Box) -> tuple[str, tuple[str, ...]]:
    r = box.reader()
    major = r.bytes(4).decode("latin-1")
    r.u32()  # minor version
    if r.remaining % 4:
        raise r.fail("ftyp compatible brands are not a multiple of 4 bytes")
    brands = tuple(r.bytes(4).decode("latin-1") for _ in range(r.remaining // 4))
    return major, brands


def _parse_moov(moov: Box) -> tuple[TrackInfo, ...]:
    traks: list[Box] = []
    trex: dict[int, tuple[int, int, int]] = {}
    for child in children(moov):
        if child.type == "trak":
            traks.append(child)
        elif child.type == "mvex":
            for ext in children(child):
                if ext.type == "trex":
                    r = ext.reader(full_box=True)
                    track_id = r.u32()
                    r.u32()  # default_sample_description_index
                    trex[track_id] = (r.u32(), r.u32(), r.u32())
    if not traks:
        raise MalformedBox("moov declares no track", box_type="moov")
    tracks = tuple(_parse_trak(trak, trex) for trak in traks)
    ids = [t.track_id for t in tracks]
    if len(set(ids)) != len(ids):
        raise MalformedBox(f"duplicate track ids {ids}", box_type="moov")
    return tracks


def _require(parent: Box, box_type: str) -> Box:
    child = find_child(parent, box_type)
    if child is None:
        raise MalformedBox(
            f"{parent.type} has no {box_type} box", box_type=parent.type, offset=parent.start
        )
    return child


def _parse_trak(trak: Box, trex: dict[int, tuple[int, int, int]]) -> TrackInfo:
    r = _require(trak, "tkhd").reader()
    version, _ = r.version_flags()
    r.skip(16 if version == 1 else 8)  # creation/modification time
    track_id = r.u32()
    if track_id == 0:
        raise r.fail("track_ID 0 is reserved")
    r.skip(4 + (8 if version == 1 else 4))  # reserved, duration
    r.skip(8 + 2 + 2 + 2 + 2 + 36)  # reserved, layer, alternate_group, volume, reserved, matrix
    display_w, display_h = r.u32() >> 16, r.u32() >> 16

    mdia = _require(trak, "mdia")
    r = _require(mdia, "mdhd").reader()
    version, _ = r.version_flags()
    r.skip(16 if version == 1 else 8)
    timescale = r.u32()
    if timescale == 0:
        raise r.fail("mdhd timescale is 0")
    r.skip(8 if version == 1 else 4)  # duration
    packed = r.u16()
    language = "".join(chr(((packed >> s) & 0x1F) + 0x60) for s in (10, 5, 0)) if packed else None

    r = _require(mdia, "hdlr").reader(full_box=True)
    r.u32()  # pre_defined
    handler = r.bytes(4).decode("latin-1")

    stsd = _require(_require(_require(mdia, "minf"), "stbl"), "stsd")
    r = stsd.reader(full_box=True)
    count = r.u32()
    entries = list(iter_boxes(stsd.data, r.pos, stsd.end))
    if count < 1 or not entries:
        raise MalformedBox("stsd has no sample entry", box_type="stsd", offset=stsd.start)
    entry = parse_sample_entry(entries[0])
    duration, size, flags = trex.get(track_id, (0, 0, 0))
    return TrackInfo(
        track_id=track_id,
        handler=handler,
        timescale=timescale,
        codec=entry.codec,
        fourcc=entry.fourcc,
        width=entry.width,
        height=entry.height,
        display_width=display_w or None,
        display_height=display_h or None,
        sample_rate=entry.sample_rate,
        channel_count=entry.channel_count,
        language=language,
        default_sample_duration=duration,
        default_sample_size=size,
        default_sample_flags=flags,
    )
