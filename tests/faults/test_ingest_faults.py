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

from tests.conftest import RedisServer

# INPUT and _stream_key: also imported from here by test_node_faults.py
from ._stack import INPUT, Watch, encoder, report, rtmp_stack, transcoder_pid
from ._stack import stream_key as _stream_key  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_ladder_ffmpeg_sigkill_viewer_goes_on(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with rtmp_stack(tmp_path, redis_server.url) as stack:
        origin = stack.origin
        with encoder(origin, INPUT, stack.key):
            watch = await Watch.open(stack.url())
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
    async with rtmp_stack(tmp_path, redis_server.url, window=window) as stack:
        watch: Watch | None = None
        try:
            with encoder(stack.origin, INPUT, stack.key) as first:
                watch = await Watch.open(stack.url())
                await watch.wait_video(4, within=40)
                last_group = watch.video()[-1][1]
                dropped = time.monotonic()
                first.kill()  # SIGKILL: the connection is lost, no unpublish
            await asyncio.sleep(1.0)  # the encoder comes back a second later
            with encoder(stack.origin, INPUT, stack.key) as second:
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
