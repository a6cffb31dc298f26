"""RTMP ingest: an encoder's FLV through one supervised ffmpeg per input into the relay.

For every admitted RTMP publish the server asks :meth:`RtmpIngest.sink_factory` for
a sink. The sink re-muxes the encoder's tags to FLV and writes them into a
:class:`media.ffmpeg.Transcoder` (the ABR ladder, capped at the source size that
``onMetaData`` announces, so the transcoder starts lazily with the first media
tag). A supervisor task (in the node's TaskGroup, so it outlives the RTMP
server's bounded ``on_end``) pumps the renditions through a
:class:`media.BroadcastPackager` into the input's :class:`~origin.broadcast.Broadcast`.

* ffmpeg dies while the encoder is still publishing: the input reports ``error``
  (with ffmpeg's last stderr line), a new ffmpeg starts after a short back-off and
  is fed from the next keyframe, with the FLV header, metadata and codec sequence
  headers replayed and timestamps rebased to 0. The packager resumes the timeline
  (``ResumePoint``): viewers see the same tracks continue, group ids increasing.
* The encoder disconnects: ffmpeg gets end-of-input and its last fragments are
  published. If the encoder unpublished (it said so), the broadcast ends cleanly
  (final catalog, PUBLISH_DONE) and the route is withdrawn. If its connection was
  lost (or went idle), the broadcast is held for ``reconnect_window`` seconds
  (:mod:`origin._reconnect`): tracks open, no PUBLISH_DONE. The same input
  publishing again within it continues the same tracks (its ffmpeg's group ids
  follow on through the resume point) and viewers go on; otherwise it ends as above.
  The resume point is kept for ``resume_window`` seconds: a reconnect within it
  publishes the same namespace with group ids (media and catalog) that keep increasing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from media import (
    BroadcastPackager,
    CatalogUpdate,
    LadderSpec,
    MediaError,
    ObjectReady,
    ResumePoint,
)
from media.ffmpeg import PipeSource, Transcoder
from origin.rtmp import AmfValue, FlvMuxer, MediaTag, PublishEnd, PublishInfo, PublishSink
from origin.rtmp.publish import EndReason

from ._inputs import LiveInputs, Spawn
from ._reconnect import adopt_input, hold_input
from .broadcast import Broadcast
from .status import InputStatus

__all__ = [
    "RtmpIngest",
    "RtmpIngestSettings",
    "RtmpIngestStatistics",
]

_log = structlog.get_logger("origin.rtmp_ingest")

Disconnect = Callable[[str, str], Awaitable[bool]]

# Objects held while the catalog waits for the last rendition's header.
_MAX_HELD = 256
# Ends after which the encoder may come back: the broadcast is held (reconnect window).
_DROPPED = frozenset({EndReason.CONNECTION_LOST, EndReason.IDLE_TIMEOUT})


@dataclass(frozen=True, slots=True)
class RtmpIngestSettings:
    ladder: LadderSpec = dataclasses.field(default_factory=LadderSpec)
    #: Seconds after a broadcast ended during which a reconnect continues its group ids.
    resume_window: float = 30.0
    #: Seconds a dropped encoder's broadcast is held open for it to come back (0: end at once).
    reconnect_window: float = 10.0
    #: Back-off before restarting a dead ffmpeg (doubles up to ``max_restart_delay``).
    restart_delay: float = 0.5
    max_restart_delay: float = 5.0
    #: How long a media tag waits for a (re)starting ffmpeg before it is dropped.
    start_wait: float = 5.0
    ffmpeg_queue: int = 64
    #: How long a reconnecting encoder waits for its previous publish to wind down.
    handover_wait: float = 5.0


@dataclass(frozen=True, slots=True)
class RtmpIngestStatistics:
    publishes: int
    active: int
    ffmpeg_starts: int
    ffmpeg_failures: int
    tags_dropped: int


@dataclass(slots=True)
class _Resume:
    point: ResumePoint
    catalog_group: int
    until: float


class RtmpIngest:
    """Sink factory for :class:`origin.rtmp.RtmpServer`; see the module docstring."""

    def __init__(
        self,
        inputs: LiveInputs,
        settings: RtmpIngestSettings | None = None,
        *,
        spawn: Spawn,
        disconnect: Disconnect | None = None,
    ) -> None:
        self.inputs = inputs
        self.settings = settings or RtmpIngestSettings()
        self._spawn = spawn  # runs a coroutine in the node's TaskGroup
        self.disconnect = disconnect  # ends the RTMP publish of an input (RtmpServer.disconnect)
        self._resume: dict[str, _Resume] = {}
        self._active: dict[str, _RtmpPublish] = {}
        self.publishes = 0
        self.ffmpeg_starts = 0
        self.ffmpeg_failures = 0
        self.tags_dropped = 0
        self.objects_dropped = 0

    async def sink_factory(self, info: PublishInfo) -> PublishSink:
        self.publishes += 1
        previous = self._active.get(info.external_input_id)
        if previous is not None:
            # A quick reconnect: let the previous publish flush its ladder and hand over
            # its resume point first, so group ids keep increasing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(previous.finished.wait(), self.settings.handover_wait)
        publish = _RtmpPublish(self, info)
        self._active[info.external_input_id] = publish
        return publish

    def take_resume(self, external_input_id: str) -> _Resume | None:
        resume = self._resume.pop(external_input_id, None)
        if resume is not None and resume.until < time.monotonic():
            return None
        return resume

    def keep_resume(self, external_input_id: str, point: ResumePoint, catalog_group: int) -> None:
        now = time.monotonic()
        for key in [k for k, r in self._resume.items() if r.until < now]:
            del self._resume[key]
        self._resume[external_input_id] = _Resume(
            point, catalog_group, now + self.settings.resume_window
        )

    def forget(self, publish: _RtmpPublish) -> None:
        if self._active.get(publish.info.external_input_id) is publish:
            del self._active[publish.info.external_input_id]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._spawn(coro)

    def transcoder_pid(self, external_input_id: str) -> int | None:
        """The process id of the input's running ffmpeg (operations and tests)."""
        publish = self._active.get(external_input_id)
        tc = publish.transcoder if publish is not None else None
        return tc.pid if tc is not None else None

    def statistics(self) -> RtmpIngestStatistics:
        return RtmpIngestStatistics(
            self.publishes, len(self._active), self.ffmpeg_starts, self.ffmpeg_failures,
            self.tags_dropped,
        )  # fmt: skip


class _RtmpPublish:
    """One admitted RTMP publish: the FLV feed, the ffmpeg supervisor, the broadcast."""

    def __init__(self, ingest: RtmpIngest, info: PublishInfo) -> None:
        self.ingest = ingest
        self.info = info
        self._id = info.external_input_id
        self._log = _log.bind(input=self._id, session=info.session)
        self._metadata: dict[str, AmfValue] = {}
        self._video_seq: MediaTag | None = None
        self._audio_seq: MediaTag | None = None
        self._tc: Transcoder | None = None
        self._ready = asyncio.Event()
        self._fresh = True
        self._muxer = FlvMuxer()
        self._base = 0
        self._end: PublishEnd | None = None
        self._ended = asyncio.Event()
        self._started = False
        self._broadcast: Broadcast | None = None
        self._resume = ingest.take_resume(self._id)
        self.finished = asyncio.Event()

    @property
    def transcoder(self) -> Transcoder | None:
        return self._tc

    # --- PublishSink -----------------------------------------------------------------------

    async def on_metadata(self, metadata: dict[str, AmfValue]) -> None:
        if not self._started:
            self._metadata = {
                k: v for k, v in metadata.items() if k not in ("duration", "filesize")
            }

    async def on_media(self, tag: MediaTag) -> None:
        if tag.is_sequence_header:
            if tag.is_video:
                self._video_seq = tag
            else:
                self._audio_seq = tag
        if not self._started:
            self._started = True
            self.ingest.spawn(self._supervise())
        if self._end is not None:
            return
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), self.ingest.settings.start_wait)
            except TimeoutError:
                self.ingest.tags_dropped += 1
                return
        tc = self._tc
        if tc is None:
            self.ingest.tags_dropped += 1
            return
        data = self._mux(tag)
        if data is None:
            return
        try:
            await tc.write(data)
        except MediaError as exc:
            # ffmpeg is gone; the supervisor reports it and starts a new one.
            self._log.debug("ffmpeg_write_failed", error=str(exc))
            self._ready.clear()
            self._tc = None

    async def on_end(self, end: PublishEnd) -> None:
        self._end = end
        self._ended.set()
        self._ready.set()  # nobody waits for a restart any more
        self._log.info("rtmp_publish_ended", reason=end.reason.value, clean=end.clean)
        if not self._started:
            self.finished.set()
            self.ingest.forget(self)

    # --- FLV re-mux ------------------------------------------------------------------------

    def _has_video(self) -> bool:
        return "videocodecid" in self._metadata or not self._metadata

    def _has_audio(self) -> bool:
        return "audiocodecid" in self._metadata or not self._metadata

    def _mux(self, tag: MediaTag) -> bytes | None:
        if tag.is_sequence_header and not self._fresh:
            return self._muxer.tag(dataclasses.replace(tag, timestamp=0))
        if self._fresh:
            if tag.is_sequence_header:
                return None  # replayed with the header below
            if self._has_video() and not (tag.is_video and tag.is_keyframe):
                self.ingest.tags_dropped += 1
                return None
            self._fresh = False
            self._muxer = FlvMuxer()
            self._base = tag.timestamp
            head = self._muxer.header(has_audio=self._has_audio(), has_video=self._has_video())
            if self._metadata:
                head += self._muxer.metadata(self._metadata)
            for seq in (self._video_seq, self._audio_seq):
                if seq is not None:
                    head += self._muxer.tag(dataclasses.replace(seq, timestamp=0))
            return head + self._muxer.tag(dataclasses.replace(tag, timestamp=0))
        return self._muxer.tag(
            dataclasses.replace(tag, timestamp=max(0, tag.timestamp - self._base))
        )

    def _source(self) -> PipeSource:
        width, height = self._metadata.get("width"), self._metadata.get("height")
        if (
            isinstance(width, int | float)
            and isinstance(height, int | float)
            and width > 0
            and height > 0
        ):
            return PipeSource(width=int(width), height=int(height), has_audio=self._has_audio())
        return PipeSource(has_audio=self._has_audio())

    # --- supervisor ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        settings = self.ingest.settings
        delay = settings.restart_delay
        try:
            while self._end is None:
                failure = await self._run_once()
                if self._end is not None:
                    break
                self.ingest.ffmpeg_failures += 1
                self.ingest.inputs.report(self._id, InputStatus.ERROR, failure)
                self._log.warning("ffmpeg_died", detail=failure, restart_in=delay)
                try:
                    await asyncio.wait_for(self._ended.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, settings.max_restart_delay)
        finally:
            self._finish()

    async def _run_once(self) -> str:
        """Run one ffmpeg until it ends; the failure text if it ended on its own."""
        settings = self.ingest.settings
        ladder = settings.ladder
        if not self._has_video():  # an audio-only encoder: the audio rendition alone
            ladder = dataclasses.replace(ladder, video=())
        tc = Transcoder(self._source(), ladder, queue_size=settings.ffmpeg_queue)
        try:
            await tc.start()
        except MediaError as exc:
            return f"ffmpeg did not start: {exc}"
        self.ingest.ffmpeg_starts += 1
        self._fresh = True
        self._tc = tc
        self._ready.set()
        packager = BroadcastPackager(
            tc.track_plans(),
            group_duration=ladder.group_duration,
            resume=self._resume.point if self._resume is not None else None,
        )
        failure = ""
        try:
            async with asyncio.TaskGroup() as tg:
                closer = tg.create_task(self._close_on_end(tc))
                try:
                    await self._pump(tc, packager)
                except MediaError as exc:
                    failure = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                finally:
                    closer.cancel()
        finally:
            if self._tc is tc:
                self._tc = None
            if self._end is None:
                self._ready.clear()
            result = await tc.stop()
            if packager.next_group_id() > (
                self._resume.point.first_group_id if self._resume else 0
            ):
                catalog_group = self._broadcast.next_catalog_group if self._broadcast else 0
                self._resume = _Resume(packager.resume_point(), catalog_group, 0.0)
        if not failure:
            tail = result.stderr_tail.strip().splitlines()
            failure = f"ffmpeg exited ({result.returncode})" + (f": {tail[-1]}" if tail else "")
        return failure

    async def _close_on_end(self, tc: Transcoder) -> None:
        await self._ended.wait()
        await tc.close_input()

    async def _pump(self, tc: Transcoder, packager: BroadcastPackager) -> None:
        # Renditions whose header comes first produce objects before the catalog is
        # complete: hold them (bounded) until the catalog is out, so no group loses its start.
        pending: list[ObjectReady] = []
        async for rendition, item in tc:
            for event in packager.push(rendition, item):
                if isinstance(event, CatalogUpdate):
                    self._on_catalog(event)
                    for held in pending:
                        self._send(held)
                    pending.clear()
                elif packager.catalog is None:
                    if len(pending) < _MAX_HELD:
                        pending.append(event)
                    else:
                        self.ingest.objects_dropped += 1
                else:
                    self._send(event)

    def _send(self, event: ObjectReady) -> None:
        if self._broadcast is not None and not self._broadcast.ended:
            obj = event.object
            self._broadcast.send_object(event.track, obj.group_id, obj.object_id, obj.payload)

    def _on_catalog(self, event: CatalogUpdate) -> None:
        if self._broadcast is None and not (
            self._end is not None and self._end.reason is EndReason.KICKED
        ):
            # The same input back within the reconnect window: its broadcast goes on.
            self._broadcast = adopt_input(
                self.ingest.inputs, self._id, self.info.namespace, "rtmp", self._kick
            )
            if self._broadcast is None:
                self._begin()
        elif self._broadcast is not None and self.ingest.inputs.get(self._id) is not None:
            self.ingest.inputs.report(self._id, InputStatus.LIVE, "transcoder restarted")
        if self._broadcast is not None and not self._broadcast.ended:
            self._broadcast.set_catalog(event.catalog)

    def _begin(self) -> None:
        live = self.ingest.inputs.get(self._id)
        if live is not None and live.kind != "rtmp":
            # The input is live through another ingest path: that publisher keeps it.
            self._log.warning("input_busy", ingest=live.kind)
            self.ingest.spawn(self._kick("the input is already being published"))
            return
        first = self._resume.catalog_group if self._resume is not None else 0
        if live is not None:
            first = max(first, live.broadcast.next_catalog_group)
        self._broadcast = self.ingest.inputs.begin(
            self._id, self.info.namespace, "rtmp", self._kick, first_catalog_group=first
        )
        self.ingest.inputs.report(self._id, InputStatus.LIVE)

    async def _kick(self, reason: str) -> None:
        disconnect = self.ingest.disconnect
        if disconnect is not None:
            await disconnect(self._id, reason)

    def _finish(self) -> None:
        self.finished.set()
        self.ingest.forget(self)
        broadcast = self._broadcast
        if broadcast is None:
            return
        if self._resume is not None:
            self.ingest.keep_resume(self._id, self._resume.point, broadcast.next_catalog_group + 1)
        end = self._end
        reason = "encoder disconnected" if end is None else f"encoder ended: {end.reason.value}"
        window = self.ingest.settings.reconnect_window
        if end is not None and end.reason in _DROPPED:
            if hold_input(self.ingest.inputs, self._id, broadcast, window, reason):
                return
        self.ingest.inputs.finish(self._id, broadcast, reason=reason)
