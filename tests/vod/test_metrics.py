"""The on-demand metrics on the control plane's /metrics (vod/metrics.py): uploads by
protocol form, packaging jobs, and /vod/ delivery by kind, moving as files go through."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.vod.servekit import served
from tests.vod.uploadkit import OCTETS, SEED, make_clip, new_upload, upload_api

TUS = {"Tus-Resumable": "1.0.0"}


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def _scrape(
    client: httpx.AsyncClient, url: str = "/metrics"
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await client.get(url)
    assert r.status_code == 200
    return _samples(r.text)


def _get(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
         **labels: str) -> float:  # fmt: skip
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_upload_counters_move_by_protocol_form(tmp_path: Path) -> None:
    async with upload_api(tmp_path) as (api, queue):
        # tus: creation with the first 40 bytes, then the other 60: complete by length.
        r = await api.client.post(
            "/v1/uploads",
            content=b"a" * 40,
            headers={**api.auth(), **TUS, **OCTETS, "Upload-Length": "100"},
        )
        assert r.status_code == 201, r.text
        location = r.headers["location"]
        r = await api.client.patch(
            location, content=b"b" * 60, headers={**TUS, **OCTETS, "Upload-Offset": "40"}
        )
        assert r.status_code == 204, r.text
        await queue.wait(within=5)
        # The seed form: 30 bytes at offset 0, then a PATCH claiming the wrong offset (409).
        url = (await new_upload(api))["uploadUrl"]
        r = await api.client.patch(
            url, content=b"c" * 30, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204, r.text
        r = await api.client.patch(
            url, content=b"d" * 5, headers={**SEED, **OCTETS, "upload-offset": "7"}
        )
        assert r.status_code == 409, r.text

        m = await _scrape(api.client)
        assert _get(m, "clutchcall_control_upload_bytes_total", form="tus") == 100
        assert _get(m, "clutchcall_control_uploads_started_total", form="tus") == 1
        assert _get(m, "clutchcall_control_uploads_completed_total", form="tus") == 1
        assert _get(m, "clutchcall_control_upload_bytes_total", form="seed") == 30
        assert _get(m, "clutchcall_control_uploads_started_total", form="seed") == 1
        assert _get(m, "clutchcall_control_uploads_completed_total", form="seed") == 0
        failures = {
            dict(labels)["reason"]: v
            for (name, labels), v in m.items()
            if name == "clutchcall_control_upload_failures_total" and dict(labels)["form"] == "seed"
        }
        assert failures == {"mismatching-upload-offset": 1}, failures


@pytest.mark.e2e
async def test_packaging_and_delivery_counters(tmp_path: Path) -> None:
    clip = await asyncio.to_thread(make_clip, tmp_path / "clip.mp4", 2.0)
    async with served(tmp_path, record=False) as srv:
        created = await srv.new_upload()
        url, aid, pb = created["uploadUrl"], created["assetId"], created["playbackId"]
        r = await srv.client.patch(
            url, content=clip, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204, r.text
        await srv.wait_ready(aid)

        m = await _scrape(srv.client, f"{srv.base_url}/metrics")
        assert _get(m, "clutchcall_control_uploads_completed_total", form="seed") == 1
        assert _get(m, "clutchcall_control_upload_bytes_total", form="seed") == len(clip)
        assert _get(m, "clutchcall_control_packaging_seconds_count") == 1
        assert _get(m, "clutchcall_control_packaging_seconds_sum") > 0
        assert _get(m, "clutchcall_control_packaging_jobs_running") == 0
        assert _get(m, "clutchcall_control_packaging_jobs_queued") == 0

        base = f"{srv.base_url}/vod/{pb}"
        catalog = (await srv.client.get(f"{base}/catalog.json")).json()
        track = catalog["tracks"][0]["name"]
        sizes = {}
        for kind, path in [
            ("playlist", "master.m3u8"),
            ("init", f"{track}/init.mp4"),
            ("segment", f"{track}/0.m4s"),
        ]:
            r = await srv.client.get(f"{base}/{path}")
            assert r.status_code == 200, (path, r.text)
            sizes[kind] = len(r.content)
        missing = await srv.client.get(f"{base}/{track}/99999.m4s")
        assert missing.status_code == 404

        m = await _scrape(srv.client, f"{srv.base_url}/metrics")
        assert _get(m, "clutchcall_control_vod_requests_total", kind="catalog", status="200") == 1
        for kind, size in sizes.items():
            assert _get(m, "clutchcall_control_vod_requests_total", kind=kind, status="200") == 1
            assert _get(m, "clutchcall_control_vod_bytes_total", kind=kind) == size
        assert _get(m, "clutchcall_control_vod_requests_total", kind="segment", status="404") == 1
        # Five requests for one playback id: the first asked the database, the rest the cache.
        assert _get(m, "clutchcall_control_vod_location_lookups_total", result="miss") >= 1
        assert _get(m, "clutchcall_control_vod_location_lookups_total", result="hit") >= 1
