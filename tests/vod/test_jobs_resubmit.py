"""Resubmitting lost packaging jobs at start-up (Redis queue): never twice for one asset."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from vod.jobs import JOBS_STREAM, MemoryPackagingQueue, RedisPackagingQueue
from vod.packaging import PackagingJob


def _job(tmp_path: Path, asset_id: str) -> PackagingJob:
    return PackagingJob(asset_id, f"pb_{asset_id}", f"stream/o/pb_{asset_id}",
                        tmp_path / "src.bin", tmp_path / "assets" / asset_id, None)  # fmt: skip


async def _stream_assets(url: str) -> list[str]:
    queue = RedisPackagingQueue(url)
    try:
        return sorted(await queue.queued_assets())
    finally:
        await queue.close()


async def test_two_control_planes_starting_together_submit_once(
    tmp_path: Path, redis_url: str
) -> None:
    first = RedisPackagingQueue(redis_url, consumer="cp1", claim_timeout=0.3)
    second = RedisPackagingQueue(redis_url, consumer="cp2", claim_timeout=0.3)
    try:
        job = _job(tmp_path, "as_lost")
        answers = await asyncio.gather(first.resubmit(job), second.resubmit(job))
        assert sorted(answers) == [False, True]
        assert await _stream_assets(redis_url) == ["as_lost"]
        # Later (the start-up lock expired): the entry is still queued, so no second one.
        client = aioredis.Redis.from_url(redis_url)
        try:
            async with asyncio.timeout(5):
                while await client.exists(f"{JOBS_STREAM}:resubmit:as_lost"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            assert await first.resubmit(job) is False
            assert await client.xlen(JOBS_STREAM) == 1
        finally:
            await client.aclose()
        # Another asset that is not in the stream is submitted.
        assert await second.resubmit(_job(tmp_path, "as_other")) is True
        assert await _stream_assets(redis_url) == ["as_lost", "as_other"]
    finally:
        await first.close()
        await second.close()


async def test_memory_queue_resubmits(tmp_path: Path) -> None:
    queue = MemoryPackagingQueue()
    assert await queue.resubmit(_job(tmp_path, "as_x")) is True
    assert queue._jobs.qsize() == 1
