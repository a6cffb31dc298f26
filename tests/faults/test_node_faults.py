"""Node crashes under a live RTMP broadcast, real processes: a POP SIGKILLed (the SDK viewer
moves to its fallback POP) and the origin SIGKILLed (the encoder reconnects to a new
origin; the viewer stays on its POP).

Redis, ``clutchcall origin`` (RTMP), ``clutchcall pop``\\ s, an ffmpeg encoder and the SDK
viewer. The ``FAULT`` lines are the figures of docs/faults.md. (tests/e2e/test_pop_faults.py
measures the same crashes with the lab viewer and stand-in origins that both carry the
broadcast: re-routing to the surviving origin within 3 s.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import RedisServer
from tests.e2e.pop_procs import processes, start_pop
from tests.pop.lab import Tokens

from ._stack import Watch, encoder, report, start_rtmp_origin, viewer_url
from .test_ingest_faults import INPUT, _stream_key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_pop_sigkill_sdk_viewer_moves_to_its_fallback_pop(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """No CONNECTION_CLOSE reaches the viewer of a SIGKILLed POP. Its stall probe notices:
    no object for 3 x the 2 s group -> a QUIC PING, unanswered within 1.5 s -> the session
    is lost; it reconnects to its fallback POP on its own and resumes at the live edge.
    Measured 8.1 s (it was 30.4 s: QUIC's idle timeout, before the probe). (The lab
    viewer of tests/e2e/test_pop_faults.py, which moves after 0.5 s without objects, is
    back within 2 s.)"""
    tokens = Tokens(tmp_path)
    key = await _stream_key(redis_server.url)
    with processes() as procs:
        origin = start_rtmp_origin(tmp_path, "o1", redis=redis_server.url)
        procs.append(origin)
        pops = [
            start_pop(tmp_path, name, redis=redis_server.url, jwks=tokens.jwks_path)
            for name in ("pop1", "pop2")
        ]
        procs.extend(pops)
        token = tokens.mint(INPUT)
        with encoder(origin, INPUT, key):
            watch = await Watch.open(
                viewer_url(pops[0], INPUT, token),
                fallback_urls=(viewer_url(pops[1], INPUT, token),),
            )
            try:
                await watch.wait_video(4, within=40)
                last_group = watch.video()[-1][1]
                killed = time.monotonic()
                pops[0].kill()
                await watch.wait_video(4, within=25)
                gap = watch.gap(killed)
                after = watch.groups_after(killed)
                report("POP SIGKILL (SDK viewer, fallback POP)", gap_s=gap,
                       missing_objects=watch.missing(), sessions=watch.sessions)  # fmt: skip
                # It reconnected on its own (a second session, after its probe found the
                # first one dead) and plays later groups, well before QUIC's 30 s idle
                # timeout would have closed the dead session.
                assert not watch.viewer.closed and watch.sessions == 2
                assert watch.viewer.statistics()["stalls"] == 1
                assert after == sorted(after) and after[0] > last_group
                assert gap < 20.0
            finally:
                await watch.close()


async def test_origin_sigkill_encoder_moves_to_another_origin(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    tokens = Tokens(tmp_path)
    key = await _stream_key(redis_server.url)
    with processes() as procs:
        first = start_rtmp_origin(tmp_path, "o1", redis=redis_server.url)
        procs.append(first)
        standby = start_rtmp_origin(tmp_path, "o2", redis=redis_server.url)
        procs.append(standby)
        pop = start_pop(tmp_path, "pop1", redis=redis_server.url, jwks=tokens.jwks_path)
        procs.append(pop)
        watch: Watch | None = None
        try:
            with encoder(first, INPUT, key):
                watch = await Watch.open(viewer_url(pop, INPUT, tokens.mint(INPUT)))
                await watch.wait_video(4, within=40)
                killed = time.monotonic()
                first.kill()
            # The encoder reconnects at once to the other origin (its own retry through
            # the load balancer); the POP re-routes the viewer's subscription to it.
            with encoder(standby, INPUT, key):
                await watch.wait_video(4, within=40)
                gap = watch.gap(killed)
                report("origin SIGKILL (encoder to the other origin)", gap_s=gap,
                       missing_objects=watch.missing(), sessions=watch.sessions)  # fmt: skip
                assert not watch.viewer.closed and watch.sessions == 1
                assert gap < 15.0
        finally:
            if watch is not None:
                await watch.close()
