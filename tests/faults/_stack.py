"""Real processes for the fault tests, and a viewer that measures what a fault costs it.

* :func:`start_rtmp_origin`: ``clutchcall origin`` (``python -m cli.origin``) with RTMP
  ingest, stream keys from Redis, a one-rung 240p ladder (cheap on a 2-core CI machine).
* POPs: :func:`tests.e2e.pop_procs.start_pop` (``clutchcall pop`` with a JWKS file).
* :func:`rtmp_stack`: the usual stack of a fault test, one origin and one POP on a
  test's Redis, with a stream key for :data:`INPUT` and playback tokens
  (:class:`Stack`).
* :func:`encoder`: an ffmpeg RTMP encoder (426x240 test source + tone, 2 s GOP).
* :class:`Watch`: the SDK viewer (:class:`clutchcall.streams.AsyncBroadcastViewer`)
  recording every media chunk's (time, kind, group, object): the gap a fault opens, the
  objects missing from the sequence, whether the viewer reconnected (its MoQT sessions)
  and how it closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench._nodes import tree_pids
from clutchcall.streams import AsyncBroadcastViewer, Chunk
from media.ffmpeg import ffmpeg_exe
from mesh.bus import RedisBus
from tests.e2e.pop_procs import ROOT, Proc, _env, _wait_for, processes, start_pop
from tests.origin.conftest import new_key
from tests.origin.helpers import write_key
from tests.pop.lab import ORG, Tokens

__all__ = [
    "INPUT",
    "ORG",
    "Stack",
    "Watch",
    "encoder",
    "rtmp_stack",
    "start_rtmp_origin",
    "stream_key",
    "transcoder_pid",
    "viewer_url",
]

# The live input every fault test broadcasts.
INPUT = "lv_a"


def start_rtmp_origin(
    tmp: Path, node_id: str, *, redis: str, window: float = 10.0, extra: tuple[str, ...] = ()
) -> Proc:
    log = tmp / f"{node_id}.log"
    args = [
        sys.executable, "-m", "cli.origin", "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0",
        "--rtmp", "127.0.0.1:0", "--redis", redis, "--node-id", node_id, "--region", "eu",
        "--ladder", "240p:240:300000", "--preset", "ultrafast",
        "--publisher-reconnect-window", str(window), *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=_env(None), stdout=out, stderr=out)
    proc = Proc(node_id, process, log)
    ready = _wait_for(proc, "origin_ready", within=40)
    proc.quic, proc.http = str(ready["quic"]), str(ready["rtmp"])  # http: the RTMP address
    return proc


@contextlib.contextmanager
def encoder(origin: Proc, input_id: str, key: str, seconds: float = 120) -> Iterator[Proc]:
    """ffmpeg publishing to ``origin`` over RTMP; killed on exit."""
    url = f"rtmp://{origin.http}/live/{input_id}/{key}"
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
    ]  # fmt: skip
    log = origin.log.with_name(f"encoder-{input_id}.log")
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
    proc = Proc("encoder", process, log)
    try:
        yield proc
    finally:
        proc.kill()


def transcoder_pid(origin: Proc, within: float = 20.0) -> int:
    """The origin's ffmpeg ladder process (its ``ffmpeg`` child)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for pid in tree_pids(origin.process.pid)[1:]:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("ffmpeg"):
                    return pid
        time.sleep(0.05)
    raise AssertionError("the origin runs no ffmpeg ladder")


def viewer_url(pop: Proc, input_id: str, token: str) -> str:
    return f"moqt://{pop.quic}/stream/{ORG}/{input_id}?token={token}"


async def stream_key(redis_url: str) -> str:
    """A new stream key for :data:`INPUT`, written to Redis (where the origin reads it)."""
    bus = RedisBus(redis_url)
    try:
        key = new_key()
        await write_key(bus, INPUT, key, ORG)
        return key
    finally:
        await bus.close()


@dataclass
class Stack:
    """What :func:`rtmp_stack` started: ``procs`` (stopped on exit; a test may append
    more), the origin, the POP, the stream key of :data:`INPUT` and the token minter."""

    procs: list[Proc]
    origin: Proc
    pop: Proc
    key: str
    tokens: Tokens

    def url(self, pop: Proc | None = None) -> str:
        """A viewer URL for :data:`INPUT` on ``pop`` (default: the stack's POP), with a
        fresh playback token."""
        return viewer_url(pop or self.pop, INPUT, self.tokens.mint(INPUT))


@contextlib.asynccontextmanager
async def rtmp_stack(tmp: Path, redis: str, *, window: float = 10.0) -> AsyncIterator[Stack]:
    """One ``clutchcall origin`` (RTMP, publisher reconnect ``window``) and one
    ``clutchcall pop`` on ``redis``; every process is stopped on exit."""
    tokens = Tokens(tmp)
    key = await stream_key(redis)
    with processes() as procs:
        origin = start_rtmp_origin(tmp, "o1", redis=redis, window=window)
        procs.append(origin)
        pop = start_pop(tmp, "pop1", redis=redis, jwks=tokens.jwks_path)
        procs.append(pop)
        yield Stack(procs, origin, pop, key, tokens)


@dataclass
class Watch:
    """An SDK viewer and what it received (see the module docstring)."""

    viewer: AsyncBroadcastViewer
    chunks: list[tuple[float, str, int, int]] = field(default_factory=list)

    @classmethod
    async def open(cls, url: str, *, fallback_urls: tuple[str, ...] = ()) -> Watch:
        watch = cls.__new__(cls)
        watch.chunks = []
        watch.viewer = await AsyncBroadcastViewer.open(
            url, on_chunk=watch._on_chunk, verify=False, fallback_urls=fallback_urls,
            start_timeout=30,
        )  # fmt: skip
        return watch

    def _on_chunk(self, _is_init: bool, chunk: Chunk) -> None:
        if chunk.kind != "init" and chunk.group_id is not None and chunk.object_id is not None:
            self.chunks.append((time.monotonic(), chunk.kind, chunk.group_id, chunk.object_id))

    def video(self) -> list[tuple[float, int, int]]:
        return [(t, g, o) for t, k, g, o in self.chunks if k == "video"]

    async def wait_video(self, count: int, within: float = 30.0) -> None:
        """Wait for ``count`` more video chunks (fails if the viewer closes first)."""
        target = len(self.video()) + count
        deadline = time.monotonic() + within
        while len(self.video()) < target:
            if self.viewer.closed:
                raise AssertionError(f"the viewer closed: {await self.viewer.wait_closed()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.video())} of {target} video chunks in {within}s")
            await asyncio.sleep(0.02)

    def gap(self, at: float) -> float:
        """The longest wait between two video chunks from the last one before ``at`` on:
        the hole the fault left in the picture (media already on its way when the fault
        hit, e.g. the ladder's flush, arrives before the hole)."""
        times = [t for t, _, _ in self.video()]
        before = [t for t in times if t <= at]
        assert before and times[-1] > at, "no video on both sides of the fault"
        since = times[len(before) - 1 :]
        return max(b - a for a, b in itertools.pairwise(since))

    def missing(self) -> int:
        """Video objects missing from the sequence received (holes in a group, groups
        skipped; a new group counts as complete from its first object received)."""
        missing, prev = 0, None
        for _, group, obj in self.video():
            if prev is not None:
                if group == prev[0]:
                    missing += max(0, obj - prev[1] - 1)
                elif group > prev[0]:
                    per_group = prev[1] + 1
                    missing += obj + (group - prev[0] - 1) * per_group
            prev = (group, obj)
        return missing

    def groups_after(self, at: float) -> list[int]:
        return [g for t, g, _ in self.video() if t > at]

    @property
    def sessions(self) -> int:
        return int(self.viewer.statistics().get("sessions") or 0)

    async def close(self) -> None:
        if not self.viewer.closed:
            await self.viewer.close()


def report(name: str, **figures: object) -> None:
    """One line per measured fault (``pytest -s`` shows it, ``FAULTS_REPORT=FILE`` appends
    it to FILE; docs/faults.md quotes it)."""
    text = ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"\nFAULT {name}: {text}", flush=True)
    if path := os.environ.get("FAULTS_REPORT"):  # collected across xdist workers
        with open(path, "a") as out:
            out.write(f"FAULT {name}: {text}\n")
