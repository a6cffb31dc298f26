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
from clutchcall.streams._vod import subject_of_token, vod_url

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
        base_url: str | None = None,
        **options: Any,
    ) -> None:
        self._open_viewer = open_viewer
        self._token = token
        self._base_url = base_url
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
        """Start playing ``lv_...`` (live over MoQT) or ``pb_...`` (on demand: the catalog and
        CMAF segments over HTTPS from ``base_url``'s ``/vod/``, with ``token`` if given)."""
        if self._viewer is not None and not self._viewer.closed:
            raise ConfigurationError("already playing: stop() first")
        if playback_id.startswith("pb_"):
            self._play_vod(playback_id)
            return
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

    def _play_vod(self, playback_id: str) -> None:
        if not self._base_url:
            raise ConfigurationError(
                f"play({playback_id!r}) needs the server of /vod/: Streams(base_url=...)"
            )
        if self._token is not None:
            subject = subject_of_token(self._token)
            if subject != playback_id:
                raise ConfigurationError(f"the playback token is for {subject}, not {playback_id}")
        self._started.clear()
        self._viewer = BroadcastViewer.open(
            vod_url(self._base_url, playback_id, self._token),
            on_chunk=self._chunk,
            on_close=self._closed,
            **self._options,
        )

    def wait(self, timeout: float | None = None) -> tuple[str, str]:
        """Block until playback ends (``("ended", ...)`` at the end of an asset)."""
        if self._viewer is None:
            raise ConfigurationError("play() first")
        return self._viewer.wait(timeout)

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
        if reason not in ("closed", "ended") and self._on_error is not None:
            self._on_error(PlaybackError(reason, detail))
