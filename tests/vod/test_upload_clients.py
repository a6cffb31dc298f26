"""Independent clients against the real server: the seed's tusUpload (node, as printed),
tus-js-client (node) and tuspy, each whole and resumed after a cut connection."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from tusclient import client as tus_client

from tests.vod.servekit import CutProxy, run_node, served
from tests.vod.uploadkit import make_clip

pytestmark = pytest.mark.e2e


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
    return _sha(path.read_bytes())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path, seconds=3.0)
    return path


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
async def test_seed_tus_upload_as_printed(tmp_path: Path, clip: Path, cut: bool) -> None:
    data = await asyncio.to_thread(clip.read_bytes)
    async with served(tmp_path) as srv:
        created = await srv.new_upload()
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with CutProxy(port, cut_after=len(data) // 3 if cut else 1 << 40) as proxy:
            code, out, err = await run_node(
                "seed_upload.mjs", proxy.url(created["uploadUrl"]), str(clip), str(64 * 1024)
            )
            assert code == 0, err
            assert proxy.cuts == (1 if cut else 0)
        assert json.loads(out)["attempts"] == (2 if cut else 1)
        job = await srv.queue.wait()
        assert job.asset_id == created["assetId"]
        assert _file_sha(job.source) == _sha(data)
        assert (await srv.asset(created["assetId"]))["status"] == "processing"


async def test_seed_tus_upload_reaches_ready(tmp_path: Path, clip: Path) -> None:
    """The recipe as printed (default 8 MiB chunk), through the real packaging queue."""
    async with served(tmp_path, record=False) as srv:
        ready = asyncio.Event()

        async def sink(_org: str, event: str, data: dict[str, object]) -> None:
            if event == "asset.ready" and data["id"] == created["assetId"]:
                ready.set()

        srv.service.event_sinks.append(sink)
        created = await srv.new_upload()
        code, _out, err = await run_node("seed_upload.mjs", created["uploadUrl"], str(clip))
        assert code == 0, err
        await asyncio.wait_for(ready.wait(), 120)
        got = await srv.asset(created["assetId"])
        assert got["status"] == "ready" and got["size"] == len(
            await asyncio.to_thread(clip.read_bytes)
        )


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
async def test_tus_js_client(tmp_path: Path, clip: Path, cut: bool) -> None:
    data = await asyncio.to_thread(clip.read_bytes)
    async with served(tmp_path) as srv:
        created = await srv.new_upload()
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with CutProxy(port, cut_after=len(data) // 2 if cut else 1 << 40) as proxy:
            code, out, err = await run_node(
                "tus_js_upload.mjs", proxy.url(created["uploadUrl"]), str(clip), str(50_000)
            )
            assert code == 0, err
            assert proxy.cuts == (1 if cut else 0)
        assert (json.loads(out)["errors"] >= 1) == cut
        job = await srv.queue.wait()  # the length is known: no idle wait
        assert job.asset_id == created["assetId"]
        assert _file_sha(job.source) == _sha(data)


def _tuspy_upload(endpoint: str, key: str, path: Path) -> str:
    client = tus_client.TusClient(endpoint, headers={"Authorization": f"Bearer {key}"})
    uploader = client.uploader(
        file_path=str(path),
        chunk_size=40_000,
        metadata={"filename": "clip.mp4"},
        retries=3,
        retry_delay=0.2,
    )
    uploader.upload()
    return str(uploader.url)


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
async def test_tuspy_creation_with_key_then_resume(tmp_path: Path, clip: Path, cut: bool) -> None:
    """tuspy creates the asset (POST /v1/uploads with the key) and, after a cut, asks
    for the offset (HEAD) and goes on from there."""
    data = await asyncio.to_thread(clip.read_bytes)
    async with served(tmp_path) as srv:
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with CutProxy(port, cut_after=len(data) // 2 if cut else 1 << 40) as proxy:
            endpoint = proxy.url(f"{srv.base_url}/v1/uploads")
            upload_url = await asyncio.to_thread(_tuspy_upload, endpoint, srv.api_key, clip)
            assert proxy.cuts == (1 if cut else 0)
        assert "/v1/uploads/up_" in upload_url
        job = await srv.queue.wait()
        assert _file_sha(job.source) == _sha(data)
        assert (await srv.asset(job.asset_id))["name"] == "clip.mp4"
