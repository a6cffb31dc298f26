"""From a publisher's fMP4 bytes to what goes on the wire: catalog updates and placed objects.

:class:`SourcePump` reads a :class:`~clutchcall.streams._sources.ByteSource`,
splits it into single-track CMAF (``media.Fmp4Splitter``), names the tracks
(``video``, ``audio``), and feeds a ``media.BroadcastPackager``; every
``CatalogUpdate`` / ``ObjectReady`` goes to ``emit``. It outlives MoQT sessions:
while a publisher reconnects, objects are produced (and dropped) as the source
runs live, and group/object ids keep increasing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from clutchcall.streams._sources import ByteSource, SourceError
from media import (
    BroadcastPackager,
    Catalog,
    CatalogUpdate,
    Fmp4Splitter,
    Fragment,
    InitSegment,
    ObjectReady,
    TrackPlan,
)

__all__ = ["Output", "SourcePump"]

Output = CatalogUpdate | ObjectReady
VIDEO_PRIORITY, AUDIO_PRIORITY = 2, 1


class SourcePump:
    def __init__(self, media: ByteSource, *, group_duration: float) -> None:
        self._media = media
        self._group_duration = group_duration
        self.tracks: list[tuple[str, int]] = []  # (name, publisher priority)
        self.first_video: str | None = None
        self.catalog: Catalog | None = None
        self.final_catalog: Catalog | None = None

    async def run(self, emit: Callable[[Output], None]) -> None:
        """Until the source ends (``SourceError`` / ``MediaError`` if it breaks)."""
        splitter = Fmp4Splitter(split_tracks=True)
        names: dict[int, str] = {}
        inits: dict[int, InitSegment] = {}
        packager: BroadcastPackager | None = None

        def push(name: str, item: InitSegment | Fragment) -> None:
            assert packager is not None
            for out in packager.push(name, item):
                if isinstance(out, CatalogUpdate):
                    self.catalog = out.catalog
                emit(out)

        while data := await self._media.read():
            for item in splitter.feed(data):
                if isinstance(item, InitSegment):
                    track = item.track
                    if track.track_id not in names:
                        if packager is not None:
                            raise SourceError("the source added a track after it started")
                        names[track.track_id] = _track_name(track.role, names.values())
                    inits[track.track_id] = item
                    if packager is not None:  # a new header mid-stream (encoder restart)
                        push(names[track.track_id], item)
                    continue
                if packager is None:
                    packager = self._packager(inits, names)
                    for track_id, track_name in names.items():
                        push(track_name, inits[track_id])
                name = names.get(item.track_id)
                if name is None:
                    raise SourceError(f"fragment of undeclared track {item.track_id}")
                push(name, item)
        splitter.close()
        if packager is not None:
            self.final_catalog = packager.end()

    def _packager(self, inits: dict[int, InitSegment], names: dict[int, str]) -> BroadcastPackager:
        plans = []
        for track_id, name in names.items():
            video = inits[track_id].track.role == "video"
            if video and self.first_video is None:
                self.first_video = name
            bitrate = (self._media.video_bitrate if video else self._media.audio_bitrate) or (
                2_500_000 if video else 128_000)  # fmt: skip
            priority = VIDEO_PRIORITY if video else AUDIO_PRIORITY
            plans.append(TrackPlan(name, bitrate, priority=priority,
                                   alt_group=1 if video else None))  # fmt: skip
            self.tracks.append((name, priority))
        return BroadcastPackager(plans, group_duration=self._group_duration)


def _track_name(role: str, taken: Iterable[str]) -> str:
    base = role if role in ("video", "audio") else "data"
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base}{n}" in used:
        n += 1
    return f"{base}{n}"
