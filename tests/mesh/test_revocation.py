"""Revocation set: semantics, persisted records, resync after a Redis restart, and propagation
latency to three consumer processes over a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mesh.bus import MemoryBus, RedisBus
from mesh.revocation import (
    REVOCATIONS_CHANNEL,
    REVOKED_PREFIX,
    Revocation,
    RevocationSet,
    publish_revocation,
)
from tests.mesh.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_jti_and_sub_semantics() -> None:
    by_jti = Revocation("jti", "jt_1", exp=10)
    assert by_jti.matches(jti="jt_1", sub="lv_a", iat=0)
    assert not by_jti.matches(jti="jt_2", sub="lv_a", iat=0)
    by_sub = Revocation("sub", "lv_a", exp=10, before=100)
    assert by_sub.matches(jti="x", sub="lv_a", iat=100)
    assert not by_sub.matches(jti="x", sub="lv_a", iat=101)  # minted after the revocation
    assert not by_sub.matches(jti="x", sub="lv_b", iat=0)
    with pytest.raises(ValueError):
        Revocation("kid", "x", exp=1)
    with pytest.raises(ValueError):
        Revocation("jti", "", exp=1)
    with pytest.raises(ValueError):
        Revocation.from_message({"jti": "x", "exp": float("nan")})  # would never be forgotten


def test_message_and_record_round_trip_and_malformed() -> None:
    for r in (Revocation("jti", "jt_1", 10, at=3), Revocation("sub", "lv_a", 10, 5, 3)):
        assert Revocation.from_message(r.to_message()) == r
        assert Revocation.from_record(r.key, r.to_record()) == Revocation(
            r.kind, r.value, 10, r.before
        )
    for bad in (
        {},
        {"jti": 5, "exp": 1},
        {"jti": "x"},
        {"sub": "lv", "exp": 1},
        {"sub": "lv", "exp": "x", "before": 1},
    ):
        with pytest.raises(ValueError):
            Revocation.from_message(bad)
    with pytest.raises(ValueError):
        Revocation.from_record(REVOKED_PREFIX + "sub:lv_a", {"exp": 1})
    with pytest.raises(ValueError):
        Revocation.from_record(REVOKED_PREFIX + "what:x", {"exp": 1})


def test_apply_listeners_expiry_and_prune() -> None:
    clock = [1000.0]
    rs = RevocationSet(clock=lambda: clock[0])
    seen: list[Revocation] = []
    remove = rs.add_listener(seen.append)

    def broken(_: Revocation) -> None:
        raise RuntimeError("broken listener")

    rs.add_listener(broken)
    assert not rs.apply(Revocation("jti", "old", exp=999))  # already expired
    assert rs.apply(Revocation("jti", "jt", exp=1100))
    assert not rs.apply(Revocation("jti", "jt", exp=1050))  # nothing new
    assert rs.is_revoked(jti="jt", sub="lv", iat=0)
    assert rs.apply(Revocation("sub", "lv", exp=1100, before=900))
    assert rs.is_revoked(jti="x", sub="lv", iat=900) and not rs.is_revoked(
        jti="x", sub="lv", iat=950
    )
    assert rs.apply(Revocation("sub", "lv", exp=1050, before=960))  # moves "before" forward
    assert rs.is_revoked(jti="x", sub="lv", iat=950)
    assert [r.value for r in seen] == ["jt", "lv", "lv"] and seen[-1].exp == 1100
    remove()
    clock[0] = 1101
    assert not rs.is_revoked(jti="jt", sub="lv", iat=0)
    assert rs.prune() == 2
    assert rs.statistics().applied == 3


@contextlib.asynccontextmanager
async def following(bus: RedisBus | MemoryBus, rs: RevocationSet) -> AsyncIterator[None]:
    task = asyncio.create_task(rs.run(bus))
    try:
        await rs.wait_loaded()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_late_starting_pop_honours_persisted_revocations(redis_url: str) -> None:
    control = RedisBus(redis_url)
    pop_bus = RedisBus(redis_url)
    now = time.time()
    await publish_revocation(control, Revocation("jti", "jt_early", now + 60))
    await publish_revocation(control, Revocation("sub", "lv_a", now + 60, before=now))
    await publish_revocation(control, Revocation("jti", "jt_gone", now - 1))  # never stored
    assert await control.get(REVOKED_PREFIX + "jti:jt_gone") is None
    rs = RevocationSet()
    async with following(pop_bus, rs):
        assert rs.is_revoked(jti="jt_early", sub="x", iat=0)
        assert rs.is_revoked(jti="y", sub="lv_a", iat=now - 1)
        seen: list[str] = []
        rs.add_listener(lambda r: seen.append(r.value))
        await asyncio.sleep(0.2)  # let SUBSCRIBE settle
        await publish_revocation(control, Revocation("jti", "jt_live", time.time() + 60))
        await wait_until(lambda: seen == ["jt_live"], within=2)
        # Garbage on the channel is counted and skipped.
        await control.publish(REVOCATIONS_CHANNEL, {"nope": 1})
        await wait_until(lambda: rs.statistics().malformed == 1, within=2)
    await control.close()
    await pop_bus.close()


async def test_revocations_written_while_disconnected_are_found_on_resync(redis_server) -> None:  # type: ignore[no-untyped-def]
    pop_bus = RedisBus(redis_server.url, retry_interval=0.3, timeout=0.5)
    rs = RevocationSet()
    seen: list[str] = []
    rs.add_listener(lambda r: seen.append(r.value))
    async with following(pop_bus, rs):
        redis_server.stop()
        await asyncio.sleep(0.5)
        redis_server.start()
        control = RedisBus(redis_server.url)
        # Written (and published) before the POP's subscription is back: only the
        # persisted record can tell it.
        await publish_revocation(control, Revocation("jti", "jt_missed", time.time() + 60))
        await wait_until(lambda: seen == ["jt_missed"], within=5)
        assert rs.statistics().reloads >= 2
        await control.close()
    await pop_bus.close()


async def test_memory_bus_works_the_same() -> None:
    bus = MemoryBus()
    rs = RevocationSet()
    async with following(bus, rs):
        await asyncio.sleep(0)
        await publish_revocation(bus, Revocation("jti", "jt_m", time.time() + 60))
        await wait_until(lambda: rs.is_revoked(jti="jt_m", sub="", iat=0), within=1)


async def test_publish_to_session_close_p99_across_three_processes(redis_url: str) -> None:
    procs: list[asyncio.subprocess.Process] = []
    received: list[dict[str, float]] = [{}, {}, {}]

    async def read(i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            event = json.loads(line)
            received[i][event["value"]] = event["t"]

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    control = RedisBus(redis_url)
    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(3):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.mesh.revocation_consumer",
                    redis_url,
                    "100",
                    cwd=ROOT,
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                )
                procs.append(proc)
                tg.create_task(read(i, proc))
            # Ready = every process has seen a probe on the channel.
            probe = 0
            while not all(any(v.startswith("probe") for v in r) for r in received):
                probe += 1
                await control.publish(
                    REVOCATIONS_CHANNEL,
                    Revocation("jti", f"probe{probe}", time.time() + 60).to_message(),
                )
                await asyncio.sleep(0.1)
                assert probe < 150, "consumers did not come up (see their stderr)"
            sent: dict[str, float] = {}
            for n in range(100):
                revocation = Revocation("jti", f"jt_{n}", time.time() + 60, at=time.time())
                sent[revocation.value] = revocation.at
                await publish_revocation(control, revocation)
                await asyncio.sleep(0.01)
            await wait_until(lambda: all(set(sent) <= set(r) for r in received), within=10)
            for proc in procs:
                proc.send_signal(signal.SIGINT)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        await control.close()
    latencies = sorted(r[v] - at for r in received for v, at in sent.items())
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"revocation publish->session close over 3 processes: p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )
    assert len(latencies) == 300
    assert p99 <= 0.2, f"p99 {p99 * 1000:.1f} ms"


async def test_corrupt_revocation_records_are_counted_and_skipped(redis_url: str) -> None:
    raw = aioredis.Redis.from_url(redis_url)
    bus = RedisBus(redis_url)
    try:
        await raw.set(REVOKED_PREFIX + "jti:junk", b"\xc1")
        await raw.set(REVOKED_PREFIX + "sub:junk", b"\x81\xa3exp\x90")  # exp is a list
        await publish_revocation(bus, Revocation("jti", "jt_ok", time.time() + 60))
        rs = RevocationSet()
        assert await rs.load(bus) == 1
        assert rs.is_revoked(jti="jt_ok", sub="", iat=0)
        assert rs.statistics().malformed == 2
    finally:
        await raw.aclose()
        await bus.close()
