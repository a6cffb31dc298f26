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

from clutchcall.streams._backoff import Backoff
from clutchcall.streams._broadcast import BroadcastSender
from clutchcall.streams._connect import (
    namespace_from_text,
    relay_endpoint,
    resolve_tls,
    unreachable_detail,
)
from clutchcall.streams._errors import ConfigurationError, StreamsError
from clutchcall.streams._loop import LoopThread
from clutchcall.streams._packaging import Output, SourcePump
from clutchcall.streams._sources import ByteSource, EncoderSettings, SourceError, open_source
from media import (
    CatalogUpdate,
    MediaError,
)
from moqt._log import library_logger
from moqt.aio import ConnectionClosed, MoqtConnection, RequestFailed, SessionOptions, connect
from moqt.errors import LocalError, RequestErrorCode
from moqt.events import (
    Event,
    GoawayReceived,
    PublishNamespaceAccepted,
    PublishNamespaceCancelled,
    SessionClosed,
)

__all__ = ["AsyncPublisher", "PublishError", "PublishResult", "Publisher", "SourceError"]

_log = library_logger("clutchcall.streams.publisher")

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
        reconnect: float = 10.0,
        fallback_urls: tuple[str, ...] | list[str] = (),
    ) -> None:
        """``reconnect``: after losing the relay (or its GOAWAY), keep trying this many
        seconds - its new URI, else ``relay_url`` and ``fallback_urls`` in turn (other
        origins) - while the source keeps running; 0 never reconnects."""
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
        if reconnect < 0:
            raise ConfigurationError("reconnect must be >= 0 seconds")
        self._reconnect = reconnect
        self._urls = (self.relay_url, *(relay_endpoint(u) for u in fallback_urls))
        self._sender: BroadcastSender | None = None
        self._pump: SourcePump | None = None
        self._started_at = 0.0
        self._goaway_uri = ""
        self._connected_since: float | None = None
        self._catalog_group = 0
        self._totals = [0, 0]  # objects, bytes sent by sessions that ended
        self._reconnects = 0

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
        except asyncio.CancelledError:  # our caller gave up: stop the attempt
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            raise
        except BaseException:  # the attempt failed: let it release the source, then raise
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
        objects, size = self._totals
        subscribers = 0
        if self._sender is not None:
            current = self._sender.statistics()
            objects, size = objects + current.objects_sent, size + current.bytes_sent
            subscribers = current.subscribers
        return {"subscribers": subscribers, "objects_sent": objects, "bytes_sent": size,
                "reconnects": self._reconnects}  # fmt: skip

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
        pump = SourcePump(media, group_duration=self._group_duration)
        self._pump = pump
        produced = asyncio.ensure_future(pump.run(self._on_output))
        try:
            return await self._sessions(ns, stream_key.encode(), produced, started)
        except BaseException as exc:
            if not started.done():
                if isinstance(exc, Exception):
                    started.set_exception(exc)
                else:
                    started.cancel()
            raise
        finally:
            self._sender = None
            if not produced.done():
                produced.cancel()
            await asyncio.gather(produced, return_exceptions=True)
            await media.aclose()

    async def _sessions(
        self,
        ns: tuple[bytes, ...],
        key: bytes,
        produced: asyncio.Future[None],
        started: asyncio.Future[None],
    ) -> PublishResult:
        """One session after another: reconnect (GOAWAY's URI, else the URLs in turn)
        for up to ``reconnect`` seconds after losing one; the source keeps running."""
        backoff = Backoff(0.2, window=self._reconnect, clock=asyncio.get_running_loop().time)
        index = 0
        while True:
            url = self._goaway_uri or self._urls[index % len(self._urls)]
            self._goaway_uri = ""
            try:
                attempt = asyncio.ensure_future(self._session(url, ns, key, produced, started))
                if await self._stopped_while_connecting(attempt, started):
                    return self._result("stopped")
                return attempt.result()
            except PublishError as exc:
                if started.done() and self._stop.is_set():  # stop() while reconnecting
                    return self._result("stopped")
                retry = (
                    started.done()
                    and exc.reason in ("network", "ended")
                    and self._reconnect > 0
                    and not self._stop.is_set()
                    and not produced.done()
                )
                if not retry:
                    raise
                if self._connected_since is not None:  # the window counts from the last loss
                    backoff.restart()
                pause = backoff.failed()
                if pause is None:
                    raise
                self._reconnects += 1
                index += 1
                _log.warning("publisher_reconnecting", after=exc.detail, relay=url)
                await asyncio.sleep(pause)
                if self._stop.is_set():
                    return self._result("stopped")

    async def _stopped_while_connecting(
        self, attempt: asyncio.Future[PublishResult], started: asyncio.Future[None]
    ) -> bool:
        """Wait for ``attempt``; True if ``stop()`` came while (re)connecting, which
        cancels it (once connected, the session itself ends the broadcast cleanly)."""
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            either: list[asyncio.Future[Any]] = [attempt, stopper]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if attempt.done() or self._sender is not None or not started.done():
                await asyncio.wait([attempt])
                return False
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            return True
        finally:
            stopper.cancel()

    async def _session(
        self,
        url: str,
        ns: tuple[bytes, ...],
        key: bytes,
        produced: asyncio.Future[None],
        started: asyncio.Future[None],
    ) -> PublishResult:
        self._connected_since = None
        options = SessionOptions(auth_token=key, implementation="clutchcall-python-publisher")
        try:
            async with connect(
                url, verify=self._tls.verify, cafile=self._tls.cafile, options=options,
                setup_timeout=self._connect_timeout,
            ) as conn:  # fmt: skip
                try:
                    return await self._serve(conn, ns, key, produced, started)
                except LocalError:
                    # The relay ended the session under us (e.g. it refused us right after
                    # SETUP, before our first request): report how it closed it.
                    if not conn.session.closed:
                        raise
                    closed = conn.close_event or await conn.wait_closed(grace=2.0)
                    raise _closed_error(
                        ConnectionClosed(closed.code, closed.reason, closed.by_peer)
                    ) from None
                finally:
                    self._sender = None
        except ConnectionClosed as exc:
            raise _closed_error(exc) from None
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise PublishError("network", unreachable_detail(url, exc)) from None

    async def _serve(
        self,
        conn: MoqtConnection,
        ns: tuple[bytes, ...],
        key: bytes,
        produced: asyncio.Future[None],
        started: asyncio.Future[None],
    ) -> PublishResult:
        session = conn.session
        pump = self._pump
        assert pump is not None
        sender = BroadcastSender(session, ns, first_catalog_group=self._catalog_group)
        ended: asyncio.Future[PublishError] = asyncio.get_running_loop().create_future()

        def on_event(_conn: MoqtConnection, event: Event) -> None:
            if ended.done():
                sender.on_event(event)
            elif isinstance(event, PublishNamespaceCancelled):
                ended.set_result(PublishError("ended", f"the relay cancelled: {event.reason}"))
            elif isinstance(event, GoawayReceived):
                self._goaway_uri = event.new_uri
                ended.set_result(PublishError("network", "the relay is going away (GOAWAY)"))
            elif isinstance(event, SessionClosed):
                ended.set_result(_closed_error(ConnectionClosed(event.code, event.reason, True)))
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
        for name, priority in pump.tracks:
            sender.add_track(name, priority)
        if pump.catalog is not None:
            sender.send_catalog(pump.catalog)
        self._sender = sender
        self._connected_since = time.monotonic()
        if not started.done():
            self._started_at = time.monotonic()
            started.set_result(None)
        _log.info("publishing", namespace="/".join(p.decode() for p in ns), relay=conn.path)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            waits: list[asyncio.Future[Any]] = [produced, stop, ended]
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            self._sender = None
            self._catalog_group = sender.next_catalog_group
            self._totals[0] += sender.statistics().objects_sent
            self._totals[1] += sender.statistics().bytes_sent
        if ended in done and produced not in done and stop not in done:
            raise ended.result()
        final = pump.final_catalog or pump.catalog
        failure = produced.exception() if produced.done() and not produced.cancelled() else None
        if failure is not None:
            sender.finish(final, reason="source failed")
            await asyncio.sleep(_FLUSH_GRACE)
            if isinstance(failure, SourceError | MediaError):
                raise PublishError("source", str(failure)) from failure
            raise failure
        reason = "source_ended" if produced.done() else "stopped"
        sender.finish(final)
        with contextlib.suppress(LocalError):
            session.publish_namespace_done(ns_request)
        await asyncio.sleep(_FLUSH_GRACE)  # let the last streams leave before the close
        return self._result(reason)

    def _result(self, reason: str) -> PublishResult:
        objects, size = self._totals
        return PublishResult(reason, objects, size, time.monotonic() - self._started_at)

    def _on_output(self, out: Output) -> None:
        sender = self._sender
        if sender is None:  # between sessions: the live source moves on regardless
            return
        if isinstance(out, CatalogUpdate):  # always before the objects of its tracks
            assert self._pump is not None
            for name, priority in self._pump.tracks:
                sender.add_track(name, priority)
            sender.send_catalog(out.catalog)
            return
        obj = out.object
        if self._pump is not None and out.track == self._pump.first_video and obj.object_id == 0:
            sender.repeat_catalog()
        sender.send_object(out.track, obj.group_id, obj.object_id, obj.payload)


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
