"""The upload URL's background work (:mod:`vod.uploads`): completing uploads of unknown
length once their file forms a whole MP4 and stayed idle (docs/vod.md), completing whole
uploads a restart interrupted, expiring old ones."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from vod.completion import FRAGMENTS, INCOMPLETE, completion
from vod.locks import UploadLocks
from vod.metrics import VodMetrics
from vod.storage import Storage
from vod.uploads_backend import UploadBackend, UploadInfo

__all__ = ["UploadMaintenance"]

_log = structlog.get_logger("vod.uploads")


class UploadMaintenance:
    """Idle checks, the sweep and their timers; :class:`vod.uploads.UploadEndpoint` is one."""

    backend: UploadBackend
    storage: Storage
    locks: UploadLocks
    idle_seconds: float
    idle_fragmented_seconds: float
    metrics: VodMetrics | None
    _clock: Any
    _timers: dict[str, asyncio.Task[None]]
    # The form of the last append to uploads of unknown length (they complete later,
    # by the idle check: the completion is counted under that form).
    _forms: dict[str, str]

    def _count_completed(self, form: str) -> None:
        if self.metrics is not None:
            self.metrics.uploads_completed.labels(form).inc()

    def schedule_idle_check(self, asset_id: str, delay: float | None = None) -> None:
        """Complete the upload once it forms a whole MP4 and stayed idle (docs/vod.md)."""
        old = self._timers.pop(asset_id, None)
        if old is not None:
            old.cancel()
        wait = self.idle_seconds if delay is None else delay
        task = asyncio.get_running_loop().create_task(self._idle_check(asset_id, wait))
        self._timers[asset_id] = task
        task.add_done_callback(lambda t: self._forget_timer(asset_id, t))

    def _forget_timer(self, asset_id: str, task: asyncio.Task[None]) -> None:
        if self._timers.get(asset_id) is task:
            del self._timers[asset_id]

    async def _idle_check(self, asset_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            up = await self.backend.upload_of_asset(asset_id)
            if up is not None and not up.completed:
                await self._maybe_complete(up, None)
        except Exception:
            _log.exception("upload_idle_check_failed", asset=asset_id)

    async def _maybe_complete(self, up: UploadInfo, offset: int | None) -> None:
        if up.completed or up.length is not None:
            return
        if self._clock() - up.activity_at < self.idle_seconds - 0.01:
            self.schedule_idle_check(up.asset_id)
            return
        lock = await self.locks.acquire(up.asset_id, wait=0)
        if lock is None:
            return
        try:
            path = self.storage.upload_path(up.asset_id)
            size = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
            if size == 0:
                return
            verdict = await asyncio.to_thread(completion, path, size)
            if verdict == INCOMPLETE:
                return
            idle = self._clock() - up.activity_at
            if verdict == FRAGMENTS and idle < self.idle_fragmented_seconds - 0.01:
                # More fragments may come: wait the longer idle (docs/vod.md).
                self.schedule_idle_check(up.asset_id, self.idle_fragmented_seconds - idle)
                return
            await self.backend.bind_length(up.asset_id, size, False)
            await self.backend.complete_upload(up.asset_id, size)
            self._count_completed(self._forms.pop(up.asset_id, "unknown"))
            _log.info("upload_complete_by_boxes", asset=up.asset_id, size=size, kind=verdict)
        finally:
            await lock.release()

    async def _complete_if_full(self, up: UploadInfo) -> None:
        lock = await self.locks.acquire(up.asset_id, wait=0)
        if lock is None:
            return
        try:
            size = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
            if up.length is not None and size == up.length:
                await self.backend.complete_upload(up.asset_id, size)
                self._count_completed(self._forms.pop(up.asset_id, "unknown"))
                _log.info("upload_complete_after_restart", asset=up.asset_id, size=size)
        finally:
            await lock.release()

    async def sweep(self) -> None:
        """Expire old uploads and complete idle whole ones (after a restart, too)."""
        now = self._clock()
        for up in await self.backend.open_uploads():
            try:
                if now >= up.expires_at:
                    await self.backend.expire_upload(up.asset_id)
                    form = self._forms.pop(up.asset_id, "unknown")
                    if self.metrics is not None:
                        self.metrics.upload_failures.labels(form, "expired").inc()
                elif now - up.activity_at < self.idle_seconds:
                    continue
                elif up.length is None:
                    await self._maybe_complete(up, None)
                else:  # all bytes stored, but the process stopped before completing it
                    await self._complete_if_full(up)
            except Exception:
                _log.exception("upload_sweep_failed", asset=up.asset_id)

    async def run_maintenance(self, interval: float = 5.0) -> None:
        """:meth:`sweep` until cancelled (in the control plane's lifespan)."""
        while True:
            await self.sweep()
            await asyncio.sleep(min(interval, max(self.idle_seconds, 0.5)))

    async def close(self) -> None:
        for task in list(self._timers.values()):
            task.cancel()
        for task in list(self._timers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
