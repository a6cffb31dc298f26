"""The synchronous viewer of the seed's Recipe 4 (an event-loop thread of its own)."""

from __future__ import annotations

from typing import Any

from clutchcall.streams._loop import LoopThread
from clutchcall.streams._viewer import AsyncBroadcastViewer, ChunkCallback, CloseCallback
from clutchcall.streams._vod import AsyncVodViewer, is_vod_url

__all__ = ["BroadcastViewer"]


class BroadcastViewer:
    """The synchronous viewer of the seed: ``BroadcastViewer.open(url, on_chunk=, on_close=)``.

    It runs :class:`AsyncBroadcastViewer` on a private event-loop thread; the
    callbacks are called on that thread. ``close()`` stops it and waits for
    ``on_close``. An on-demand URL (``<base>/vod/pb_.../catalog.json?token=``)
    plays the asset over HTTPS instead (:class:`AsyncVodViewer`), with the same
    callbacks, ending with ``on_close("ended", ...)``.
    """

    def __init__(self, thread: LoopThread, inner: AsyncBroadcastViewer | AsyncVodViewer) -> None:
        self._thread = thread
        self._inner = inner

    @classmethod
    def open(
        cls,
        url: str,
        *,
        on_chunk: ChunkCallback | None = None,
        on_close: CloseCallback | None = None,
        **options: Any,
    ) -> BroadcastViewer:
        """Start watching; see :meth:`AsyncBroadcastViewer.open` for ``options``."""
        thread = LoopThread("clutchcall-viewer")
        try:
            inner: AsyncBroadcastViewer | AsyncVodViewer
            if is_vod_url(url):
                inner = thread.run(
                    AsyncVodViewer.open(url, on_chunk=on_chunk, on_close=on_close, **options)
                )
            else:
                inner = thread.run(
                    AsyncBroadcastViewer.open(url, on_chunk=on_chunk, on_close=on_close, **options)
                )
        except BaseException:
            thread.stop()
            raise
        return cls(thread, inner)

    def close(self, timeout: float = 10.0) -> tuple[str, str]:
        """Stop watching; returns ``(reason, detail)`` (after ``on_close`` ran)."""
        if self._thread.in_loop():  # from a callback: cannot wait here
            self._thread.loop.call_soon(self._inner._finish, "closed", "closed by the application")
            return ("closed", "closed by the application")
        try:
            return self._thread.run(self._inner.close(), timeout)
        finally:
            self._thread.stop()

    def wait(self, timeout: float | None = None) -> tuple[str, str]:
        """Block until the viewer ends (broadcast ended, auth failure, network...)."""
        return self._thread.run(self._inner.wait_closed(), timeout)

    @property
    def closed(self) -> bool:
        return self._inner.closed

    @property
    def rendition(self) -> str | None:
        return self._inner.rendition

    @property
    def renditions(self) -> list[str]:
        return self._inner.renditions

    def select_rendition(self, name: str | None) -> None:
        self._thread.loop.call_soon_threadsafe(self._inner.select_rendition, name)

    def statistics(self) -> dict[str, Any]:
        return self._inner.statistics()

    def __enter__(self) -> BroadcastViewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
