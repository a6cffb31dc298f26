"""The Python twin of the browser SDK's viewer: ``streams.viewer(on_started=, on_error=)``.

The seed's TypeScript is ``viewer({ onStarted, onError })``, ``viewer.attach(el)``,
``await viewer.play("lv_...")``, ``viewer.stop()``. Here ``attach`` takes where the
media goes (a binary file-like object or a callable taking bytes) instead of a
``<video>`` element; what arrives is the same playable fragmented MP4 that
:class:`BroadcastViewer` delivers (init segment first).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from clutchcall.streams._dataplane import namespace_of_token
from clutchcall.streams._errors import ConfigurationError, StreamsError
from clutchcall.streams._viewer_sync import BroadcastViewer

__all__ = ["PlaybackError", "Player"]

Sink = BinaryIO | Callable[[bytes], object]


class PlaybackError(StreamsError):
    """Playback ended for a reason other than :meth:`Player.stop` (``reason`` as on_close)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Player:
    def __init__(
        self,
        open_viewer: Callable[..., BroadcastViewer],
        token: str | None,
        *,
        on_started: Callable[[], object] | None = None,
        on_error: Callable[[PlaybackError], object] | None = None,
        **options: Any,
    ) -> None:
        self._open_viewer = open_viewer
        self._token = token
        self._on_started = on_started
        self._on_error = on_error
        self._options = options
        self._sink: Sink | None = None
        self._viewer: BroadcastViewer | None = None
        self._started = threading.Event()

    def attach(self, sink: Sink) -> None:
        """Where the media goes: ``out = open("live.mp4", "wb"); viewer.attach(out)``."""
        if not (callable(sink) or hasattr(sink, "write")):
            raise ConfigurationError("attach() takes a binary file-like object or a callable")
        self._sink = sink

    def play(self, playback_id: str) -> None:
        """Start playing ``lv_...`` (live over MoQT). ``pb_...`` (VOD) is not served yet."""
        if self._viewer is not None and not self._viewer.closed:
            raise ConfigurationError("already playing: stop() first")
        if playback_id.startswith("pb_"):
            raise ConfigurationError(f"{playback_id}: VOD playback (pb_ ids) is not available yet")
        if not playback_id.startswith("lv_"):
            raise ConfigurationError(f"{playback_id!r} is not a playback id (lv_... or pb_...)")
        if self._token is None:
            raise ConfigurationError(
                "play() needs a playback token: Streams(token=..., relay_url=...)"
            )
        namespace = namespace_of_token(self._token)
        if namespace.rsplit("/", 1)[-1] != playback_id:
            raise ConfigurationError(f"the playback token is for {namespace}, not {playback_id}")
        self._started.clear()
        self._viewer = self._open_viewer(
            namespace, on_chunk=self._chunk, on_close=self._closed, **self._options
        )

    def stop(self) -> None:
        if self._viewer is not None:
            self._viewer.close()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the first media chunk was delivered (True) or ``timeout``."""
        return self._started.wait(timeout)

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
        if reason != "closed" and self._on_error is not None:
            self._on_error(PlaybackError(reason, detail))
