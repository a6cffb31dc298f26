"""``clutchcall pop --quic-stack picoquic`` as a real process: serving, auth, revocation, workers.

The POP runs its QUIC on picoquic (C, its own thread); viewers are our client on
both stacks. picoquic carries no CONNECTION_CLOSE reason text, so refusals are
recognised by the draft's UNAUTHORIZED code (what the SDK maps to auth_failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from pathlib import Path

import pytest

from mesh.bus import RedisBus
from mesh.revocation import Revocation, publish_revocation
from moqt.aio import SessionOptions, connect
from moqt.errors import SessionCloseCode
from tests.conftest import RedisServer
from tests.e2e.pop_procs import processes, start_origin, start_pop
from tests.pop.lab import Tokens, Viewer, closed_session, namespace_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

NS = namespace_of("lv_a")


async def _objects(viewer: Viewer, count: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while len(viewer.objects) < count:
        assert time.monotonic() < deadline, f"{len(viewer.objects)} of {count} objects"
        await asyncio.sleep(0.02)


async def test_picoquic_pop_serves_refuses_and_revokes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    tokens = Tokens(tmp_path)
    bus = RedisBus(redis_server.url)
    with processes() as procs:
        procs.append(start_origin(tmp_path, "o1", redis=redis_server.url))
        pop = start_pop(
            tmp_path,
            "pop1",
            redis=redis_server.url,
            jwks=tokens.jwks_path,
            extra=["--quic-stack", "picoquic"],
        )
        procs.append(pop)
        url = f"moqt://{pop.quic}"

        # Viewers on both client stacks get the live track, in order, from a group start.
        claims = {stack: tokens.claims("lv_a") for stack in ("aioquic", "picoquic")}
        viewers = {stack: Viewer(url, NS) for stack in claims}
        tasks = [
            asyncio.create_task(
                viewers[stack].watch(subscribe_token=tokens.key.sign(claims[stack]), stack=stack)
            )
            for stack in claims
        ]
        for viewer in viewers.values():
            await _objects(viewer, 15)
            received = [(o.group, o.obj) for o in viewer.objects]
            assert received == sorted(set(received))
            assert received[0][1] == 0, "a viewer starts at a group boundary"

        # Refused tokens close the session with UNAUTHORIZED.
        closed = await closed_session(url, subscribe_token="not-a-jwt")
        assert closed is not None and closed.code == SessionCloseCode.UNAUTHORIZED
        expired = tokens.mint("lv_a", exp=int(time.time()) - 60)
        closed = await closed_session(url, subscribe_token=expired)
        assert closed is not None and closed.code == SessionCloseCode.UNAUTHORIZED

        # A revocation on the bus ends the matching session only.
        revoked = claims["picoquic"]
        await publish_revocation(bus, Revocation("jti", str(revoked["jti"]), float(revoked["exp"])))
        await asyncio.wait_for(tasks[1], 5)
        assert viewers["picoquic"].closed is not None
        assert viewers["picoquic"].closed.code == SessionCloseCode.UNAUTHORIZED
        before = len(viewers["aioquic"].objects)
        await _objects(viewers["aioquic"], before + 5)
        assert not tasks[0].done()

        transports = {line.get("transport") for line in pop.lines() if "transport" in line}
        assert transports == {"picoquic/moqt-16"}, transports
        body = await asyncio.to_thread(_metrics, pop.http)
        assert "clutchcall_revocations_applied_total 1.0" in body
        tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await bus.close()


def _metrics(http: str) -> str:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_picoquic_workers_share_one_udp_port(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Each worker's picoquic serves a socket bound with SO_REUSEPORT: the kernel spreads
    # clients (by their address and port) over the workers.
    tokens = Tokens(tmp_path)
    with processes() as procs:
        pop = start_pop(
            tmp_path, "pw", redis=redis_server.url, jwks=tokens.jwks_path,
            extra=["--workers", "2", "--quic-stack", "picoquic"], wait="pop_workers_started",
        )  # fmt: skip
        procs.append(pop)
        deadline = time.monotonic() + 30
        while len([ln for ln in pop.lines() if ln.get("event") == "pop_ready"]) < 2:
            assert time.monotonic() < deadline, pop.log.read_text()[-2000:]
            await asyncio.sleep(0.1)
        ready = [ln for ln in pop.lines() if ln.get("event") == "pop_ready"]
        assert {ln["quic"] for ln in ready} == {pop.quic}
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(12):
                options = SessionOptions(auth_token=tokens.mint().encode())
                await stack.enter_async_context(
                    connect(f"moqt://{pop.quic}", verify=False, options=options)
                )
            deadline = time.monotonic() + 10
            while True:
                opened = [ln["node"] for ln in pop.lines() if ln.get("event") == "session_opened"]
                if len(opened) >= 12 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        counts = {node: opened.count(node) for node in ("pw-w0", "pw-w1")}
        assert sum(counts.values()) == 12, counts
        assert all(count > 0 for count in counts.values()), counts
        assert pop.terminate(within=15) == 0
