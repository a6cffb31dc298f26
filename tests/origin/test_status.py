"""Input status records: ``live`` expires unless the origin's heartbeat refreshes it."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from media.ffmpeg import test_pattern_transcoder
from mesh.bus import Bus, RedisBus, connect_bus
from moqt.aio import connect
from origin.status import INPUT_STATUS_PREFIX, InputStatus, StatusReporter
from tests.mesh.conftest import wait_until
from tests.origin.conftest import ORG, new_key
from tests.origin.helpers import MoqtTestPublisher, ns, write_key
from tests.origin.process import origin_process

pytestmark = pytest.mark.timeout(60)


async def status(bus: Bus, input_id: str) -> str | None:
    record = await bus.get(INPUT_STATUS_PREFIX + input_id)
    return None if record is None else str(record["status"])


async def test_live_record_expires_unless_refreshed(redis_url: str) -> None:
    bus = RedisBus(redis_url)
    try:
        reporter = StatusReporter(bus, node_id="o1", live_ttl=0.6)
        await reporter.report("lv_a", InputStatus.LIVE)
        await reporter.report("lv_b", InputStatus.LIVE)
        assert await status(bus, "lv_a") == "live"
        async with asyncio.TaskGroup() as tg:
            heartbeat = tg.create_task(reporter.run(0.2))
            await asyncio.sleep(1.5)  # well past the TTL: the heartbeat keeps both
            assert await status(bus, "lv_a") == await status(bus, "lv_b") == "live"
            # an input that went idle is not turned live again by the heartbeat
            await reporter.report("lv_b", InputStatus.IDLE, "encoder disconnected")
            await asyncio.sleep(0.5)
            assert await status(bus, "lv_b") == "idle"
            heartbeat.cancel()  # the origin dies: nothing refreshes any more
        took = await wait_until(lambda: _gone(bus, "lv_a"), within=3)
        assert took < 1.5
        await asyncio.sleep(0.8)
        assert await status(bus, "lv_b") == "idle"  # idle/error records carry no TTL
        assert await reporter.refresh() == 1  # a heartbeat re-creates only the live one
        assert (await status(bus, "lv_a"), await status(bus, "lv_b")) == ("live", "idle")
        with pytest.raises(ValueError):
            await reporter.run(1.0)  # a heartbeat slower than the TTL could never keep up
    finally:
        await bus.close()


async def _gone(bus: Bus, input_id: str) -> bool:
    return await status(bus, input_id) is None


@pytest.mark.e2e
async def test_sigkilled_origin_inputs_stop_being_live(redis_url: str) -> None:
    bus = connect_bus(redis_url)
    input_id, key = "lv_killed", new_key()
    await write_key(bus, input_id, key, ORG)
    args = ["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--rtmp", "", "--redis", redis_url,
            "--region", "r1", "--node-id", "origin-killed"]  # fmt: skip
    try:
        async with origin_process(*args) as origin:
            tc = test_pattern_transcoder(width=160, height=90, bitrate=200_000, chunk_duration=0.25)
            async with connect(origin.url, verify=False) as conn, tc:
                pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
                await pub.announce()
                pump = asyncio.create_task(pub.pump(tc, seconds=30))
                try:
                    await wait_until(lambda: _is(bus, input_id, "live"), within=20)
                    route = f"clutchcall:route:stream/{ORG}/{input_id}"
                    assert await bus.get(route) is not None
                    await asyncio.sleep(4)  # longer than the TTL: kept alive by the heartbeat
                    assert await status(bus, input_id) == "live"
                    origin.proc.kill()
                    await origin.proc.wait()
                    killed = time.monotonic()
                    await wait_until(lambda: _gone(bus, input_id), within=6)
                    await wait_until(lambda: _no_record(bus, route), within=2)
                    assert time.monotonic() - killed < 4.5
                finally:
                    pump.cancel()
                    with contextlib.suppress(BaseException):
                        await pump
                    with contextlib.suppress(BaseException):
                        await pub.close()
    finally:
        await bus.close()


async def _is(bus: Bus, input_id: str, value: str) -> bool:
    return await status(bus, input_id) == value


async def _no_record(bus: Bus, key: str) -> bool:
    return await bus.get(key) is None
