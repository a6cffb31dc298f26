"""The packaging queue, in memory and on a real Redis: concurrency, retries, reclaimed jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from media.ladder import LadderSpec
from tests.conftest import RedisServer
from vod.jobs import (
    JOBS_GROUP,
    JOBS_STREAM,
    JobDone,
    JobEvent,
    JobFailed,
    JobProgress,
    MemoryPackagingQueue,
    RedisPackagingQueue,
    _encode,
    open_queue,
)
from vod.packaging import PackagingJob

from ._clips import FFMPEG, make_clip

SMALL = LadderSpec.single(360, 400_000)


class Recorder:
    """Collects events; ``wait_final(n)`` returns once n jobs have ended."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: JobEvent) -> None:
        self.events.append(event)
        self._changed.set()

    @property
    def final(self) -> list[JobDone | JobFailed]:
        return [e for e in self.events if isinstance(e, JobDone | JobFailed)]

    async def wait_final(self, count: int, limit: float = 60.0) -> list[JobDone | JobFailed]:
        async with asyncio.timeout(limit):
            while len(self.final) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.final


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("jobclips") / "c.mp4", seconds=4)


def job_for(clip: Path, root: Path, asset_id: str, max_duration: float | None = 60) -> PackagingJob:
    return PackagingJob(asset_id, f"pb_{asset_id}", f"stream/o/pb_{asset_id}", clip,
                        root / "assets" / asset_id, max_duration)  # fmt: skip


@pytest.fixture
async def running() -> AsyncIterator[Callable[[object, Recorder], Awaitable[None]]]:
    tasks: list[asyncio.Task[None]] = []

    async def start(queue: object, recorder: Recorder) -> None:
        tasks.append(asyncio.create_task(queue.run(recorder)))  # type: ignore[attr-defined]

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def crashing_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Path]:
    """An ffmpeg whose first ``n`` ladder runs are SIGKILLed mid-transcode (probes run normally)."""

    def install(crashes: int) -> Path:
        state = tmp_path / "ffmpeg-state"
        state.mkdir()
        script = tmp_path / "ffmpeg"
        script.write_text(
            "#!/bin/sh\n"
            'case "$*" in *-filter_complex*|*-map*)\n'
            f'  n=$(ls "{state}" | wc -l)\n'
            f'  if [ "$n" -lt {crashes} ]; then\n'
            f'    touch "{state}/crash-$n"\n'
            # read at the native rate, so the kill lands mid-transcode, never after it
            f'    "{FFMPEG}" -readrate 1 "$@" & pid=$!\n'
            "    sleep 0.5; kill -KILL $pid; wait $pid; exit $?\n"
            "  fi;;\n"
            "esac\n"
            f'exec "{FFMPEG}" "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("CLUTCHCALL_FFMPEG", str(script))
        return state

    return install


async def test_memory_queue_packages_jobs_with_progress(tmp_path: Path, clip: Path, running):
    queue = open_queue(None, concurrency=2)
    assert isinstance(queue, MemoryPackagingQueue)
    rec = Recorder()
    await running(queue, rec)
    for name in ("as_a", "as_b", "as_c"):
        await queue.submit(job_for(clip, tmp_path, name))
    final = await rec.wait_final(3)
    assert sorted(e.asset_id for e in final) == ["as_a", "as_b", "as_c"]
    assert all(isinstance(e, JobDone) for e in final)
    for name in ("as_a", "as_b", "as_c"):
        mine = [e for e in rec.events if e.asset_id == name]
        percents = [e.percent for e in mine if isinstance(e, JobProgress)]
        assert percents and percents == sorted(percents) and percents[-1] == 100.0
        assert isinstance(mine[-1], JobDone)  # progress never after the outcome
        assert (tmp_path / "assets" / name / "master.m3u8").is_file()


async def test_bad_input_fails_once_without_retry(
    tmp_path: Path, clip: Path, running, crashing_ffmpeg
):
    state = crashing_ffmpeg(0)
    queue = MemoryPackagingQueue(concurrency=1)
    rec = Recorder()
    await running(queue, rec)
    text = tmp_path / "notes.bin"
    text.write_text("not a video\n" * 100)
    await queue.submit(job_for(text, tmp_path, "as_text"))
    await queue.submit(job_for(clip, tmp_path, "as_long", max_duration=1.0))
    final = await rec.wait_final(2)
    codes = {e.asset_id: (e.code, e.message) for e in final if isinstance(e, JobFailed)}
    assert codes["as_text"][0] == "not_media"
    assert codes["as_long"][0] == "too_long"
    assert os.listdir(state) == []  # no ladder ever started for either


async def test_crashed_ffmpeg_is_retried_once_and_succeeds(
    tmp_path: Path, clip: Path, running, crashing_ffmpeg
):
    state = crashing_ffmpeg(1)
    queue = MemoryPackagingQueue(concurrency=1, ladder=SMALL)
    rec = Recorder()
    await running(queue, rec)
    await queue.submit(job_for(clip, tmp_path, "as_crash"))
    (done,) = await rec.wait_final(1)
    assert isinstance(done, JobDone), done
    assert os.listdir(state) == ["crash-0"]
    assert not [p for p in os.listdir(tmp_path / "assets") if p.startswith(".")]


async def test_ffmpeg_crashing_twice_fails_the_job(
    tmp_path: Path, clip: Path, running, crashing_ffmpeg
):
    state = crashing_ffmpeg(5)
    queue = MemoryPackagingQueue(concurrency=1, ladder=SMALL)
    rec = Recorder()
    await running(queue, rec)
    await queue.submit(job_for(clip, tmp_path, "as_dead"))
    await queue.submit(job_for(clip, tmp_path, "as_next"))
    final = await rec.wait_final(2)
    first = final[0]
    assert isinstance(first, JobFailed) and first.asset_id == "as_dead"
    assert first.code == "packaging_failed"
    assert "failed 2 times" in first.message
    assert sorted(os.listdir(state)) == ["crash-0", "crash-1", "crash-2", "crash-3"]
    assert not (tmp_path / "assets" / "as_dead").exists()
    assert isinstance(final[1], JobFailed)  # the worker lived on to run the next job


async def test_a_failing_event_handler_does_not_stop_the_worker(
    tmp_path: Path, clip: Path, running
):
    queue = MemoryPackagingQueue(concurrency=1, ladder=SMALL)
    rec = Recorder()

    async def flaky(event: JobEvent) -> None:
        await rec(event)
        if isinstance(event, JobProgress):
            raise RuntimeError("database is down")

    task = asyncio.create_task(queue.run(flaky))
    try:
        await queue.submit(job_for(clip, tmp_path, "as_1"))
        await queue.submit(job_for(clip, tmp_path, "as_2"))
        final = await rec.wait_final(2)
        assert [type(e) for e in final] == [JobDone, JobDone]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _settled(client: aioredis.Redis) -> None:
    """Until every entry was acknowledged and deleted (the ack follows the outcome event)."""
    async with asyncio.timeout(10):
        while True:
            pending = (await client.xpending(JOBS_STREAM, JOBS_GROUP))["pending"]
            if not pending and not await client.xlen(JOBS_STREAM):
                return
            await asyncio.sleep(0.02)  # state in Redis: no event to wait on


async def _consumers(url: str) -> set[str]:
    client = aioredis.Redis.from_url(url)
    try:
        infos = await client.xinfo_consumers(JOBS_STREAM, JOBS_GROUP)
    except Exception:
        return set()
    finally:
        await client.aclose()
    return {i["name"].decode() if isinstance(i["name"], bytes) else i["name"] for i in infos}


async def test_two_redis_workers_share_the_jobs(
    tmp_path: Path, clip: Path, redis_url: str, running
):
    first = RedisPackagingQueue(redis_url, concurrency=1, ladder=SMALL, consumer="w1", block=0.2)
    second = RedisPackagingQueue(redis_url, concurrency=1, ladder=SMALL, consumer="w2", block=0.2)
    rec1, rec2 = Recorder(), Recorder()
    await running(first, rec1)
    await running(second, rec2)
    async with asyncio.timeout(10):
        while await _consumers(redis_url) != {"w1-0", "w2-0"}:  # noqa: ASYNC110 - Redis state
            await asyncio.sleep(0.05)
    submitter = open_queue(redis_url, concurrency=1)
    await submitter.submit(job_for(clip, tmp_path, "as_1"))
    await submitter.submit(job_for(clip, tmp_path, "as_2"))
    async with asyncio.timeout(60):
        while len(rec1.final) + len(rec2.final) < 2:  # noqa: ASYNC110 - two recorders
            await asyncio.sleep(0.05)
    assert len(rec1.final) == len(rec2.final) == 1  # both workers ran one job
    assert {e.asset_id for e in rec1.final + rec2.final} == {"as_1", "as_2"}
    assert all(isinstance(e, JobDone) for e in rec1.final + rec2.final)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await _settled(client)  # acknowledged and removed once done
    finally:
        await client.aclose()
    await submitter.close()  # type: ignore[attr-defined]


async def test_a_dead_workers_job_is_reclaimed(tmp_path: Path, clip: Path, redis_url: str, running):
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.xgroup_create(JOBS_STREAM, JOBS_GROUP, id="0", mkstream=True)
        await client.xadd(JOBS_STREAM, _encode(job_for(clip, tmp_path, "as_orphan")))
        # A worker takes the job and dies before acknowledging it: the entry stays pending.
        taken = await client.xreadgroup(JOBS_GROUP, "dead-worker", {JOBS_STREAM: ">"}, count=1)
        assert taken
        survivor = RedisPackagingQueue(
            redis_url, concurrency=1, ladder=SMALL, consumer="alive", claim_timeout=0.5, block=0.2
        )
        rec = Recorder()
        await running(survivor, rec)
        (done,) = await rec.wait_final(1)
        assert isinstance(done, JobDone) and done.asset_id == "as_orphan"
        await _settled(client)
    finally:
        await client.aclose()


async def test_a_job_whose_workers_keep_dying_is_given_up(
    tmp_path: Path, clip: Path, redis_url: str, running
):
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.xgroup_create(JOBS_STREAM, JOBS_GROUP, id="0", mkstream=True)
        await client.xadd(JOBS_STREAM, _encode(job_for(clip, tmp_path, "as_poison")))
        await client.xreadgroup(JOBS_GROUP, "dead-1", {JOBS_STREAM: ">"}, count=1)
        for dead in ("dead-2", "dead-3"):
            await client.xautoclaim(JOBS_STREAM, JOBS_GROUP, dead, min_idle_time=0)
        survivor = RedisPackagingQueue(
            redis_url, concurrency=1, ladder=SMALL, consumer="alive", claim_timeout=0.2, block=0.2
        )
        rec = Recorder()
        await running(survivor, rec)
        (failed,) = await rec.wait_final(1)
        assert isinstance(failed, JobFailed) and failed.code == "packaging_failed"
        assert "interrupted 3 times" in failed.message
        assert not (tmp_path / "assets" / "as_poison").exists()
    finally:
        await client.aclose()


async def test_a_long_job_is_not_stolen_from_a_live_worker(
    tmp_path: Path, clip: Path, redis_url: str, running, monkeypatch: pytest.MonkeyPatch
):
    """The worker keeps its job claimed: a second worker with a short timeout leaves it alone."""
    slow = tmp_path / "ffmpeg"  # native-rate reading: the 4 s clip outlasts 4 claim timeouts
    slow.write_text(f'#!/bin/sh\nexec "{FFMPEG}" -readrate 1 "$@"\n')
    slow.chmod(0o755)
    monkeypatch.setenv("CLUTCHCALL_FFMPEG", str(slow))
    first = RedisPackagingQueue(redis_url, ladder=SMALL, consumer="w1", claim_timeout=1.0,
                                block=0.1)  # fmt: skip
    second = RedisPackagingQueue(redis_url, ladder=SMALL, consumer="w2", claim_timeout=1.0,
                                 block=0.1)  # fmt: skip
    rec1, rec2 = Recorder(), Recorder()
    await running(first, rec1)
    started = time.monotonic()
    await first.submit(job_for(clip, tmp_path, "as_long"))
    async with asyncio.timeout(30):
        while not rec1.events:  # noqa: ASYNC110 - the first worker has started it
            await asyncio.sleep(0.02)
    await running(second, rec2)
    (done,) = await rec1.wait_final(1)
    assert isinstance(done, JobDone)
    assert time.monotonic() - started > 3.0  # it did run for several claim timeouts
    assert rec2.events == []


async def test_workers_survive_a_redis_restart_that_lost_the_stream(
    tmp_path: Path, clip: Path, redis_server: RedisServer, running
):
    url = redis_server.url
    worker = RedisPackagingQueue(url, ladder=SMALL, consumer="w1", block=0.1)
    rec = Recorder()
    await running(worker, rec)
    submitter = RedisPackagingQueue(url, consumer="s")
    await submitter.submit(job_for(clip, tmp_path, "as_before"))
    await rec.wait_final(1)
    redis_server.restart()  # no persistence: the stream and its group are gone
    async with asyncio.timeout(30):
        while True:  # the first submissions may meet the restart; retry until one lands
            try:
                await submitter.submit(job_for(clip, tmp_path, "as_after"))
                break
            except (redis.exceptions.ConnectionError, OSError):
                await asyncio.sleep(0.1)
    final = await rec.wait_final(2)
    assert [e.asset_id for e in final] == ["as_before", "as_after"]
    assert all(isinstance(e, JobDone) for e in final)
    await submitter.close()


_VICTIM = """
import asyncio, sys
from media.ladder import LadderSpec
from vod.jobs import JobProgress, RedisPackagingQueue

async def main() -> None:
    queue = RedisPackagingQueue(sys.argv[1], ladder=LadderSpec.single(360, 400_000),
                                consumer="victim", block=0.1)
    async def on_event(event: object) -> None:
        if isinstance(event, JobProgress):
            print("progress", flush=True)
    await queue.run(on_event)

asyncio.run(main())
"""


@pytest.mark.e2e
async def test_a_worker_process_killed_mid_job_loses_it_to_another(
    tmp_path: Path, clip: Path, redis_url: str, running, monkeypatch: pytest.MonkeyPatch
):
    """A real worker process (and its ffmpeg) SIGKILLed mid-job: a survivor finishes the job."""
    slow = (
        tmp_path / "ffmpeg"
    )  # the victim's ffmpeg reads at the native rate: still busy when killed
    slow.write_text(f'#!/bin/sh\nexec "{FFMPEG}" -readrate 1 "$@"\n')
    slow.chmod(0o755)
    env = {**os.environ, "CLUTCHCALL_FFMPEG": str(slow), "PYTHONPATH": str(Path.cwd())}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _VICTIM, redis_url, env=env, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        submitter = RedisPackagingQueue(redis_url, consumer="s")
        await submitter.submit(job_for(clip, tmp_path, "as_orphan"))
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while (await proc.stdout.readline()).strip() != b"progress":
                pass
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its ffmpeg, mid-transcode
        await proc.wait()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    monkeypatch.delenv("CLUTCHCALL_FFMPEG", raising=False)
    survivor = RedisPackagingQueue(
        redis_url, ladder=SMALL, consumer="alive", claim_timeout=1.0, block=0.1
    )
    rec = Recorder()
    await running(survivor, rec)
    (done,) = await rec.wait_final(1)
    assert isinstance(done, JobDone) and done.asset_id == "as_orphan"
    assert (tmp_path / "assets" / "as_orphan" / "catalog.json").is_file()
    client = aioredis.Redis.from_url(redis_url)
    try:
        await _settled(client)
    finally:
        await client.aclose()
    await submitter.close()
