"""Packaging survives a SIGKILL of the control plane (in-memory queue): the restarted
control plane resubmits the lost job, the asset reaches ``ready`` and exactly one
``asset.ready`` webhook is delivered."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest

from tests.control.server import ControlServer, create_org
from tests.control.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e


def _clip(path: Path) -> bytes:
    """A clip big enough that packaging it takes a few seconds (720p, 6 s)."""
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=6",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-shortest", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path.read_bytes()


def _asset(srv: ControlServer, aid: str, auth: dict[str, str]) -> dict[str, Any]:
    r = httpx.get(f"{srv.base_url}/v1/assets/{aid}", headers=auth)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_sigkill_while_packaging_then_ready_once(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4")
    db = f"sqlite:///{tmp_path / 'control.db'}"
    key = create_org(db)["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    flags = ("--data-dir", str(tmp_path / "data"), "--upload-idle-seconds", "0.5",
             "--webhook-allow-private")  # fmt: skip
    receiver = Receiver()
    first = ControlServer(db, *flags)
    try:
        r = httpx.post(
            f"{first.base_url}/v1/webhooks",
            json={"url": receiver.url, "events": ["asset.ready", "asset.errored"]},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        hook = r.json()["id"]
        r = httpx.post(
            f"{first.base_url}/v1/assets/uploads",
            json={"name": "c", "size": len(clip)},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        url, aid = r.json()["uploadUrl"], r.json()["assetId"]
        r = httpx.patch(
            url,
            content=clip,
            headers={
                "tus-resumable": "2.0.0",
                "upload-offset": "0",
                "content-type": "application/offset+octet-stream",
            },
            timeout=30,
        )
        assert r.status_code in (200, 204), r.text
        # Kill it once packaging is under way (progress reported, not done).
        deadline = time.monotonic() + 60
        got: dict[str, Any] = {}
        while time.monotonic() < deadline:
            got = _asset(first, aid, auth)
            if got["status"] == "processing" and (got["progress"] or 0) > 0:
                break
            assert got["status"] in ("uploading", "processing"), got
            time.sleep(0.05)
        assert got["status"] == "processing" and 0 < got["progress"] < 100, got
        first._proc.kill()  # SIGKILL: the in-memory queue and its running job are gone
        first._proc.wait()
        assert "packaging_resubmitted" not in first.log()
    finally:
        first.close()

    second = ControlServer(db, *flags)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            got = _asset(second, aid, auth)
            if got["status"] != "processing":
                break
            time.sleep(0.2)
        assert got["status"] == "ready", (got, second.log()[-3000:])
        assert got["duration"] == pytest.approx(6.0, abs=0.5)
        r = httpx.get(f"{second.base_url}/vod/{got['playback_id']}/catalog.json")
        assert r.status_code == 200 and r.json()["tracks"]
        [req] = receiver._wait(lambda reqs: len(reqs) >= 1, 30)
        body = json.loads(req.body)
        assert body["type"] == "asset.ready" and body["data"]["id"] == aid, body
        r = httpx.get(f"{second.base_url}/v1/webhooks/{hook}/deliveries", headers=auth)
        assert r.status_code == 200, r.text
        events = [d["event"] for d in r.json()["data"]]
        assert events == ["asset.ready"], events
        assert second.log().count("packaging_resubmitted") == 1
    finally:
        second.close()
        receiver.close()
