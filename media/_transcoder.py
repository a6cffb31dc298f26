"""The asyncio ffmpeg supervisor: one process, one fMP4 pipe per rendition, split into items.

Lifecycle::

    async with Transcoder(PipeSource(width=1280, height=720), LadderSpec()) as tc:
        ...                                   # tc.write(flv_bytes) from the ingest side
        async for rendition, item in tc:      # InitSegment first, then Fragments
            ...
    tc.result                                 # exit status + stderr tail

Each rendition is written by ffmpeg to its own pipe (``pipe:N``, the write end
passed with ``pass_fds``), read by one task feeding an :class:`Fmp4Splitter`, so
every rendition is its own CMAF track. All items go through one bounded queue:
a consumer that stops reading stops ffmpeg (backpressure), never grows memory.
``stop()`` asks ffmpeg to finish (stdin EOF or SIGINT), kills it after
``stop_timeout``, and always reaps it and its reader tasks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from ._ffmpeg_cmd import FileSource, Source, build_ladder_command, ffmpeg_exe, probe
from .catalog import Catalog
from .errors import FfmpegError, MediaError, TruncatedStream
from .fmp4 import Fmp4Splitter, Fragment, InitSegment
from .ladder import LadderPlan, LadderSpec
from .packager import BroadcastPackager, TrackPlan, build_catalog

__all__ = ["TranscodeResult", "TranscodeStatistics", "Transcoder"]

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
_STDERR_LINES = 40


@dataclass(frozen=True, slots=True)
class TranscodeResult:
    returncode: int
    stderr_tail: str
    stopped: bool  # True when stop() ended it, False when ffmpeg ended by itself


@dataclass(frozen=True, slots=True)
class TranscodeStatistics:
    running: bool
    items: int
    fragments_by_rendition: dict[str, int]
    queued: int
    cpu_seconds: float | None  # ffmpeg's user+system CPU so far (Linux, while it runs)


class _End:
    """Queue sentinel: every reader is done."""


class Transcoder:
    """Run one ffmpeg ladder transcode and iterate ``(rendition_name, InitSegment | Fragment)``."""

    def __init__(
        self,
        source: Source,
        ladder: LadderSpec | None = None,
        *,
        queue_size: int = 64,
        stop_timeout: float = 5.0,
        exe: str | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.source = source
        self.ladder = ladder or LadderSpec()
        self._exe = exe
        self._queue_size = queue_size
        self._stop_timeout = stop_timeout
        self._queue: asyncio.Queue[tuple[str, InitSegment | Fragment] | _End] = asyncio.Queue(
            queue_size
        )
        self._proc: asyncio.subprocess.Process | None = None
        self._runner: asyncio.Task[None] | None = None
        self._plan: LadderPlan | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._inits: dict[str, InitSegment] = {}
        self._fragments: dict[str, int] = {}
        self._items = 0
        self._discard = False
        self._stopping = False
        self._ended = False
        self._error: MediaError | None = None
        self._truncated: TruncatedStream | None = None
        self._result: TranscodeResult | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def plan(self) -> LadderPlan:
        if self._plan is None:
            raise RuntimeError("the ladder is planned by start()")
        return self._plan

    @property
    def result(self) -> TranscodeResult | None:
        return self._result

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("Transcoder.start() called twice")
        exe = self._exe or ffmpeg_exe()
        width, height = self.source.width, self.source.height
        if width is None and isinstance(self.source, FileSource):
            info = await probe(self.source.path, exe=exe)
            width, height = info.width, info.height
        self._plan = self.ladder.plan(width, height)
        names = [v.name for v in self._plan.video]
        if self.ladder.audio is not None and self.source.has_audio:
            names.append(self.ladder.audio.name)
        if not names:
            raise FfmpegError("nothing to encode: no video rung fits the source and no audio")
        pipes = {name: os.pipe() for name in names}
        targets = {name: f"pipe:{w}" for name, (_, w) in pipes.items()}
        cmd = build_ladder_command(exe, self.source, self._plan, targets)
        log.debug("ffmpeg ladder command", extra={"argv": cmd})
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE
                if self.source.uses_stdin
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=[w for _, w in pipes.values()],
            )
        except OSError as exc:
            for r, w in pipes.values():
                os.close(r)
                os.close(w)
            raise FfmpegError(f"cannot start ffmpeg: {exc}") from exc
        for _, w in pipes.values():
            os.close(w)
        loop = asyncio.get_running_loop()
        readers: dict[str, asyncio.StreamReader] = {}
        transports: list[asyncio.BaseTransport] = []
        try:
            for name, (r, _) in pipes.items():
                reader = asyncio.StreamReader(limit=_READ_SIZE)
                pipe = os.fdopen(r, "rb", 0)
                transport, _ = await loop.connect_read_pipe(_protocol_factory(reader), pipe)
                transports.append(transport)
                readers[name] = reader
                self._fragments[name] = 0
        except BaseException:
            for opened in transports:
                opened.close()
            for name, (r, _) in pipes.items():
                if name not in readers:
                    os.close(r)
            self._proc.kill()
            await self._proc.wait()
            raise
        self._runner = asyncio.create_task(self._run(readers), name="transcoder")

    async def __aenter__(self) -> Transcoder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def write(self, data: bytes) -> None:
        """Feed input bytes (``PipeSource`` only); waits while ffmpeg is behind."""
        proc = self._require_proc()
        if proc.stdin is None:
            raise RuntimeError("this source does not read stdin")
        if proc.stdin.is_closing():
            raise FfmpegError("ffmpeg input is already closed")
        try:
            proc.stdin.write(data)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise FfmpegError(
                "ffmpeg stopped reading its input", stderr_tail=self.stderr_tail
            ) from exc

    async def close_input(self) -> None:
        """End of input: ffmpeg flushes every rendition and exits.

        Waits at most ``stop_timeout`` for ffmpeg to take the buffered input, then
        drops what it did not read.
        """
        proc = self._require_proc()
        if proc.stdin is None or proc.stdin.is_closing():
            return
        proc.stdin.close()
        try:
            async with asyncio.timeout(self._stop_timeout):
                await proc.stdin.wait_closed()
        except TimeoutError:
            proc.stdin.transport.abort()
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def wait(self) -> TranscodeResult:
        """Wait for ffmpeg to end by itself (finite input or ``close_input``), discarding items."""
        self._discard = True
        self._drain_queue()
        return await self._finish()

    async def stop(self) -> TranscodeResult:
        """Ask ffmpeg to finish, kill it after ``stop_timeout``; reap it and every reader task."""
        proc = self._require_proc()
        assert self._runner is not None
        if self._runner.done():
            return await self._finish()
        self._stopping = True
        self._discard = True
        self._drain_queue()
        if proc.returncode is None:
            if proc.stdin is not None:
                await self.close_input()
            else:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
            try:
                # the runner drains the outputs meanwhile, so ffmpeg never blocks on a full pipe
                await asyncio.wait_for(asyncio.shield(proc.wait()), self._stop_timeout)
            except TimeoutError:
                log.warning("ffmpeg did not stop in time; killing it", extra={"pid": proc.pid})
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
        return await self._finish()

    async def _finish(self) -> TranscodeResult:
        proc = self._require_proc()
        assert self._runner is not None
        try:
            await asyncio.shield(self._runner)
        except asyncio.CancelledError:
            # cancelled while waiting: still leave no process and no task behind
            self._stopping = self._discard = True
            self._drain_queue()
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            await asyncio.gather(self._runner, return_exceptions=True)
            raise
        assert self._result is not None  # set by the runner before it ends
        return self._result

    def _require_proc(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError("Transcoder is not started")
        return self._proc

    def _drain_queue(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if isinstance(item, _End):  # keep the end marker for the iterator
                self._queue.put_nowait(item)
                return

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    # -- iteration ---------------------------------------------------------------------------

    def __aiter__(self) -> Transcoder:
        return self

    async def __anext__(self) -> tuple[str, InitSegment | Fragment]:
        if self._ended:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self._ended = True
            self._queue.put_nowait(item)
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item

    # -- catalog -----------------------------------------------------------------------------

    @property
    def init_segments(self) -> dict[str, InitSegment]:
        """The latest init segment of each rendition seen so far."""
        return dict(self._inits)

    def track_plans(self) -> tuple[TrackPlan, ...]:
        """Catalog metadata of the renditions this transcode produces."""
        return self.plan.track_plans(
            framerate=getattr(self.source, "fps", None), audio=self.source.has_audio
        )

    def catalog(
        self, *, namespace: str | None = None, generated_at: int | None = None
    ) -> Catalog | None:
        """The CMSF catalog of this ladder, once every rendition's init segment has arrived."""
        plans = self.track_plans()
        if any(p.name not in self._inits for p in plans):
            return None
        group_ms = round(self.ladder.group_duration * 1000)
        return build_catalog(
            plans,
            self._inits,
            namespace=namespace,
            generated_at=generated_at,
            max_group_duration=group_ms,
        )

    def packager(
        self, *, namespace: str | None = None, first_group_id: int = 0
    ) -> BroadcastPackager:
        """A packager for this transcode's items: shared group ids on the ladder's group duration."""
        return BroadcastPackager(
            self.track_plans(),
            namespace=namespace,
            group_duration=self.ladder.group_duration,
            first_group_id=first_group_id,
        )

    def statistics(self) -> TranscodeStatistics:
        running = self._proc is not None and self._proc.returncode is None
        cpu = _cpu_seconds(self._proc.pid) if running and self._proc is not None else None
        return TranscodeStatistics(
            running, self._items, dict(self._fragments), self._queue.qsize(), cpu
        )

    # -- tasks -------------------------------------------------------------------------------

    async def _run(self, readers: dict[str, asyncio.StreamReader]) -> None:
        proc = self._require_proc()
        try:
            async with asyncio.TaskGroup() as tg:
                assert proc.stderr is not None
                tg.create_task(self._read_stderr(proc.stderr))
                for name, reader in readers.items():
                    tg.create_task(self._pump(name, reader))
        except* MediaError as group:
            self._error = group.exceptions[0]  # type: ignore[assignment]
            if proc.returncode is None:
                proc.kill()
        finally:
            if proc.returncode is None and self._error is None and not self._stopping:
                # every output ended but ffmpeg lingers: give it a moment, then kill.
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), self._stop_timeout)
                except TimeoutError:
                    proc.kill()
            await proc.wait()
            if not self._stopping and (self._error is None or self._error is self._truncated):
                if proc.returncode != 0:
                    self._error = FfmpegError(
                        "ffmpeg failed", returncode=proc.returncode, stderr_tail=self.stderr_tail
                    )
                elif self._truncated is not None:
                    self._error = self._truncated
            self._result = TranscodeResult(proc.returncode or 0, self.stderr_tail, self._stopping)
            await self._put(_End())

    async def _put(self, item: tuple[str, InitSegment | Fragment] | _End) -> None:
        if self._discard and not isinstance(item, _End):
            return
        if isinstance(item, _End) and self._discard:
            self._drain_queue()
        await self._queue.put(item)

    async def _pump(self, name: str, reader: asyncio.StreamReader) -> None:
        splitter = Fmp4Splitter()
        while data := await reader.read(_READ_SIZE):
            for item in splitter.feed(data):
                if isinstance(item, InitSegment):
                    self._inits[name] = item
                else:
                    self._fragments[name] += 1
                self._items += 1
                await self._put((name, item))
        try:
            splitter.close()
        except TruncatedStream as exc:
            # ffmpeg died mid-fragment: reported with its exit status (or ignored after stop()).
            self._truncated = exc

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        while data := await stream.read(_READ_SIZE):
            *lines, pending = (pending + data).split(b"\n")
            pending = pending[-_READ_SIZE:]  # a runaway line cannot grow memory
            for line in lines:
                self._note_stderr(line)
        self._note_stderr(pending)

    def _note_stderr(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            self._stderr.append(text[:1000])
            log.debug("ffmpeg: %s", text)


def _protocol_factory(reader: asyncio.StreamReader) -> Callable[[], asyncio.StreamReaderProtocol]:
    return lambda: asyncio.StreamReaderProtocol(reader)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process, from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) "
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
    return ticks / os.sysconf("SC_CLK_TCK")
