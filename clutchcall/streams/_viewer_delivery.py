"""The live viewer's output: chunks in order, the init segment, and rendition switches.

:class:`ViewerDelivery` sits between :class:`~clutchcall.streams._viewer_session.ViewerSessions`
(connections, reconnect, stall probe) and :class:`~clutchcall.streams.AsyncBroadcastViewer`
(subscriptions, catalog, events): what each lane's sequencer releases goes out through
``on_chunk`` here, video first with the merged init segment before it, audio started at
the video's first group; an ABR or pinned switch subscribes the new rendition and cuts
over at a group the current one has not begun (or after it stalled).
"""

from __future__ import annotations

from typing import Any, Literal

from clutchcall.streams._abr import AbrController
from clutchcall.streams._cmaf import CmafError, merge_init_segments
from clutchcall.streams._connect import PlaybackTarget
from clutchcall.streams._sequencer import Released, TrackSequencer
from clutchcall.streams._viewer_session import ViewerSessions
from clutchcall.streams._viewer_types import Chunk, Lane, ViewerOptions, retag
from media import Catalog, CatalogTrack, MediaError
from media.fmp4 import parse_fragment, parse_init_segment
from moqt._log import library_logger

__all__ = ["ViewerDelivery"]

_log = library_logger("clutchcall.streams.viewer")

_VIDEO_ID, _AUDIO_ID = 1, 2


class ViewerDelivery(ViewerSessions):
    """Lanes to ``on_chunk``, and ABR switching (see the module doc)."""

    def __init__(self, target: PlaybackTarget, options: ViewerOptions) -> None:
        super().__init__(target, options)
        self._last_group: int | None = None  # the last video group played (resume after it)
        self._last_init: bytes | None = None
        self._catalog: Catalog | None = None
        self._video: Lane | None = None
        self._switching: Lane | None = None
        self._audio: Lane | None = None
        self._abr: AbrController | None = None
        self._init_sent = False
        self._need_init = False
        self._chunks = 0
        self._bytes = 0
        self._switches = 0

    # --- hooks (the viewer implements them) ------------------------------------------------

    async def _subscribe(self, lane: Lane, *, join: bool, retry: bool) -> bool:
        raise NotImplementedError

    def _unsubscribe(self, lane: Lane) -> None:
        raise NotImplementedError

    def _new_lane(self, kind: Literal["video", "audio"], track: CatalogTrack, **seq: Any) -> Lane:
        assert track.init_data is not None
        init = parse_init_segment(track.init_data)
        return Lane(kind, track, TrackSequencer(gap_wait=0.3, **seq), init=init)

    # --- delivery ------------------------------------------------------------------------

    def _deliver(self, lane: Lane, items: list[Released]) -> None:
        if not items or self._done.done():
            return
        if lane is self._switching:
            if lane.switch_group is None:
                # Switch at a group the current rendition has not begun: it plays on
                # until it reaches that group, then the new one takes over there.
                playing = self._video.seq.group if self._video is not None else None
                first = items[0].group_id
                lane.switch_group = first if playing is None else max(first, playing + 1)
                lane.switch_since = self._loop.time()
            lane.pending.extend(i for i in items if i.group_id >= lane.switch_group)
            return
        if lane is self._video:
            for item in items:
                if item.group_id < lane.floor:
                    continue
                switching = self._switching
                if (
                    switching is not None
                    and switching.switch_group is not None
                    and item.group_id >= switching.switch_group
                ):
                    self._cut_over()
                    return
                self._emit_video(lane, item)
        elif lane is self._audio:
            for item in items:
                self._emit(Chunk(retag(item.payload, _AUDIO_ID), False, "audio", lane.name,
                                 item.group_id, item.object_id))  # fmt: skip

    def _emit_video(self, lane: Lane, item: Released) -> None:
        if not self._init_sent or (self._need_init and item.object_id == 0):
            self._emit_init()
            if self._audio is not None and not self._audio.seq.started:
                self._deliver(
                    self._audio, self._audio.seq.start_at(item.group_id, self._loop.time())
                )
        self._observe(lane, item)
        self._last_group = item.group_id
        self._delivered_in_session = True
        self._emit(Chunk(retag(item.payload, _VIDEO_ID), False, "video", lane.name,
                         item.group_id, item.object_id))  # fmt: skip

    def _emit_init(self) -> None:
        assert self._video is not None and self._video.track is not None
        inits = [self._video.track.init_data]
        ids = [_VIDEO_ID]
        if self._audio is not None and self._audio.track is not None:
            inits.append(self._audio.track.init_data)
            ids.append(_AUDIO_ID)
        try:
            data = merge_init_segments([i for i in inits if i is not None], ids)
        except CmafError as exc:
            self._finish("error", f"cannot build the init segment: {exc}")
            return
        self._init_sent = True
        self._need_init = False
        if data == self._last_init:
            return  # same tracks after a reconnect: the output continues as it was
        self._last_init = data
        self._emit(Chunk(data, True, "init", self._video.name))

    def _emit(self, chunk: Chunk) -> None:
        if self._done.done():
            return
        self._chunks += 1
        self._bytes += len(chunk.data)
        if self._options.on_chunk is None:
            return
        try:
            self._options.on_chunk(chunk.is_init, chunk)
        except Exception as exc:
            _log.exception("on_chunk_failed")
            self._finish("error", f"on_chunk raised {type(exc).__name__}: {exc}")

    # --- ABR -----------------------------------------------------------------------------

    def _observe(self, lane: Lane, item: Released) -> None:
        if self._abr is None or lane.init is None:
            return
        try:
            fragment = parse_fragment(item.payload, lane.init)
        except MediaError:
            return
        self._abr.observe(item.arrived, fragment.start_seconds)

    def _check_abr(self, now: float) -> None:
        if self._abr is None or self._switching is not None or self._video is None:
            return
        if not self._video.seq.started:
            return
        choice = self._abr.decide(now)
        if choice is not None and choice != self._video.name:
            self._start_switch(choice)

    def _start_switch(self, name: str) -> None:
        if self._catalog is None or self._video is None or self._ending:
            return
        track = self._catalog.track(
            name, self._video.track.namespace if self._video.track else None
        )
        if track is None or not track.init_data:
            return
        if self._switching is not None:
            if self._switching.name == name:
                return
            self._unsubscribe(self._switching)
        after = self._video.seq.group
        lane = self._new_lane("video", track, min_group=(after + 1) if after is not None else None)
        self._switching = lane
        _log.info("rendition_switch", current=self._video.name, target=name)
        self._spawn(self._subscribe(lane, join=False, retry=False))

    def _check_switch(self, now: float) -> None:
        lane = self._switching
        if lane is None or lane.switch_since is None:
            return
        if now - lane.switch_since > max(3.0, 2 * self._group_duration):
            self._cut_over()  # the old rendition stalled: do not wait for it any longer

    def _cut_over(self) -> None:
        new, old = self._switching, self._video
        assert new is not None and old is not None
        self._switching = None
        self._unsubscribe(old)
        self._video = new
        self._need_init = True
        self._switches += 1
        if self._abr is not None:
            self._abr.switched(new.name, self._loop.time())
        new.floor = new.switch_group if new.switch_group is not None else -1
        pending, new.pending = new.pending, []
        _log.info("rendition_switched", rendition=new.name, group=new.switch_group)
        for item in pending:
            self._emit_video(new, item)
