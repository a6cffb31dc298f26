"""Ingest faults, real processes: the origin's ffmpeg ladder SIGKILLed, the encoder dropped
and back within the reconnect window, the encoder gone past it.

Redis, ``clutchcall origin`` (RTMP, 240p ladder), ``clutchcall pop``, an ffmpeg encoder and
the SDK viewer through the POP. Each test prints a ``FAULT`` line with what it measured
(docs/faults.md); the asserts are the documented behaviour with wide margins.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from mesh.bus import RedisBus
from tests.conftest import RedisServer
from tests.e2e.pop_procs import processes, start_pop
from tests.origin.conftest import new_key
from tests.origin.helpers import write_key
from tests.pop.lab import Tokens

from ._stack import ORG, Watch, encoder, report, start_rtmp_origin, transcoder_pid, viewer_url

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

INPUT = "lv_a"


async def _stream_key(redis_url: str) -> str:
    bus = RedisBus(redis_url)
    try:
        key = new_key()
        await write_key(bus, INPUT, key, ORG)
        return key
    finally:
        await bus.close()


async def test_ladder_ffmpeg_sigkill_viewer_goes_on(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    tokens = Tokens(tmp_path)
    key = await _stream_key(redis_server.url)
    with processes() as procs:
        origin = start_rtmp_origin(tmp_path, "o1", redis=redis_server.url)
        procs.append(origin)
        pop = start_pop(tmp_path, "pop1", redis=redis_server.url, jwks=tokens.jwks_path)
        procs.append(pop)
        with encoder(origin, INPUT, key):
            watch = await Watch.open(viewer_url(pop, INPUT, tokens.mint(INPUT)))
            try:
                await watch.wait_video(4, within=40)
                last_group = watch.video()[-1][1]
                at = time.monotonic()
                os.kill(transcoder_pid(origin), signal.SIGKILL)
                await watch.wait_video(4, within=40)
                gap = watch.gap(at)
                report("ladder ffmpeg SIGKILL", gap_s=gap, missing_objects=watch.missing(),
                       sessions=watch.sessions)  # fmt: skip
                # The origin restarts its ladder; the viewer's subscription simply goes on
                # (no reconnect), later groups, after a gap of a few seconds.
                assert not watch.viewer.closed and watch.sessions == 1
                after = watch.groups_after(at)
                assert after == sorted(after) and after[0] >= last_group
                assert gap < 15.0
            finally:
                await watch.close()


async def test_encoder_drop_and_return_within_the_window_then_gone(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    window = 8.0
    tokens = Tokens(tmp_path)
    key = await _stream_key(redis_server.url)
    with processes() as procs:
        origin = start_rtmp_origin(tmp_path, "o1", redis=redis_server.url, window=window)
        procs.append(origin)
        pop = start_pop(tmp_path, "pop1", redis=redis_server.url, jwks=tokens.jwks_path)
        procs.append(pop)
        watch: Watch | None = None
        try:
            with encoder(origin, INPUT, key) as first:
                watch = await Watch.open(viewer_url(pop, INPUT, tokens.mint(INPUT)))
                await watch.wait_video(4, within=40)
                last_group = watch.video()[-1][1]
                dropped = time.monotonic()
                first.kill()  # SIGKILL: the connection is lost, no unpublish
            await asyncio.sleep(1.0)  # the encoder comes back a second later
            with encoder(origin, INPUT, key) as second:
                await watch.wait_video(4, within=40)
                gap = watch.gap(dropped)
                report("encoder drop and return", gap_s=gap, missing_objects=watch.missing(),
                       sessions=watch.sessions, window_s=window)  # fmt: skip
                # The same broadcast goes on: no end, no reconnect, later groups.
                assert not watch.viewer.closed and watch.sessions == 1
                after = watch.groups_after(dropped)
                assert after == sorted(after) and after[0] > last_group
                assert gap < window + 10.0
                gone = time.monotonic()
                second.kill()
            # Not back this time: the broadcast ends once the window has run out.
            reason, detail = await asyncio.wait_for(watch.viewer.wait_closed(), window + 25)
            ended_after = time.monotonic() - gone
            report("encoder gone past the window", ended_after_s=ended_after, reason=reason,
                   window_s=window)  # fmt: skip
            assert reason == "ended", detail
            assert ended_after >= window - 0.5
        finally:
            if watch is not None:
                await watch.close()
