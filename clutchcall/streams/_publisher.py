"""Publish a live fMP4 source to an origin over MoQT (the seed's ``dataPlane.publisher()``).

::

    pub = Streams(relay_url="moqt://origin:4443").publisher(timeslice_ms=500)
    pub.publish(input.external_input_id, stream_key, "testsrc", f"stream/{org}/{input.external_input_id}")
    ...
    pub.stop()

The source's fMP4 is split into single-track CMAF (``media.Fmp4Splitter``); the
CMSF catalog (with each track's ``initData``) goes out on ``.catalog`` and every
track as groups (one per GOP) of objects (one per CMAF chunk, ``timeslice_ms``
long when the publisher encodes). The stream key proves the right to publish:
it is the AUTHORIZATION TOKEN of CLIENT_SETUP and of PUBLISH_NAMESPACE.

:class:`AsyncPublisher` is the asyncio API; :class:`Publisher` runs it on a
private event-loop thread for synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import structlog

from clutchcall.streams._broadcast import BroadcastSender
from clutchcall.streams._connect import namespace_from_text, relay_endpoint, resolve_tls
from clutchcall.streams._errors import ConfigurationError, StreamsError
from clutchcall.streams._loop import LoopThread
from clutchcall.streams._sources import ByteSource, EncoderSettings, SourceError, open_source
from media import (
    BroadcastPackager,
    Catalog,
    CatalogUpdate,
    Fmp4Splitter,
    Fragment,
    InitSegment,
    MediaError,
    ObjectReady,
    TrackPlan,
)
from moqt.aio import ConnectionClosed, MoqtConnection, RequestFailed, SessionOptions, connect
from moqt.errors import LocalError, RequestErrorCode
from moqt.events import Event, PublishNamespaceAccepted, PublishNamespaceCancelled, SessionClosed

__all__ = ["AsyncPublisher", "PublishError", "PublishResult", "Publisher", "SourceError"]

_log = structlog.get_logger("clutchcall.streams.publisher")

_AUTH_CODES = frozenset(
    {
        RequestErrorCode.UNAUTHORIZED,
        RequestErrorCode.MALFORMED_AUTH_TOKEN,
        RequestErrorCode.EXPIRED_AUTH_TOKEN,
    }
)
_FLUSH_GRACE = 0.5


class PublishError(StreamsError):
    """Publishing failed. ``reason``: ``refused`` (wrong key / namespace), ``network``,
    ``source`` (the media could not be read or parsed) or ``ended`` (the relay ended it)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PublishResult:
    """How a broadcast ended: ``reason`` is ``stopped`` (``stop()``) or ``source_ended``."""

    reason: str
    objects: int
    bytes: int
    duration: float


class AsyncPublisher:
    """Publishes one broadcast at a time to ``relay_url`` (see the module docstring)."""

    def __init__(
        self,
        relay_url: str,
        *,
        timeslice_ms: int = 1000,
        group_duration: float = 2.0,
        video_bitrate: int = 2_500_000,
        loop_file: bool = False,
        verify: bool | None = None,
        cafile: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if not isinstance(timeslice_ms, int) or not 50 <= timeslice_ms <= 10_000:
            raise ConfigurationError("timeslice_ms must be an integer from 50 to 10000")
        if not 0.25 <= group_duration <= 20:
            raise ConfigurationError("group_duration must be 0.25 to 20 seconds")
        self.relay_url = relay_endpoint(relay_url)
        self.timeslice_ms = timeslice_ms
        self._tls = resolve_tls(verify, cafile)
        self._encoder = EncoderSettings(
            chunk_seconds=timeslice_ms / 1000,
            gop_seconds=group_duration,
            video_bitrate=video_bitrate,
            loop=loop_file,
        )
        self._group_duration = group_duration
        self._connect_timeout = connect_timeout
        self._task: asyncio.Task[PublishResult] | None = None
        self._stop = asyncio.Event()
        self._sender: BroadcastSender | None = None
        self._started_at = 0.0
        self._final_catalog: Catalog | None = None

    # --- API -----------------------------------------------------------------------------

    async def publish(
        self, external_input_id: str, stream_key: str, source: Any, namespace: str
    ) -> None:
        """Connect, prove ``stream_key`` for ``namespace`` and stream ``source`` in the
        background. Returns once the relay accepted the namespace; raises
        :class:`PublishError` if it refused (``reason="refused"``) or was unreachable."""
        if self._task is not None and not self._task.done():
            raise ConfigurationError("this publisher is already publishing: stop() it first")
        if not external_input_id or not stream_key:
            raise ConfigurationError("external_input_id and stream_key are required")
        ns = namespace_from_text(namespace)
        if ns[-1].decode() != external_input_id:
            raise ConfigurationError(
                f"namespace {namespace!r} does not end with the input id {external_input_id!r}"
            )
        media = await open_source(source, self._encoder)
        self._stop = asyncio.Event()
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._run(ns, stream_key, media, started))
        try:
            await asyncio.shield(started)
        except BaseException:
            if not self._task.done():
                self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            raise

    async def wait(self) -> PublishResult:
        """Wait until the broadcast ends; raises :class:`PublishError` if it failed."""
        if self._task is None:
            raise ConfigurationError("nothing is being published")
        return await asyncio.shield(self._task)

    async def stop(self) -> PublishResult | None:
        """End the broadcast cleanly (final catalog, PUBLISH_DONE) and disconnect."""
        if self._task is None:
            return None
        self._stop.set()
        try:
            return await self._task
        except PublishError:
            return None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def statistics(self) -> dict[str, int]:
        if self._sender is None:
            return {"subscribers": 0, "objects_sent": 0, "bytes_sent": 0, "catalogs_sent": 0}
        s = self._sender.statistics()
        return {
            "subscribers": s.subscribers,
            "objects_sent": s.objects_sent,
            "bytes_sent": s.bytes_sent,
            "catalogs_sent": s.catalogs_sent,
        }

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ---------------------------------------------------------------------

    async def _run(
        self,
        ns: tuple[bytes, ...],
        stream_key: str,
        media: ByteSource,
        started: asyncio.Future[None],
    ) -> PublishResult:
        key = stream_key.encode()
        options = SessionOptions(auth_token=key, implementation="clutchcall-python-publisher")
        try:
            try:
                async with connect(
                    self.relay_url,
                    verify=self._tls.verify,
                    cafile=self._tls.cafile,
                    options=options,
                    setup_timeout=self._connect_timeout,
                ) as conn:
                    return await self._serve(conn, ns, key, media, started)
            except ConnectionClosed as exc:
                raise _closed_error(exc) from None
            except (OSError, TimeoutError, ConnectionError) as exc:
                raise PublishError("network", f"cannot reach {self.relay_url}: {exc}") from None
        except BaseException as exc:
            if not started.done():
                if isinstance(exc, Exception):
                    started.set_exception(exc)
                else:
                    started.cancel()
            raise
        finally:
            await media.aclose()

    async def _serve(
        self,
        conn: MoqtConnection,
        ns: tuple[bytes, ...],
        key: bytes,
        media: ByteSource,
        started: asyncio.Future[None],
    ) -> PublishResult:
        session = conn.session
        sender = self._sender = BroadcastSender(session, ns)
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_event(_conn: MoqtConnection, event: Event) -> None:
            if isinstance(event, PublishNamespaceCancelled) and not ended.done():
                ended.set_result(f"the relay cancelled the namespace: {event.reason}")
            elif isinstance(event, SessionClosed) and not ended.done():
                ended.set_result(f"session closed ({event.code:#x}): {event.reason}")
            else:
                sender.on_event(event)

        ns_request = session.publish_namespace(ns, auth_token=key)
        try:
            await conn.request(ns_request, PublishNamespaceAccepted)
        except RequestFailed as exc:
            rejection = exc.rejection
            what = "stream key" if rejection.error in _AUTH_CODES else "namespace"
            raise PublishError(
                "refused", f"the relay refused the {what}: {rejection.reason or rejection.code}"
            ) from None
        conn.set_event_handler(on_event)
        self._started_at = time.monotonic()
        _log.info("publishing", namespace="/".join(p.decode() for p in ns), relay=self.relay_url)
        started.set_result(None)

        pump = asyncio.ensure_future(self._pump(sender, media, ns))
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            waits: list[asyncio.Future[Any]] = [pump, stop, ended]
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (pump, stop):
                if not fut.done():
                    fut.cancel()
            await asyncio.gather(pump, stop, return_exceptions=True)
        if ended in done:
            raise PublishError("ended", ended.result())
        final = self._final_catalog
        if pump in done and pump.exception() is not None:
            failure = pump.exception()
            sender.finish(final, reason="source failed")
            await asyncio.sleep(_FLUSH_GRACE)
            if isinstance(failure, SourceError | MediaError):
                raise PublishError("source", str(failure)) from failure
            assert failure is not None
            raise failure
        reason = "stopped" if stop in done else "source_ended"
        sender.finish(final)
        with contextlib.suppress(LocalError):
            session.publish_namespace_done(ns_request)
        await asyncio.sleep(_FLUSH_GRACE)  # let the last streams leave before the close
        stats = sender.statistics()
        return PublishResult(
            reason, stats.objects_sent, stats.bytes_sent, time.monotonic() - self._started_at
        )

    async def _pump(
        self, sender: BroadcastSender, media: ByteSource, ns: tuple[bytes, ...]
    ) -> None:
        splitter = Fmp4Splitter(split_tracks=True)
        names: dict[int, str] = {}
        inits: dict[int, InitSegment] = {}
        packager: BroadcastPackager | None = None
        first_video: str | None = None
        while True:
            data = await media.read()
            if not data:
                splitter.close()
                break
            for item in splitter.feed(data):
                if isinstance(item, InitSegment):
                    track = item.track
                    if track.track_id not in names:
                        if packager is not None:
                            raise SourceError("the source added a track after it started")
                        names[track.track_id] = _track_name(track.role, names.values())
                    inits[track.track_id] = item
                    if packager is not None:  # a new header mid-stream (encoder restart)
                        for out in packager.push(names[track.track_id], item):
                            self._emit(sender, out, first_video)
                    continue
                assert isinstance(item, Fragment)
                if packager is None:
                    packager, first_video = self._packager(inits, names, media, sender)
                    for track_id, track_name in names.items():
                        for out in packager.push(track_name, inits[track_id]):
                            self._emit(sender, out, first_video)
                name = names.get(item.track_id)
                if name is None:
                    raise SourceError(f"fragment of undeclared track {item.track_id}")
                for out in packager.push(name, item):
                    self._emit(sender, out, first_video)
                self._final_catalog = packager.catalog
        if packager is not None:
            self._final_catalog = packager.end()

    def _packager(
        self,
        inits: dict[int, InitSegment],
        names: dict[int, str],
        media: ByteSource,
        sender: BroadcastSender,
    ) -> tuple[BroadcastPackager, str | None]:
        plans = []
        first_video = None
        for track_id, name in names.items():
            video = inits[track_id].track.role == "video"
            if video and first_video is None:
                first_video = name
            bitrate = (media.video_bitrate if video else media.audio_bitrate) or (
                2_500_000 if video else 128_000)  # fmt: skip
            priority = 2 if video else 1
            plans.append(
                TrackPlan(name, bitrate, priority=priority, alt_group=1 if video else None)
            )
            sender.add_track(name, priority)
        return BroadcastPackager(plans, group_duration=self._group_duration), first_video

    @staticmethod
    def _emit(
        sender: BroadcastSender, out: CatalogUpdate | ObjectReady, first_video: str | None
    ) -> None:
        if isinstance(out, CatalogUpdate):
            sender.send_catalog(out.catalog)
            return
        obj = out.object
        if out.track == first_video and obj.object_id == 0:
            sender.repeat_catalog()
        sender.send_object(out.track, obj.group_id, obj.object_id, obj.payload)


def _track_name(role: str, taken: Any) -> str:
    base = role if role in ("video", "audio") else "data"
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base}{n}" in used:
        n += 1
    return f"{base}{n}"


def _closed_error(exc: ConnectionClosed) -> PublishError:
    if exc.code == 0x2 or "unauthor" in exc.reason.lower() or "auth" in exc.reason.lower():
        return PublishError("refused", f"the relay closed the session: {exc.reason or exc.code}")
    return PublishError("network", f"session closed ({exc.code:#x}): {exc.reason}")


class Publisher:
    """The synchronous publisher: the same API as :class:`AsyncPublisher`, blocking."""

    def __init__(self, relay_url: str, **kwargs: Any) -> None:
        self._thread = LoopThread("clutchcall-publisher")
        try:
            self._async = self._thread.run(_make_async(relay_url, kwargs))
        except BaseException:
            self._thread.stop()
            raise

    def publish(self, external_input_id: str, stream_key: str, source: Any, namespace: str) -> None:
        """Start publishing (returns once the relay accepted); see :meth:`AsyncPublisher.publish`."""
        self._thread.run(self._async.publish(external_input_id, stream_key, source, namespace))

    def wait(self, timeout: float | None = None) -> PublishResult:
        return self._thread.run(self._async.wait(), timeout)

    def stop(self) -> PublishResult | None:
        try:
            return self._thread.run(self._async.stop())
        finally:
            self._thread.stop()

    @property
    def running(self) -> bool:
        return self._async.running

    def statistics(self) -> dict[str, int]:
        return self._async.statistics()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _make_async(relay_url: str, kwargs: dict[str, Any]) -> AsyncPublisher:
    return AsyncPublisher(relay_url, **kwargs)
