"""Stream-key admission against a real redis-server: keys, rotation, deletion, outages."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import structlog
import structlog.testing

from mesh.bus import MemoryBus, RedisBus
from origin.admission import (
    STREAMKEY_PREFIX,
    STREAMKEYS_CHANNEL,
    Admission,
    AllowAllAuthorizer,
    BusStreamKeyAuthorizer,
    Refusal,
    hash_stream_key,
    rtmp_authorizer,
)
from origin.rtmp.publish import Admission as RtmpAdmission
from tests.mesh.conftest import wait_until

EID = "lv_abc123"


def new_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


async def write_key(bus: RedisBus | MemoryBus, key: str, eid: str = EID) -> None:
    """What the control plane writes (BUS_CONTRACT)."""
    await bus.set(
        STREAMKEY_PREFIX + eid,
        {
            "org": "org_1",
            "input": "li_1",
            "namespace": f"stream/org_1/{eid}",
            "sha256": hash_stream_key(key),
            "rotated_at": time.time(),
        },
    )


async def announce(bus: RedisBus | MemoryBus, event: str, eid: str = EID) -> None:
    await bus.publish(
        STREAMKEYS_CHANNEL, {"external_input_id": eid, "event": event, "at": time.time()}
    )


@contextlib.asynccontextmanager
async def following(authorizer: BusStreamKeyAuthorizer) -> AsyncIterator[None]:
    task = asyncio.create_task(authorizer.run())
    await asyncio.sleep(0.2)  # SUBSCRIBE is acknowledged asynchronously
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_right_wrong_unknown_and_malformed(redis_url: str) -> None:
    control, origin_bus = RedisBus(redis_url), RedisBus(redis_url)
    key = new_key()
    await write_key(control, key)
    authorizer = BusStreamKeyAuthorizer(origin_bus)
    assert await authorizer(EID, key) == Admission(True, "", "org_1", f"stream/org_1/{EID}", "li_1")
    wrong = await authorizer.authorize(EID, new_key())
    assert (wrong.ok, wrong.refusal, wrong.reason) == (
        False,
        Refusal.WRONG_KEY,
        f"invalid stream key for {EID}",
    )
    assert (await authorizer.authorize("lv_nobody", key)).refusal is Refusal.UNKNOWN_INPUT
    for eid, k in (("lv/../x", key), ("", key), (EID, ""), (EID, "x" * 600)):
        assert (await authorizer.authorize(eid, k)).refusal is Refusal.MALFORMED
    await control.set(STREAMKEY_PREFIX + "lv_bad", {"org": "org_1", "sha256": "zz"})
    assert (await authorizer.authorize("lv_bad", key)).refusal is Refusal.MISCONFIGURED
    stats = authorizer.statistics()
    assert (stats.admitted, stats.refused, stats.live) == (1, 7, 1)
    await control.close()
    await origin_bus.close()


async def test_rotation_and_deletion_end_live_broadcasts_quickly(redis_url: str) -> None:
    control, origin_bus = RedisBus(redis_url), RedisBus(redis_url)
    revoked: list[tuple[str, str, float]] = []

    async def on_key_revoked(eid: str, event: str) -> None:
        revoked.append((eid, event, time.monotonic()))

    old, fresh = new_key(), new_key()
    await write_key(control, old)
    authorizer = BusStreamKeyAuthorizer(origin_bus, on_key_revoked=on_key_revoked)
    async with following(authorizer):
        assert (await authorizer.authorize(EID, old)).ok
        await write_key(control, fresh)
        sent = time.monotonic()
        await announce(control, "rotated")
        await wait_until(lambda: len(revoked) == 1, within=2)
        assert revoked[0][:2] == (EID, "rotated") and revoked[0][2] - sent < 1.0
        # The cached record was invalidated: the old key fails at once, the new one works.
        assert (await authorizer.authorize(EID, old)).refusal is Refusal.WRONG_KEY
        assert (await authorizer.authorize(EID, fresh)).ok
        # A rotation message that does not change the live key ends nothing.
        await announce(control, "rotated")
        await asyncio.sleep(0.2)
        assert len(revoked) == 1
        await control.delete(STREAMKEY_PREFIX + EID)
        await announce(control, "deleted")
        await wait_until(lambda: len(revoked) == 2, within=2)
        assert revoked[1][:2] == (EID, "deleted")
        assert (await authorizer.authorize(EID, fresh)).refusal is Refusal.UNKNOWN_INPUT
        # Released broadcasts are not watched; garbage messages are skipped.
        await write_key(control, fresh)
        assert (await authorizer.authorize(EID, fresh)).ok
        authorizer.release(EID)
        await control.publish(STREAMKEYS_CHANNEL, {"event": "exploded"})
        await announce(control, "deleted")
        await asyncio.sleep(0.2)
        assert len(revoked) == 2 and authorizer.statistics().revoked == 2
    await control.close()
    await origin_bus.close()


async def test_outage_admits_cached_inputs_and_resync_catches_rotation(redis_server) -> None:  # type: ignore[no-untyped-def]
    origin_bus = RedisBus(redis_server.url, retry_interval=0.2, timeout=0.5)
    control = RedisBus(redis_server.url)
    revoked: list[tuple[str, str]] = []
    key = new_key()
    await write_key(control, key)
    await write_key(control, key, eid="lv_other")
    authorizer = BusStreamKeyAuthorizer(
        origin_bus, on_key_revoked=lambda eid, event: revoked.append((eid, event)), cache_ttl=0.0
    )
    async with following(authorizer):
        assert (await authorizer.authorize(EID, key)).ok
        assert (await authorizer.authorize("lv_other", key)).ok
        redis_server.stop()
        assert (await authorizer.authorize(EID, key)).ok  # from the (stale) cache
        assert (await authorizer.authorize(EID, new_key())).refusal is Refusal.WRONG_KEY
        assert (await authorizer.authorize("lv_unknown", key)).refusal is Refusal.UNAVAILABLE
        redis_server.start()  # empty: every record lost
        await control.close()
        control = RedisBus(redis_server.url)  # the old pool's connections died with the server
        # lv_other was rotated before the origin's subscription came back.
        await write_key(control, new_key(), eid="lv_other")
        await wait_until(lambda: revoked == [("lv_other", "resync")], within=5)
        await asyncio.sleep(0.3)
        assert revoked == [("lv_other", "resync")]  # a missing record ends nothing
    assert authorizer.statistics().bus_errors >= 2
    await control.close()
    await origin_bus.close()


async def test_callback_failure_is_contained() -> None:
    bus = MemoryBus()
    key = new_key()
    await write_key(bus, key)
    calls: list[str] = []

    async def broken(eid: str, event: str) -> None:
        calls.append(event)
        raise RuntimeError("callback bug")

    authorizer = BusStreamKeyAuthorizer(bus, on_key_revoked=broken)
    async with following(authorizer):
        assert (await authorizer.authorize(EID, key)).ok
        await write_key(bus, new_key())
        await announce(bus, "rotated")
        await wait_until(lambda: calls == ["rotated"], within=1)
        await write_key(bus, key)
        await announce(bus, "rotated")
        await asyncio.sleep(0.05)
        assert (await authorizer.authorize(EID, key)).ok
        await bus.delete(STREAMKEY_PREFIX + EID)
        await announce(bus, "deleted")
        await wait_until(lambda: calls == ["rotated", "deleted"], within=1)


async def test_allow_all_admits_anyone_and_says_so() -> None:
    with structlog.testing.capture_logs() as logs:
        authorizer = AllowAllAuthorizer()
        admission = await authorizer(EID, "anything")
    assert admission == Admission(True, "", "org_dev", f"stream/org_dev/{EID}", EID)
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("publish_auth_disabled", "warning"),
        ("publisher_admitted_without_auth", "warning"),
    ]
    assert "DISABLED" in logs[0]["message"]
    assert (await authorizer.authorize("bad id", "k")).refusal is Refusal.MALFORMED


async def test_rtmp_adapter() -> None:
    bus = MemoryBus()
    key = new_key()
    await write_key(bus, key)
    rtmp = rtmp_authorizer(BusStreamKeyAuthorizer(bus))
    assert await rtmp(EID, key) == RtmpAdmission(True, "", "org_1", f"stream/org_1/{EID}")
    refused = await rtmp(EID, "sk_wrong")
    assert not refused.ok and refused.reason == f"invalid stream key for {EID}"


async def test_corrupt_record_is_refused_as_misconfigured(redis_url: str) -> None:
    raw = aioredis.Redis.from_url(redis_url)
    bus = RedisBus(redis_url)
    try:
        await raw.set(STREAMKEY_PREFIX + EID, b"\xc1")
        admission = await BusStreamKeyAuthorizer(bus).authorize(EID, new_key())
        assert (admission.ok, admission.refusal) == (False, Refusal.MISCONFIGURED)
    finally:
        await raw.aclose()
        await bus.close()
