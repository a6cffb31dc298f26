"""What a stopped control plane left half done is finished at start-up (docs/vod.md)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.vod.uploadkit import asset, new_upload, upload_api
from vod.jobs import JobDone
from vod.packaging import PackagingResult, Rendition


async def test_all_bytes_stored_but_not_completed_is_completed_by_the_sweep(
    tmp_path: Path,
) -> None:
    """The process stopped after the last bytes were fsynced, before recording completion."""
    async with upload_api(tmp_path, upload_idle_seconds=0.05) as (api, queue):
        created = await new_upload(api, size=1000)
        aid = created["assetId"]
        storage = api.service.storage
        storage.upload_path(aid).parent.mkdir(parents=True, exist_ok=True)
        storage.upload_path(aid).write_bytes(b"x" * 999)
        await asyncio.sleep(0.1)  # past the idle time
        await api.app.state.uploads.sweep()
        assert queue.jobs == [] and (await asset(api, aid))["status"] == "waiting_upload"
        storage.upload_path(aid).write_bytes(b"x" * 1000)
        await api.app.state.uploads.sweep()
        job = await queue.wait()
        assert job.asset_id == aid
        assert (await asset(api, aid))["status"] == "processing"


async def test_start_up_resubmits_processing_and_completed_uploads(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, queue):
        repo, now = api.service.repo, time.time()
        processing = (await new_upload(api, size=10))["assetId"]
        assert repo.complete_upload(processing, now, 10)
        stuck = (await new_upload(api, size=10))["assetId"]  # completed, still "uploading"
        repo.update_asset(stuck, now, status="uploading")
        repo.update_upload(stuck, completed_at=now)
        ready = (await new_upload(api, size=10))["assetId"]
        assert repo.complete_upload(ready, now, 10)
        repo.update_asset(ready, now, status="ready")
        waiting = (await new_upload(api))["assetId"]
        assert await api.service.recover_packaging() == 2
        assert sorted(j.asset_id for j in queue.jobs) == sorted([processing, stuck])
        assert (await asset(api, stuck))["status"] == "processing"
        assert (await asset(api, ready))["status"] == "ready"
        assert (await asset(api, waiting))["status"] == "waiting_upload"


async def test_an_asset_packaged_twice_sends_one_ready_event(tmp_path: Path) -> None:
    """A job resubmitted while its first run still finished (Redis race): one asset.ready."""
    async with upload_api(tmp_path) as (api, _queue):
        events: list[tuple[str, str]] = []

        async def sink(_org: str, event: str, data: dict[str, Any]) -> None:
            events.append((event, data["id"]))

        api.service.event_sinks.append(sink)
        aid = (await new_upload(api, size=10))["assetId"]
        assert api.service.repo.complete_upload(aid, time.time(), 10)
        result = PackagingResult(2.0, (Rendition("v720", 1280, 720, 2_000_000, "avc1"),), 10)
        await api.service.on_packaging_event(JobDone(aid, result))
        await api.service.on_packaging_event(JobDone(aid, result))
        assert events == [("asset.ready", aid)]
