"""Redis faults under a live RTMP broadcast, real processes: Redis frozen (SIGSTOP, then
SIGCONT) and Redis stopped and started again (empty: no persistence).

Redis, ``clutchcall origin`` (RTMP), ``clutchcall pop``, an ffmpeg encoder, SDK viewers.
Redis is the cluster's registry, routes and revocation bus, not the media path: a viewer
already watching must not notice; once Redis answers again, a new viewer joins (the
origin has re-written its route and node record). The ``FAULT`` lines are the figures of
docs/faults.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import RedisServer

from ._stack import INPUT, Watch, encoder, report, rtmp_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# Longer than the node TTL of the test cluster (1.5 s): records would have expired.
OUTAGE = 3.0


async def _join_time(pop_url: str) -> float:
    """Seconds until a new viewer plays its first video chunk."""
    t0 = time.monotonic()
    watch = await Watch.open(pop_url)
    try:
        await watch.wait_video(1, within=30)
        return watch.video()[0][0] - t0
    finally:
        await watch.close()


async def test_redis_frozen_then_stopped_viewers_go_on_and_new_ones_join(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with rtmp_stack(tmp_path, redis_server.url) as stack:
        with encoder(stack.origin, INPUT, stack.key):
            watch = await Watch.open(stack.url())
            try:
                await watch.wait_video(4, within=40)
                # 1. Frozen: connections stay open, nothing answers.
                pid = redis_server.pid
                frozen = time.monotonic()
                os.kill(pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(OUTAGE)  # the fault lasts this long
                    await watch.wait_video(2, within=10)
                finally:
                    os.kill(pid, signal.SIGCONT)
                gap_frozen = watch.gap(frozen)
                join_frozen = await _join_time(stack.url())
                # 2. Stopped and started again, empty.
                redis_server.stop()
                stopped = time.monotonic()
                await asyncio.sleep(OUTAGE)
                await watch.wait_video(2, within=10)
                redis_server.start()
                gap_stopped = watch.gap(stopped)
                join_stopped = await _join_time(stack.url())
                report("Redis SIGSTOP/SIGCONT", outage_s=OUTAGE, gap_s=gap_frozen,
                       new_viewer_join_s=join_frozen, sessions=watch.sessions)  # fmt: skip
                report("Redis stop/start", outage_s=OUTAGE, gap_s=gap_stopped,
                       new_viewer_join_s=join_stopped, missing_objects=watch.missing(),
                       sessions=watch.sessions)  # fmt: skip
                assert not watch.viewer.closed and watch.sessions == 1
                assert watch.missing() == 0
                assert gap_frozen < 3.0 and gap_stopped < 3.0
                assert join_frozen < 20.0 and join_stopped < 20.0
            finally:
                await watch.close()
