"""Revocation latency across 3 POP processes: p99 from publish to session close <= 200 ms."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from pathlib import Path

import pytest

from mesh.bus import RedisBus
from mesh.revocation import Revocation, publish_revocation
from moqt.aio import MoqtConnection, SessionOptions, connect
from tests.conftest import RedisServer
from tests.e2e.pop_procs import processes, start_pop
from tests.pop.lab import Tokens

pytestmark = [pytest.mark.e2e, pytest.mark.latency, pytest.mark.timeout(90)]

VIEWERS_PER_POP = 20


async def test_revocation_p99_across_three_pops(tmp_path: Path, redis_server: RedisServer) -> None:
    tokens = Tokens(tmp_path)
    bus = RedisBus(redis_server.url)
    with processes() as procs:
        pops = [
            start_pop(tmp_path, f"pop{i}", redis=redis_server.url, jwks=tokens.jwks_path)
            for i in range(3)
        ]
        procs.extend(pops)
        async with contextlib.AsyncExitStack() as stack:
            sessions: list[tuple[dict[str, object], MoqtConnection]] = []
            for pop in pops:
                for _ in range(VIEWERS_PER_POP):
                    claims = tokens.claims("lv_a")
                    options = SessionOptions(auth_token=tokens.key.sign(claims).encode())
                    conn = await stack.enter_async_context(
                        connect(f"moqt://{pop.quic}", verify=False, options=options)
                    )
                    sessions.append((claims, conn))
            await asyncio.sleep(1.5)  # admitted sessions; every POP follows the channel
            assert not any(conn.is_closed for _, conn in sessions)
            published: list[float] = []
            observed: list[float] = []
            for claims, conn in sessions:
                published.append(time.time())
                sent = time.perf_counter()
                await publish_revocation(
                    bus,
                    Revocation("jti", str(claims["jti"]), float(claims["exp"])),  # type: ignore[arg-type]
                )
                closed = await asyncio.wait_for(conn.wait_closed(), 2)
                observed.append(time.perf_counter() - sent)
                assert closed.reason == "auth_failed" and closed.by_peer
            # When each POP closed the session: its "viewer_refused ... revoked" line, logged
            # right before the close is sent.  One revocation at a time, so the k-th close
            # (by time, over all POPs) answers the k-th publish.
            closes = sorted(
                datetime.fromisoformat(str(line["ts"])).timestamp()
                for pop in pops
                for line in pop.lines()
                if line.get("event") == "viewer_refused" and line.get("reason") == "revoked"
            )
            assert len(closes) == len(published)
            latencies = sorted(c - p for c, p in zip(closes, published, strict=True))
            observed.sort()
            print(
                f"\nrevocation publish -> POP closes the session, {len(latencies)} sessions on "
                f"3 POPs: p50 {pct(latencies, 0.5)} ms, p99 {pct(latencies, 0.99)} ms, "
                f"max {latencies[-1] * 1000:.1f} ms\n"
                f"publish -> the viewer's QUIC stack reports the close (adds aioquic's "
                f"draining period, 3 PTO): p50 {pct(observed, 0.5)} ms, "
                f"p99 {pct(observed, 0.99)} ms"
            )
            assert latencies[0] >= 0
            assert latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] <= 0.200
            # Sanity bound only (the POP's close is asserted above): this adds aioquic's
            # draining delay on 60 viewer connections in this process and the load of the
            # rest of the suite on 2 cores (1.15 s seen once in CI).
            assert observed[min(len(observed) - 1, int(0.99 * len(observed)))] <= 3.0
            # Every revocation was applied by every POP (also those of other POPs' viewers).
            for pop in pops:
                applied = metric(pop.http, "clutchcall_revocations_applied_total")
                assert applied == len(sessions), (pop.name, applied)
    await bus.close()


def metric(http: str, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as response:
        body = response.read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def pct(values: list[float], q: float) -> str:
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.1f}"
