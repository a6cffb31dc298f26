"""Where a publisher's fMP4 bytes come from.

``source`` may be:

* ``"testsrc"`` (or ``"testsrc:WIDTHxHEIGHT"``): ffmpeg's ``testsrc2`` + a sine tone,
  encoded live (H.264 + AAC) as fragmented MP4;
* a path to a media file: encoded at its native rate (``-re``), optionally looped;
* a live fMP4 stream: a ``subprocess.Popen`` (its ``stdout``), a binary file object
  (``read(n)``, read on a worker thread), an ``asyncio.StreamReader``, or any
  (async) iterable of ``bytes`` - e.g. an ffmpeg you started with
  ``-f mp4 -movflags empty_moov+default_base_moof+frag_keyframe pipe:1``.

Every form becomes a :class:`ByteSource`: ``await read()`` returns the next bytes
(``b""`` at the end) and ``await aclose()`` releases it (terminating an ffmpeg we
started). A source that fails raises :class:`SourceError`.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import subprocess
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from clutchcall.streams._errors import ConfigurationError, StreamsError
from media.ffmpeg import FileSource, TestPatternSource, encoder_command, ffmpeg_exe, probe

__all__ = ["ByteSource", "EncoderSettings", "SourceError", "open_source"]

_READ_SIZE = 64 * 1024
_TESTSRC = re.compile(r"testsrc(?::(\d{2,5})x(\d{2,5}))?\Z")


class SourceError(StreamsError):
    """The media source failed (ffmpeg exited with an error, the file is unreadable...)."""


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """How the publisher's own ffmpeg encodes a test pattern or a file."""

    chunk_seconds: float = 1.0
    gop_seconds: float = 2.0
    video_bitrate: int = 2_500_000
    audio_bitrate: int = 128_000
    loop: bool = False


class ByteSource(Protocol):
    description: str
    video_bitrate: int | None
    audio_bitrate: int | None

    async def read(self) -> bytes: ...

    async def aclose(self) -> None: ...


class _ProcessSource:
    """An ffmpeg we started, writing fMP4 to its stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, description: str, video: int) -> None:
        self._proc = proc
        self.description = description
        self.video_bitrate: int | None = video
        self.audio_bitrate: int | None = 128_000
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        async for line in self._proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    async def read(self) -> bytes:
        assert self._proc.stdout is not None
        data = await self._proc.stdout.read(_READ_SIZE)
        if data:
            return data
        code = await self._proc.wait()
        await asyncio.wait([self._stderr_task], timeout=1.0)
        if code != 0:
            tail = " | ".join(self._stderr) or "no output"
            raise SourceError(f"ffmpeg ({self.description}) exited with {code}: {tail}")
        return b""

    async def aclose(self) -> None:
        # asyncio only reports the exit once every pipe closed: keep stdout flowing.
        drain = asyncio.ensure_future(self._discard_stdout())
        try:
            if self._proc.returncode is None:
                self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 5.0)
            except TimeoutError:
                self._proc.kill()
                await asyncio.wait_for(self._proc.wait(), 5.0)
        finally:
            # Both pipes reach EOF once ffmpeg is gone: let them, so the transport closes.
            await asyncio.wait([drain, self._stderr_task], timeout=2.0)
            for task in (drain, self._stderr_task):
                task.cancel()
            await asyncio.gather(drain, self._stderr_task, return_exceptions=True)

    async def _discard_stdout(self) -> None:
        assert self._proc.stdout is not None
        while await self._proc.stdout.read(_READ_SIZE):
            pass


class _StreamSource:
    """Bytes from a reader or iterable someone else owns (we do not close it)."""

    def __init__(self, reader: AsyncIterator[bytes], description: str) -> None:
        self._reader = reader
        self.description = description
        self.video_bitrate: int | None = None
        self.audio_bitrate: int | None = None

    async def read(self) -> bytes:
        try:
            while True:
                data = await anext(self._reader)
                if data:
                    return bytes(data)
        except StopAsyncIteration:
            return b""
        except OSError as exc:
            raise SourceError(f"reading {self.description}: {exc}") from exc

    async def aclose(self) -> None:
        closer = getattr(self._reader, "aclose", None)
        if closer is not None:
            await closer()


async def _from_stream_reader(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while data := await reader.read(_READ_SIZE):
        yield data


async def _from_file(handle: IO[bytes]) -> AsyncIterator[bytes]:
    reader = getattr(handle, "read1", None) or handle.read
    while data := await asyncio.to_thread(reader, _READ_SIZE):
        yield data


async def _from_iterable(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    iterator = iter(items)
    sentinel = object()
    while (item := await asyncio.to_thread(next, iterator, sentinel)) is not sentinel:
        yield item  # type: ignore[misc]


async def _from_async_iterable(items: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for item in items:
        yield item


async def _spawn(cmd: list[str], description: str, video_bitrate: int) -> _ProcessSource:
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise SourceError(f"cannot start ffmpeg: {exc}") from exc
    return _ProcessSource(proc, description, video_bitrate)


async def open_source(source: Any, settings: EncoderSettings) -> ByteSource:
    """Turn any supported ``source`` (see the module docstring) into a :class:`ByteSource`."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        match = _TESTSRC.match(text) if isinstance(text, str) else None
        if match is not None:
            width, height = (int(match.group(1)), int(match.group(2))) if match.group(1) else (
                640, 360)  # fmt: skip
            pattern = TestPatternSource(width=width, height=height, fps=30, realtime=True)
            cmd = encoder_command(
                ffmpeg_exe(), pattern, "pipe:1", container="fmp4",
                video_bitrate=settings.video_bitrate, gop_seconds=settings.gop_seconds,
                chunk_seconds=settings.chunk_seconds,
            )  # fmt: skip
            return await _spawn(cmd, f"test pattern {width}x{height}", settings.video_bitrate)
        path = Path(text)
        if not await asyncio.to_thread(path.is_file):
            raise ConfigurationError(f"source {text!r} is neither 'testsrc' nor a readable file")
        try:
            info = await probe(str(path))
        except Exception as exc:  # FfmpegError: not a media file
            raise SourceError(f"{text}: {exc}") from exc
        if not info.has_video:
            raise SourceError(f"{text}: no video stream")
        file_source = FileSource(str(path), realtime=True, loop=settings.loop,
                                 has_audio=info.has_audio)  # fmt: skip
        cmd = encoder_command(
            ffmpeg_exe(), file_source, "pipe:1", container="fmp4",
            video_bitrate=settings.video_bitrate, gop_seconds=settings.gop_seconds,
            chunk_seconds=settings.chunk_seconds,
        )  # fmt: skip
        return await _spawn(cmd, f"file {path.name}", settings.video_bitrate)
    if isinstance(source, subprocess.Popen):
        if source.stdout is None:
            raise ConfigurationError("the process has no stdout pipe (use stdout=subprocess.PIPE)")
        return _StreamSource(_from_file(source.stdout), f"process {source.pid}")
    if isinstance(source, asyncio.StreamReader):
        return _StreamSource(_from_stream_reader(source), "stream reader")
    if hasattr(source, "read"):
        return _StreamSource(_from_file(source), "file object")
    if isinstance(source, AsyncIterable):
        return _StreamSource(_from_async_iterable(source), "async iterable")
    if isinstance(source, Iterable) and not isinstance(source, bytes | bytearray):
        return _StreamSource(_from_iterable(source), "iterable")
    raise ConfigurationError(
        f"unsupported source {type(source).__name__}: pass 'testsrc', a file path, a "
        "subprocess.Popen with stdout=PIPE, a binary file object or an iterable of bytes"
    )
