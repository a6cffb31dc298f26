"""The Python twin of the browser SDK's viewer: ``streams.viewer(on_started=, on_error=)``.

The seed's TypeScript is ``viewer({ onStarted, onError })``, ``viewer.attach(el)``,
``await viewer.play("lv_...")``, ``viewer.stop()``. Here ``attach`` takes where the
media goes (a binary file-like object or a callable taking bytes) instead of a
``<video>`` element; what arrives is the same playable fragmented MP4 that
:class:`BroadcastViewer` delivers (init segment first).

:class:`AsyncPlayer` (``AsyncStreams.viewer()``) is the implementation; :class:`Player`
(``Streams.viewer()``) runs it on an event-loop thread of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, BinaryIO

from clutchcall.streams._dataplane import namespace_of_token, viewer_target
from clutchcall.streams._errors import ConfigurationError, StreamsError
from clutchcall.streams._http import ClientConfig
from clutchcall.streams._loop import LoopThread
from clutchcall.streams._viewer import AsyncBroadcastViewer
from clutchcall.streams._vod import AsyncVodViewer, subject_of_token, vod_url

__all__ = ["AsyncPlayer", "PlaybackError", "Player"]

Sink = BinaryIO | Callable[[bytes], object]


class PlaybackError(StreamsError):
    """Playback ended for a reason other than :meth:`Player.stop` (``reason`` as on_close)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class AsyncPlayer:
    def __init__(
        self,
        config: ClientConfig,
        *,
        on_started: Callable[[], object] | None = None,
        on_error: Callable[[PlaybackError], object] | None = None,
        **options: Any,
    ) -> None:
        self._config = config
        self._on_started = on_started
        self._on_error = on_error
        self._options = options
        self._sink: Sink | None = None
        self._viewer: AsyncBroadcastViewer | AsyncVodViewer | None = None
        self._started = asyncio.Event()

    def attach(self, sink: Sink) -> None:
        """Where the media goes: ``out = open("live.mp4", "wb"); viewer.attach(out)``."""
        if not (callable(sink) or hasattr(sink, "write")):
            raise ConfigurationError("attach() takes a binary file-like object or a callable")
        self._sink = sink

    async def play(self, playback_id: str) -> None:
        """Start playing ``lv_...`` (live over MoQT) or ``pb_...`` (on demand: the catalog and
        CMAF segments over HTTPS from ``base_url``'s ``/vod/``, with ``token`` if given)."""
        if self._viewer is not None and not self._viewer.closed:
            raise ConfigurationError("already playing: stop() first")
        callbacks: dict[str, Any] = {"on_chunk": self._chunk, "on_close": self._closed}
        if playback_id.startswith("pb_"):
            url = self._vod_url(playback_id)
            self._started = asyncio.Event()  # of the loop that plays
            self._viewer = await AsyncVodViewer.open(url, **callbacks, **self._options)
            return
        namespace = self._live_namespace(playback_id)
        relay, token, ns = viewer_target(self._config, namespace, None)
        self._started = asyncio.Event()
        self._viewer = await AsyncBroadcastViewer.open(
            relay, token=token, namespace=ns, **callbacks, **self._options
        )

    def _live_namespace(self, playback_id: str) -> str:
        if not playback_id.startswith("lv_"):
            raise ConfigurationError(f"{playback_id!r} is not a playback id (lv_... or pb_...)")
        token = self._config.token
        if token is None:
            raise ConfigurationError(
                "play() needs a playback token: Streams(token=..., relay_url=...)"
            )
        namespace = namespace_of_token(token)
        if namespace.rsplit("/", 1)[-1] != playback_id:
            raise ConfigurationError(f"the playback token is for {namespace}, not {playback_id}")
        return namespace

    def _vod_url(self, playback_id: str) -> str:
        base_url, token = self._config.base_url, self._config.token
        if not base_url:
            raise ConfigurationError(
                f"play({playback_id!r}) needs the server of /vod/: Streams(base_url=...)"
            )
        if token is not None:
            subject = subject_of_token(token)
            if subject != playback_id:
                raise ConfigurationError(f"the playback token is for {subject}, not {playback_id}")
        return vod_url(base_url, playback_id, token)

    async def wait(self) -> tuple[str, str]:
        """Until playback ends (``("ended", ...)`` at the end of an asset)."""
        if self._viewer is None:
            raise ConfigurationError("play() first")
        return await self._viewer.wait_closed()

    async def stop(self) -> None:
        if self._viewer is not None:
            await self._viewer.close()

    async def wait_started(self) -> bool:
        """Until the first media chunk was delivered (True), or False if playback ended first."""
        if self._viewer is None:
            raise ConfigurationError("play() first")
        started = asyncio.ensure_future(self._started.wait())
        closed = asyncio.ensure_future(self._viewer.wait_closed())
        try:
            await asyncio.wait({started, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
            closed.cancel()
        return self._started.is_set()

    def _chunk(self, is_init: bool, chunk: Any) -> None:
        sink = self._sink
        if sink is not None:
            if hasattr(sink, "write"):
                sink.write(chunk.data)
            else:
                sink(chunk.data)
        if not is_init and not self._started.is_set():
            self._started.set()
            if self._on_started is not None:
                self._on_started()

    def _closed(self, reason: str, detail: str) -> None:
        if reason not in ("closed", "ended") and self._on_error is not None:
            self._on_error(PlaybackError(reason, detail))


class Player:
    """:class:`AsyncPlayer` on an event-loop thread of its own from ``play()`` to ``stop()``
    (callbacks run there); ``wait`` and ``wait_started`` take a ``timeout`` in seconds."""

    def __init__(self, player: AsyncPlayer) -> None:
        self._inner = player
        self._thread: LoopThread | None = None

    def _loop(self) -> LoopThread:
        if self._thread is None:
            raise ConfigurationError("play() first")
        return self._thread

    def attach(self, sink: Sink) -> None:
        """Where the media goes: ``out = open("live.mp4", "wb"); viewer.attach(out)``."""
        self._inner.attach(sink)

    def play(self, playback_id: str) -> None:
        """Start playing ``lv_...`` (live over MoQT) or ``pb_...`` (on demand over HTTPS)."""
        if self._thread is None:
            self._thread = LoopThread("clutchcall-player")
        self._thread.run(self._inner.play(playback_id))

    def wait(self, timeout: float | None = None) -> tuple[str, str]:
        """Block until playback ends (``("ended", ...)`` at the end of an asset)."""
        return self._loop().run(self._inner.wait(), timeout)

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                thread.run(self._inner.stop())
            finally:
                thread.stop()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the first media chunk was delivered (True) or ``timeout`` (False)."""
        try:
            return self._loop().run(asyncio.wait_for(self._inner.wait_started(), timeout))
        except TimeoutError:
            return False
