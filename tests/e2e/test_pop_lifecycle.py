"""``clutchcall pop`` process lifecycle: workers on one UDP port, drain on SIGTERM, ops port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mesh.bus import RedisBus
from moqt.aio import SessionOptions, connect
from moqt.events import GoawayReceived
from tests.conftest import RedisServer
from tests.e2e.pop_procs import processes, start_pop
from tests.pop.lab import Tokens

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_workers_share_one_udp_port(tmp_path: Path, redis_server: RedisServer) -> None:
    tokens = Tokens(tmp_path)
    bus = RedisBus(redis_server.url)
    with processes() as procs:
        pop = start_pop(
            tmp_path, "pw", redis=redis_server.url, jwks=tokens.jwks_path,
            extra=["--workers", "2"], wait="pop_workers_started",
        )  # fmt: skip
        procs.append(pop)
        deadline = time.monotonic() + 20
        while len([ln for ln in pop.lines() if ln.get("event") == "pop_ready"]) < 2:
            assert time.monotonic() < deadline, pop.log.read_text()[-2000:]
            await asyncio.sleep(0.1)
        ready = [ln for ln in pop.lines() if ln.get("event") == "pop_ready"]
        assert {ln["quic"] for ln in ready} == {pop.quic}  # one UDP port
        assert {ln["node"] for ln in ready} == {"pw-w0", "pw-w1"}
        # Both workers are registered as nodes, each with its own metrics port.
        assert await bus.get("clutchcall:node:pw-w0") is not None
        assert await bus.get("clutchcall:node:pw-w1") is not None
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(12):
                options = SessionOptions(auth_token=tokens.mint().encode())
                await stack.enter_async_context(
                    connect(f"moqt://{pop.quic}", verify=False, options=options)
                )
            await asyncio.sleep(0.3)
            opened = [ln["node"] for ln in pop.lines() if ln.get("event") == "session_opened"]
            counts = {node: opened.count(node) for node in ("pw-w0", "pw-w1")}
            print(f"\n12 clients over 2 workers: {counts}")
            assert sum(counts.values()) == 12
            assert all(count > 0 for count in counts.values()), counts
            for line in ready:
                status, body = get(f"http://{line['http']}/metrics")
                assert status == 200 and "clutchcall_sessions" in body
        # A crashed worker is started again on the same port.
        started = [ln for ln in pop.lines() if ln.get("event") == "pop_worker_started"]
        victim = next(ln for ln in started if ln["worker"] == 1)
        os.kill(int(str(victim["pid"])), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while len([ln for ln in pop.lines() if ln.get("event") == "pop_ready"]) < 3:
            assert time.monotonic() < deadline, pop.log.read_text()[-2000:]
            await asyncio.sleep(0.1)
        again = [ln for ln in pop.lines() if ln.get("event") == "pop_ready"][-1]
        assert again["node"] == "pw-w1" and again["quic"] == pop.quic
        assert pop.terminate(within=15) == 0
        assert await bus.get("clutchcall:node:pw-w0") is None
    await bus.close()


async def test_sigterm_drains_with_goaway(tmp_path: Path, redis_server: RedisServer) -> None:
    tokens = Tokens(tmp_path)
    bus = RedisBus(redis_server.url)
    with processes() as procs:
        pop = start_pop(tmp_path, "pd", redis=redis_server.url, jwks=tokens.jwks_path)
        procs.append(pop)
        status, _ = get(f"http://{pop.http}/readyz")
        assert status == 200
        assert get(f"http://{pop.http}/healthz")[0] == 200
        options = SessionOptions(auth_token=tokens.mint().encode())
        async with connect(f"moqt://{pop.quic}", verify=False, options=options) as polite, \
                connect(f"moqt://{pop.quic}", verify=False, options=options) as stubborn:  # fmt: skip
            assert await bus.get("clutchcall:node:pd") is not None
            started = time.monotonic()
            pop.process.send_signal(15)
            event = await asyncio.wait_for(polite.wait_event(), 5)
            while not isinstance(event, GoawayReceived):
                event = await asyncio.wait_for(polite.wait_event(), 5)
            goaway_after = time.monotonic() - started
            status, body = get(f"http://{pop.http}/readyz")
            assert status == 503 and "serving" in body  # out of the load balancer while draining
            polite.close()  # a viewer that moves on at once
            # The one that ignores GOAWAY is closed when the drain time (3 s) is up.
            closed = await asyncio.wait_for(stubborn.wait_closed(), 8)
            assert closed.by_peer
            code = await asyncio.to_thread(pop.process.wait, 10)
            took = time.monotonic() - started
            print(f"\nGOAWAY after {goaway_after * 1000:.0f} ms, exit {code} after {took:.1f} s")
            assert code == 0
            assert took < 3 + 3
        assert await bus.get("clutchcall:node:pd") is None  # left the registry
    await bus.close()
