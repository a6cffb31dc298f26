"""The packaging job queue: bounded concurrency, one retry of a crashed ffmpeg, across nodes.

:func:`open_queue` gives :class:`MemoryPackagingQueue` (one process, the default)
or, with a Redis URL, :class:`RedisPackagingQueue`: a Redis stream with one
consumer group, so any number of control planes or packagers share the work. A
job is acknowledged only when it ended (done or failed); while it runs its
worker keeps claiming it (resetting its idle time), so a job whose worker died
is taken over by another worker once it was idle for ``claim_timeout``.

``run(on_event)`` is the worker loop (the control app runs it in its lifespan).
It reports :class:`JobProgress` while packaging, then exactly one
:class:`JobDone` or :class:`JobFailed` per job. It never raises for a job's
failure: ffmpeg is a child process, and anything a job raises ends as
``JobFailed``. A failure caused by ffmpeg itself (it crashed, was killed) is
retried once; bad input (``not_media``, ``truncated``, ``too_long``) is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from media.ladder import LadderSpec

from .metrics import VodMetrics
from .packaging import PackagingFailed, PackagingJob, PackagingResult, package_asset

__all__ = [
    "JOBS_GROUP",
    "JOBS_STREAM",
    "JobDone",
    "JobEvent",
    "JobFailed",
    "JobProgress",
    "MemoryPackagingQueue",
    "PackagingQueue",
    "RedisPackagingQueue",
    "open_queue",
]

JOBS_STREAM: Final = "clutchcall:vod:jobs"
JOBS_GROUP: Final = "packagers"
ATTEMPTS: Final = 2  # a crashed ffmpeg is retried once
MAX_DELIVERIES: Final = 3  # a job whose workers keep dying is given up after this many

_log = structlog.get_logger("vod.jobs")
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class JobProgress:
    asset_id: str
    percent: float


@dataclass(frozen=True, slots=True)
class JobDone:
    asset_id: str
    result: PackagingResult


@dataclass(frozen=True, slots=True)
class JobFailed:
    asset_id: str
    code: str
    message: str


JobEvent = JobProgress | JobDone | JobFailed
OnEvent = Callable[[JobEvent], Awaitable[None]]


class PackagingQueue(Protocol):
    async def submit(self, job: PackagingJob) -> None: ...

    async def resubmit(self, job: PackagingJob) -> bool:
        """Submit a job a stopped control plane may have lost, unless it is still queued."""
        ...

    async def run(self, on_event: OnEvent) -> None: ...


async def _emit(on_event: OnEvent, event: JobEvent) -> None:
    """Deliver one event; a failing handler is logged, never fatal to the worker."""
    try:
        await on_event(event)
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("job_event_handler_failed", asset_id=event.asset_id,
                       kind=type(event).__name__)  # fmt: skip


class _Progress:
    """Forwards the latest percent to the (async) handler; a slow handler skips, never queues."""

    def __init__(self, asset_id: str, on_event: OnEvent) -> None:
        self._asset_id = asset_id
        self._on_event = on_event
        self._latest: float | None = None
        self._finished = False
        self._wake = asyncio.Event()

    def update(self, percent: float) -> None:
        self._latest = percent
        self._wake.set()

    def finish(self) -> None:
        self._finished = True
        self._wake.set()

    async def forward(self) -> None:
        while not self._finished or self._latest is not None:
            await self._wake.wait()
            self._wake.clear()
            if self._latest is not None:
                percent, self._latest = self._latest, None
                await _emit(self._on_event, JobProgress(self._asset_id, percent))


async def execute_job(
    job: PackagingJob,
    on_event: OnEvent,
    *,
    ladder: LadderSpec | None = None,
    attempts: int = ATTEMPTS,
    metrics: VodMetrics | None = None,
) -> JobDone | JobFailed:
    """Package one job with retries of ffmpeg failures; reports progress and the outcome."""
    if metrics is None:
        return await _execute_job(job, on_event, ladder=ladder, attempts=attempts)
    started = time.monotonic()
    metrics.jobs_running.inc()
    try:
        outcome = await _execute_job(job, on_event, ladder=ladder, attempts=attempts)
    finally:
        metrics.jobs_running.dec()
    if isinstance(outcome, JobDone):
        metrics.packaging_seconds.observe(time.monotonic() - started)
    else:
        metrics.packaging_failures.labels(outcome.code).inc()
    return outcome


async def _execute_job(
    job: PackagingJob,
    on_event: OnEvent,
    *,
    ladder: LadderSpec | None,
    attempts: int,
) -> JobDone | JobFailed:
    log = _log.bind(asset_id=job.asset_id)
    outcome: JobDone | JobFailed | None = None
    for attempt in range(1, attempts + 1):
        progress = _Progress(job.asset_id, on_event)
        forwarder = asyncio.create_task(progress.forward(), name=f"progress-{job.asset_id}")
        try:
            result = await package_asset(job, ladder=ladder, on_progress=progress.update)
            outcome = JobDone(job.asset_id, result)
        except PackagingFailed as exc:
            log.warning("packaging_failed", code=exc.code, attempt=attempt, reason=str(exc))
            outcome = JobFailed(job.asset_id, exc.code, str(exc))
            if exc.retryable and attempt < attempts:
                outcome = None
        except asyncio.CancelledError:
            forwarder.cancel()
            raise
        except Exception as exc:  # a bug must not take the worker (and the app) down
            log.exception("packaging_crashed", attempt=attempt)
            outcome = JobFailed(
                job.asset_id, "packaging_failed", f"Packaging failed unexpectedly ({exc})."
            )
            if attempt < attempts:
                outcome = None
        finally:
            progress.finish()
        await forwarder
        if outcome is not None:
            break
        log.info("packaging_retry", attempt=attempt + 1)
        assert outcome is None
    assert outcome is not None
    if isinstance(outcome, JobFailed) and outcome.code == "packaging_failed" and attempt > 1:
        outcome = JobFailed(
            job.asset_id,
            "packaging_failed",
            f"Packaging failed {attempt} times; the last error: {outcome.message}",
        )
    await _emit(on_event, outcome)
    return outcome


class MemoryPackagingQueue:
    """The single-process queue: an asyncio queue and ``concurrency`` workers."""

    def __init__(
        self,
        *,
        concurrency: int = 1,
        ladder: LadderSpec | None = None,
        metrics: VodMetrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.concurrency = concurrency
        self._ladder = ladder
        self._metrics = metrics
        self._jobs: asyncio.Queue[PackagingJob] = asyncio.Queue()

    def _count(self) -> None:
        if self._metrics is not None:
            self._metrics.jobs_queued.set(self._jobs.qsize())

    async def submit(self, job: PackagingJob) -> None:
        self._jobs.put_nowait(job)
        self._count()

    async def resubmit(self, job: PackagingJob) -> bool:
        """The queue lived in the stopped process, so the job is lost: submit it again."""
        await self.submit(job)
        return True

    async def run(self, on_event: OnEvent) -> None:
        async with asyncio.TaskGroup() as tg:
            for i in range(self.concurrency):
                tg.create_task(self._worker(on_event), name=f"packager-{i}")

    async def _worker(self, on_event: OnEvent) -> None:
        while True:
            job = await self._jobs.get()
            self._count()
            try:
                await execute_job(job, on_event, ladder=self._ladder, metrics=self._metrics)
            finally:
                self._jobs.task_done()


def _encode(job: PackagingJob) -> dict[Any, Any]:
    body = {
        "asset_id": job.asset_id,
        "playback_id": job.playback_id,
        "namespace": job.namespace,
        "source": str(job.source),
        "output": str(job.output),
        "max_duration_s": job.max_duration_s,
    }
    return {"job": json.dumps(body)}


def _decode(fields: dict[Any, Any]) -> PackagingJob:
    raw = fields.get(b"job", fields.get("job"))
    if raw is None:
        raise ValueError("a job entry without a 'job' field")
    body = json.loads(raw)
    limit = body.get("max_duration_s")
    return PackagingJob(
        asset_id=str(body["asset_id"]),
        playback_id=str(body["playback_id"]),
        namespace=str(body["namespace"]),
        source=Path(body["source"]),
        output=Path(body["output"]),
        max_duration_s=None if limit is None else float(limit),
    )


class RedisPackagingQueue:
    """Jobs in a Redis stream read by the consumer group ``packagers`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        concurrency: int = 1,
        ladder: LadderSpec | None = None,
        claim_timeout: float = 60.0,
        stream: str = JOBS_STREAM,
        group: str = JOBS_GROUP,
        consumer: str | None = None,
        block: float = 2.0,
        metrics: VodMetrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if claim_timeout <= 0:
            raise ValueError("claim_timeout must be > 0")
        self.concurrency = concurrency
        self.claim_timeout = claim_timeout
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._ladder = ladder
        self._block_ms = max(1, round(block * 1000))
        self._redis = aioredis.Redis.from_url(url)
        self._group_ready = False
        self._metrics = metrics

    async def close(self) -> None:
        await self._redis.aclose()

    async def submit(self, job: PackagingJob) -> None:
        await self._ensure_group()
        await self._redis.xadd(self.stream, _encode(job))

    async def resubmit(self, job: PackagingJob) -> bool:
        """Add ``job`` unless an entry for its asset is in the stream (waiting or running).

        Control planes starting together race for ``<stream>:resubmit:<asset>`` (expires
        after ``claim_timeout``); the winner looks for the asset in the stream (an entry
        stays there until its job ended) and adds the job only when it is not there.
        """
        key = f"{self.stream}:resubmit:{job.asset_id}"
        ttl_ms = max(1000, round(self.claim_timeout * 1000))
        if not await self._redis.set(key, self.consumer, nx=True, px=ttl_ms):
            return False
        if job.asset_id in await self.queued_assets():
            return False
        await self.submit(job)
        return True

    async def queued_assets(self) -> set[str]:
        """The asset ids of every entry in the stream (not started, or running)."""
        found: set[str] = set()
        start = "-"
        while True:
            entries: Any = await self._redis.xrange(self.stream, min=start, count=500)
            for _entry_id, fields in entries or []:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    found.add(_decode(dict(fields or {})).asset_id)
            if not entries or len(entries) < 500:
                return found
            start = "(" + bytes(entries[-1][0]).decode()

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def run(self, on_event: OnEvent) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(self.concurrency):
                    tg.create_task(self._worker(on_event, f"{self.consumer}-{i}"))
        finally:
            await self._redis.aclose()

    async def _worker(self, on_event: OnEvent, consumer: str) -> None:
        backoff = 0.5
        registered = False
        while True:
            try:
                await self._ensure_group()
                if not registered:  # visible in XINFO CONSUMERS before its first job
                    await self._redis.xgroup_createconsumer(self.stream, self.group, consumer)
                    registered = True
                entry = await self._next(consumer)
                await self._count()
                backoff = 0.5
            except (*_REDIS_DOWN, redis.exceptions.ResponseError) as exc:
                # Redis away, or back without our stream (NOGROUP): recreate and go on.
                _log.warning("job_queue_unavailable", error=str(exc), retry_in=backoff)
                self._group_ready = registered = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if entry is None:
                continue
            entry_id, fields, deliveries = entry
            await self._handle(on_event, consumer, entry_id, fields, deliveries)

    async def _count(self) -> None:
        """Jobs in the stream not yet delivered to any worker (the cluster's queue)."""
        if self._metrics is None:
            return
        total = await self._redis.xlen(self.stream)
        pending: Any = await self._redis.xpending(self.stream, self.group)
        self._metrics.jobs_queued.set(max(0, int(total) - int(pending.get("pending", 0))))

    async def _next(self, consumer: str) -> tuple[bytes, dict[Any, Any], int] | None:
        """A job idle too long in another (dead) worker's hands, else a new one (blocking)."""
        idle_ms = max(1, round(self.claim_timeout * 1000))
        claimed = await self._redis.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=idle_ms, start_id="0-0", count=1
        )
        messages = claimed[1] if len(claimed) > 1 else []
        for entry_id, fields in messages:
            if fields is None:  # deleted meanwhile
                await self._redis.xack(self.stream, self.group, entry_id)
                continue
            pending = await self._redis.xpending_range(
                self.stream, self.group, min=entry_id, max=entry_id, count=1
            )
            deliveries = int(pending[0]["times_delivered"]) if pending else 2
            _log.info("job_reclaimed", entry=entry_id.decode(), consumer=consumer,
                      deliveries=deliveries)  # fmt: skip
            return entry_id, fields, deliveries
        answer: Any = await self._redis.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=1, block=self._block_ms
        )
        for _, entries in answer or []:
            for entry_id, fields in entries:
                return bytes(entry_id), dict(fields), 1
        return None

    async def _handle(
        self,
        on_event: OnEvent,
        consumer: str,
        entry_id: bytes,
        fields: dict[Any, Any],
        deliveries: int,
    ) -> None:
        try:
            job = _decode(fields)
        except (ValueError, KeyError, TypeError) as exc:
            _log.error("job_unreadable", entry=entry_id.decode(), error=str(exc))
            await self._done(entry_id)
            return
        keeper = asyncio.create_task(self._keep_claimed(consumer, entry_id))
        try:
            if deliveries > MAX_DELIVERIES:
                if self._metrics is not None:
                    self._metrics.packaging_failures.labels("packaging_failed").inc()
                await _emit(
                    on_event,
                    JobFailed(
                        job.asset_id,
                        "packaging_failed",
                        f"Packaging was interrupted {deliveries - 1} times (its worker stopped).",
                    ),
                )
            else:
                await execute_job(job, on_event, ladder=self._ladder, metrics=self._metrics)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await self._done(entry_id)

    async def _done(self, entry_id: bytes) -> None:
        while True:
            try:
                await self._redis.xack(self.stream, self.group, entry_id)
                await self._redis.xdel(self.stream, entry_id)
                return
            except _REDIS_DOWN as exc:
                _log.warning("job_ack_failed", error=str(exc))
                await asyncio.sleep(1.0)

    async def _keep_claimed(self, consumer: str, entry_id: bytes) -> None:
        """Reset the entry's idle time while it runs, so no other worker takes it over."""
        while True:
            await asyncio.sleep(self.claim_timeout / 3)
            try:
                await self._redis.xclaim(
                    self.stream, self.group, consumer, min_idle_time=0,
                    message_ids=[entry_id], justid=True,
                )  # fmt: skip
            except _REDIS_DOWN as exc:
                _log.warning("job_claim_refresh_failed", error=str(exc))


def open_queue(
    redis_url: str | None,
    *,
    concurrency: int,
    ladder: LadderSpec | None = None,
    claim_timeout: float = 60.0,
    metrics: VodMetrics | None = None,
) -> PackagingQueue:
    """Redis stream + consumer group when a ``redis://`` URL is given, in memory otherwise."""
    if redis_url is None or redis_url.startswith("memory:"):
        return MemoryPackagingQueue(concurrency=concurrency, ladder=ladder, metrics=metrics)
    return RedisPackagingQueue(
        redis_url,
        concurrency=concurrency,
        ladder=ladder,
        claim_timeout=claim_timeout,
        metrics=metrics,
    )
