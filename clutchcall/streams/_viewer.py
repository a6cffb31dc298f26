"""Watch a live broadcast over MoQT: the seed's ``BroadcastViewer``.

::

    viewer = BroadcastViewer.open(ticket.url, on_chunk=on_chunk, on_close=on_close)
    ...
    viewer.close()

The viewer connects to the URL's relay (``https://`` WebTransport, ``moqt://``
raw QUIC; the signed ``?token=`` travels on the connection path), subscribes to
the ``.catalog`` track, picks the video rendition (the highest that keeps up,
see :mod:`clutchcall.streams._abr`) and the audio track, and calls
``on_chunk(is_init, chunk)``:

* first with the CMAF init segment (``is_init`` True): one ``moov`` declaring
  video (track 1) and audio (track 2), built from the catalog's ``initData``;
* then with every media chunk in order (``chunk.data``: a ``moof`` + ``mdat``),
  starting at a keyframe, so writing all ``chunk.data`` to one file gives a
  playable fragmented MP4;
* a rendition switch (ABR, or :meth:`AsyncBroadcastViewer.select_rendition`)
  happens at a group (GOP) boundary and emits a new init chunk first.

``on_close(reason, detail)`` is called once, last: ``auth_failed`` (bad, expired
or revoked token), ``ended`` (the publisher ended the broadcast), ``closed``
(:meth:`close`), ``network`` (connection lost or refused, and every reconnect within
``reconnect`` seconds failed), ``not_found`` (no such broadcast within
``start_timeout``) or ``error`` (a callback raised, bad media).

A lost session is reconnected, to ``fallback_urls`` in turn (other POPs); a POP that
died without a word (SIGKILL, a frozen process or path) is noticed by the stall probe:
no object for ``max(stall_timeout, 3 x the group duration)`` -> a QUIC PING, no ACK
within ``ping_timeout`` -> lost (see :mod:`clutchcall.streams._viewer_session`). A
publisher pause (the PING is answered) is not a loss.

Callbacks run on the viewer's event-loop thread: keep them short.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from clutchcall.streams._abr import AbrController, Rendition
from clutchcall.streams._connect import (
    PlaybackTarget,
    namespace_from_text,
    parse_playback_url,
    resolve_tls,
)
from clutchcall.streams._errors import ConfigurationError
from clutchcall.streams._sequencer import TrackSequencer
from clutchcall.streams._viewer_delivery import ViewerDelivery
from clutchcall.streams._viewer_types import (
    AUTH_REQUEST_CODES,
    Chunk,
    ChunkCallback,
    CloseCallback,
    CloseReason,
    Lane,
    ViewerOptions,
    close_reason,
    lane_priority,
)
from media import Catalog, CatalogTrack, MediaError
from media.fmp4 import parse_init_segment
from moqt._log import library_logger
from moqt.aio import MoqtConnection, RequestFailed
from moqt.errors import LocalError, PublishDoneCode, RequestErrorCode
from moqt.events import (
    Event,
    FetchAccepted,
    FetchStreamEnded,
    FetchStreamReset,
    GoawayReceived,
    ObjectReceived,
    PublishDoneReceived,
    SessionClosed,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
)
from moqt.types import ObjectStatus

__all__ = ["AsyncBroadcastViewer", "Chunk", "ChunkCallback", "CloseCallback", "CloseReason"]

_log = library_logger("clutchcall.streams.viewer")


_TICK = 0.1
_END_GRACE = 0.5
# PUBLISH_DONE statuses that end a broadcast normally (``ended``), and those after which the
# track goes on elsewhere or later (``network``: reconnect); any other status is an error.
_NORMAL_END = frozenset({PublishDoneCode.TRACK_ENDED, PublishDoneCode.SUBSCRIPTION_ENDED})
_MOVE_ON = frozenset({PublishDoneCode.GOING_AWAY, PublishDoneCode.TOO_FAR_BEHIND})


class AsyncBroadcastViewer(ViewerDelivery):
    """The asyncio viewer; :meth:`open` starts it, :meth:`close` stops it."""

    def __init__(self, target: PlaybackTarget, options: ViewerOptions) -> None:
        super().__init__(target, options)
        self._pinned = options.rendition
        self._lanes: dict[int, Lane] = {}
        self._catalog_group = -1
        self._end_detail = ""

    # --- API -----------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        on_chunk: ChunkCallback | None = None,
        on_close: CloseCallback | None = None,
        token: str | None = None,
        namespace: str | None = None,
        rendition: str | None = None,
        max_height: int | None = None,
        audio: bool = True,
        verify: bool | None = None,
        cafile: str | None = None,
        start_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        reconnect: float = 10.0,
        fallback_urls: tuple[str, ...] | list[str] = (),
        stall_timeout: float = 2.0,
        ping_timeout: float = 1.5,
    ) -> AsyncBroadcastViewer:
        """Start watching ``url`` (a signed playback URL, or a relay URL with
        ``namespace=`` and ``token=``). Returns at once; results arrive via the callbacks.
        ``rendition`` pins one video rendition (default: ABR); ``max_height`` caps it.

        A lost connection (or a server's GOAWAY) is re-established for up to
        ``reconnect`` seconds (0: never), to the GOAWAY's new URI or in turn to
        ``url`` and ``fallback_urls`` (other POPs, same path and token); playback
        resumes at the next group and ``on_close("network", ...)`` comes only when
        that fails.

        A session without objects for ``max(stall_timeout, 3 x the group duration)``
        seconds is probed with a QUIC PING; unanswered within ``ping_timeout`` it is
        taken for lost (a dead or frozen POP) and reconnected as above. An answered
        PING (a publisher pause) changes nothing. ``stall_timeout=0`` turns the probe
        off (QUIC's 30 s idle timeout then decides)."""
        if start_timeout <= 0 or connect_timeout <= 0 or reconnect < 0:
            raise ConfigurationError("timeouts must be positive")
        if stall_timeout < 0 or ping_timeout <= 0:
            raise ConfigurationError("stall_timeout must be >= 0 and ping_timeout positive")
        target = parse_playback_url(url, token=token, namespace=namespace)
        fallbacks = tuple(
            parse_playback_url(u, token=target.token, namespace=target.namespace_text).url
            for u in fallback_urls
        )
        options = ViewerOptions(
            on_chunk=on_chunk,
            on_close=on_close,
            tls=resolve_tls(verify, cafile),
            rendition=rendition,
            max_height=max_height,
            audio=audio,
            start_timeout=start_timeout,
            connect_timeout=connect_timeout,
            reconnect=reconnect,
            fallback_urls=fallbacks,
            stall_timeout=stall_timeout,
            ping_timeout=ping_timeout,
        )
        viewer = cls(target, options)
        viewer._task = asyncio.ensure_future(viewer._run())
        return viewer

    @property
    def rendition(self) -> str | None:
        """The video rendition being delivered (None before the catalog arrived)."""
        return self._video.name if self._video is not None else None

    @property
    def renditions(self) -> list[str]:
        return [r.name for r in self._abr.ladder] if self._abr is not None else []

    def select_rendition(self, name: str | None) -> None:
        """Pin rendition ``name`` (switching at the next group), or ``None`` for ABR."""
        self._pinned = name
        if self._abr is None:
            return
        if name is not None and name not in self.renditions:
            raise ConfigurationError(f"no rendition {name!r}; the catalog has {self.renditions}")
        self._abr.pinned = name
        if name is not None and self._video is not None and name != self._video.name:
            self._start_switch(name)

    def statistics(self) -> dict[str, Any]:
        return {
            "chunks": self._chunks,
            "bytes": self._bytes,
            "switches": self._switches,
            "rendition": self.rendition,
            "lag": self._abr.lag if self._abr is not None else None,
            "sessions": self._sessions,
            "probes": self._probes,
            "stalls": self._stalls,
        }

    # --- sessions (ViewerSessions' hooks) ---------------------------------------------

    def _session_started(self, conn: MoqtConnection) -> None:
        conn.set_event_handler(self._on_event)
        self._spawn(self._ticker())
        self._spawn(self._start_catalog())

    def _reset_session(self) -> None:
        """Forget the lost session's subscriptions; delivery resumes after the last group."""
        self._lanes = {}
        self._catalog = None
        self._catalog_group = -1
        self._video = self._switching = self._audio = None
        self._abr = None
        self._need_init = True  # re-checked at the next group (emitted only if it changed)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            now = self._loop.time()
            for lane in (self._video, self._audio, self._switching):
                if lane is not None:
                    self._deliver(lane, lane.seq.poll(now))
            self._check_switch(now)
            self._check_abr(now)
            self._check_stall(now)

    # --- subscriptions -------------------------------------------------------------------

    async def _subscribe(self, lane: Lane, *, join: bool, retry: bool) -> bool:
        """SUBSCRIBE (retrying while the broadcast is not there yet) and, when ``join``,
        a joining FETCH of the current group. False if the viewer is ending."""
        conn = self._conn
        assert conn is not None
        opts = self._options
        window = opts.start_timeout if self._last_group is None else max(1.0, opts.reconnect)
        deadline = self._loop.time() + window
        name = lane.name.encode()
        namespace = self.target.namespace
        if lane.track is not None and lane.track.namespace:
            namespace = namespace_from_text(lane.track.namespace)  # MSF: a track may name its own
        while True:
            rid = conn.session.subscribe(namespace, name, priority=lane_priority(lane))
            lane.request_id = rid
            self._lanes[rid] = lane
            try:
                accepted = await conn.request(rid, SubscribeAccepted)
                break
            except RequestFailed as exc:
                self._lanes.pop(rid, None)
                rej = exc.rejection
                if rej.error in AUTH_REQUEST_CODES:
                    self._finish("auth_failed", rej.reason or "unauthorized")
                    return False
                if retry and rej.error is RequestErrorCode.DOES_NOT_EXIST:
                    if self._loop.time() < deadline:
                        await asyncio.sleep(0.5)
                        continue
                    self._finish("not_found", f"{self.target.namespace_text} is not live")
                    return False
                if lane.kind == "catalog" or lane is self._video:
                    self._finish("not_found", f"{lane.name}: {rej.reason or rej.code}")
                return False
        if join and accepted.largest is not None:
            lane.seq.expect_fetch()
            try:
                fid = conn.session.joining_fetch(rid, 0)
            except LocalError:
                self._deliver(lane, lane.seq.fetch_done(self._loop.time()))
                return True
            lane.fetch_id = fid
            self._lanes[fid] = lane
            try:
                await conn.request(fid, FetchAccepted)
            except RequestFailed:
                self._lanes.pop(fid, None)
                lane.fetch_id = None
                self._deliver(lane, lane.seq.fetch_done(self._loop.time()))
        return True

    def _unsubscribe(self, lane: Lane) -> None:
        assert self._conn is not None
        for rid in (lane.request_id, lane.fetch_id):
            if rid is not None:
                self._lanes.pop(rid, None)
        if lane.request_id is not None:
            with contextlib.suppress(LocalError):
                self._conn.session.unsubscribe(lane.request_id)
        if lane.fetch_id is not None:
            with contextlib.suppress(LocalError):
                self._conn.session.fetch_cancel(lane.fetch_id)

    async def _start_catalog(self) -> None:
        lane = Lane("catalog", None, TrackSequencer())
        await self._subscribe(lane, join=True, retry=True)

    # --- events ----------------------------------------------------------------------------

    def _on_event(self, _conn: MoqtConnection, event: Event) -> None:
        now = self._loop.time()
        if isinstance(event, ObjectReceived):
            self._heard = now  # the session is alive (see the stall probe)
            lane = self._lanes.get(event.request_id)
            if lane is None:
                return
            if lane is self._video:
                self._saw_group(event.group_id, now)
            if event.status == ObjectStatus.END_OF_TRACK and (
                lane.kind == "catalog" or lane is self._video
            ):
                self._end_soon("the broadcast ended (end of track)")
                return
            if not event.payload:
                return
            if lane.kind == "catalog":
                self._on_catalog_object(event.group_id, event.payload)
            else:
                self._deliver(
                    lane, lane.seq.push(event.group_id, event.object_id, event.payload, now)
                )
        elif isinstance(event, SubgroupStreamEnded | SubgroupStreamReset):
            lane = self._lanes.get(event.request_id)
            if lane is not None and lane.kind != "catalog":
                self._deliver(lane, lane.seq.group_ended(event.group_id, now))
        elif isinstance(event, FetchStreamEnded | FetchStreamReset):
            lane = self._lanes.pop(event.request_id, None)
            if lane is not None:
                lane.fetch_id = None
                if lane.kind != "catalog":
                    self._deliver(lane, lane.seq.fetch_done(now))
        elif isinstance(event, PublishDoneReceived):
            self._on_publish_done(event)
        elif isinstance(event, GoawayReceived):
            # The server is going away: move now (to its new URI, or the next URL).
            self._goaway_uri = event.new_uri
            self._finish("network", "the server is going away (GOAWAY)")
        elif isinstance(event, SessionClosed):
            self._finish(*close_reason(event.code, event.reason, event.by_peer))

    def _on_publish_done(self, event: PublishDoneReceived) -> None:
        lane = self._lanes.get(event.request_id)
        if lane is None:
            return
        if event.code in (PublishDoneCode.UNAUTHORIZED, PublishDoneCode.EXPIRED):
            self._finish("auth_failed", event.reason or "playback token no longer valid")
        elif lane is self._switching:
            self._unsubscribe(lane)
            self._switching = None
        elif lane.kind != "catalog" and lane is not self._video:
            return
        elif event.code in _NORMAL_END:
            self._end_soon(event.reason or "the broadcast ended")
        elif event.code in _MOVE_ON:  # the track goes on: reconnect (resumes at the live edge)
            self._finish(
                "network", f"{lane.name}: {event.reason or PublishDoneCode(event.code).name}"
            )
        else:
            self._finish("error", f"{lane.name}: {event.reason or f'PUBLISH_DONE {event.code:#x}'}")

    def _end_soon(self, detail: str) -> None:
        """The broadcast ended: deliver what is still arriving, then close with ``ended``."""
        if self._ending:
            return
        self._ending = True
        self._end_detail = detail
        self._loop.call_later(_END_GRACE, self._end_now)

    def _end_now(self) -> None:
        if self._done.done():
            return
        for lane in (self._video, self._audio):
            if lane is not None:
                self._deliver(lane, lane.seq.flush())
        self._finish("ended", self._end_detail)

    # --- catalog -------------------------------------------------------------------------

    def _on_catalog_object(self, group: int, payload: bytes) -> None:
        if group <= self._catalog_group:
            return
        try:
            catalog = Catalog.parse_update(payload, self._catalog)
        except MediaError as exc:
            _log.warning("bad_catalog", error=str(exc))
            return
        self._catalog_group = group
        previous, self._catalog = self._catalog, catalog
        videos = [t for t in catalog.by_role("video") if t.init_data]
        if catalog.is_complete or not videos or not any(t.is_live for t in videos):
            self._end_soon("the broadcast ended (final catalog)")
            return
        if previous is None:
            self._begin(catalog, videos)
        else:
            self._update(catalog)

    def _begin(self, catalog: Catalog, videos: list[CatalogTrack]) -> None:
        ladder = [Rendition(t.name, t.bitrate or 0, t.width, t.height) for t in videos]
        try:
            self._abr = AbrController(
                ladder, pinned=self._pinned, max_height=self._options.max_height
            )
        except ValueError as exc:
            self._finish("error", str(exc))
            return
        track = next(t for t in videos if t.name == self._abr.current)
        if track.max_group_duration:
            self._set_group_duration(track.max_group_duration / 1000)
        resume = None if self._last_group is None else self._last_group + 1
        self._video = self._new_lane("video", track, min_group=resume)
        self._spawn(self._subscribe(self._video, join=True, retry=True))
        audios = [t for t in catalog.by_role("audio") if t.init_data]
        if self._options.audio and audios:
            self._audio = self._new_lane("audio", audios[0], hold=True)
            self._spawn(self._subscribe(self._audio, join=True, retry=False))

    def _update(self, catalog: Catalog) -> None:
        for lane in (self._video, self._audio):
            if lane is None or lane.track is None:
                continue
            fresh = catalog.track(lane.track.name, lane.track.namespace)
            if fresh is None:
                if lane is self._video and self._abr is not None:
                    others = [t for t in catalog.by_role("video") if t.init_data]
                    if others:
                        self._start_switch(others[0].name)
                continue
            if fresh.init_data and fresh.init_data != lane.track.init_data:
                lane.track = fresh
                lane.init = parse_init_segment(fresh.init_data)
                self._need_init = True  # emitted before the next group
