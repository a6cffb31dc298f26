"""A ready-made :class:`~origin.rtmp.publish.PublishSink` that re-muxes a publish into FLV bytes.

Typical use: pipe an RTMP publish into ``ffmpeg -f flv -i pipe:0 ...``::

    async def write(data: bytes) -> None:
        proc.stdin.write(data)
        await proc.stdin.drain()      # backpressure reaches the encoder through TCP

    sink = FlvSink(write, on_end=handle_end)

The FLV header is written just before the first media tag, so its audio/video
flags can follow the encoder's ``onMetaData`` (``audiocodecid`` / ``videocodecid``):
ffmpeg then does not wait for a stream that will never come. ``duration`` and
``filesize`` are dropped from the metadata (a live stream has neither; ffmpeg
encoders put their ``-t`` there). Metadata that arrives after media started is
not repeated into the byte stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from origin.rtmp.amf0 import AmfValue
from origin.rtmp.flv import FlvMuxer
from origin.rtmp.publish import PublishEnd
from origin.rtmp.tags import MediaTag

__all__ = ["FlvSink"]

_NOT_LIVE: Final = frozenset({"duration", "filesize"})


class FlvSink:
    __slots__ = (
        "_end",
        "_metadata",
        "_muxer",
        "_started",
        "_write",
        "bytes_written",
        "late_metadata",
    )

    def __init__(
        self,
        write: Callable[[bytes], Awaitable[None]],
        *,
        on_end: Callable[[PublishEnd], Awaitable[None]] | None = None,
    ) -> None:
        self._write = write
        self._end = on_end
        self._muxer = FlvMuxer()
        self._metadata: dict[str, AmfValue] | None = None
        self._started = False
        self.bytes_written = 0
        self.late_metadata = 0

    async def _emit(self, data: bytes) -> None:
        self.bytes_written += len(data)
        await self._write(data)

    async def on_metadata(self, metadata: dict[str, AmfValue]) -> None:
        if self._started:
            self.late_metadata += 1
            return
        self._metadata = {k: v for k, v in metadata.items() if k not in _NOT_LIVE}

    async def on_media(self, tag: MediaTag) -> None:
        if not self._started:
            self._started = True
            meta = self._metadata or {}
            has_audio = "audiocodecid" in meta or not meta
            has_video = "videocodecid" in meta or not meta
            head = self._muxer.header(has_audio=has_audio, has_video=has_video)
            if meta:
                head += self._muxer.metadata(meta)
            await self._emit(head + self._muxer.tag(tag))
            return
        await self._emit(self._muxer.tag(tag))

    async def on_end(self, end: PublishEnd) -> None:
        if self._end is not None:
            await self._end(end)
