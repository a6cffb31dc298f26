"""Uploads survive a SIGKILL of the control plane: restart, HEAD, resume, byte-exact."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.control.server import ControlServer, create_org
from tests.vod.uploadkit import make_clip

pytestmark = pytest.mark.e2e

SEED = {"tus-resumable": "2.0.0"}


def _wait_for_size(path: Path, size: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= size:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {size} bytes")


def test_sigkill_mid_upload_then_resume(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=3.0)
    db = f"sqlite:///{tmp_path / 'control.db'}"
    data_dir = tmp_path / "data"
    key = create_org(db)["api_key"]
    flags = ("--data-dir", str(data_dir), "--upload-idle-seconds", "0.5")
    first = ControlServer(db, *flags)
    try:
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(f"{first.base_url}/v1/assets/uploads", json={"name": "c"}, headers=auth)
        assert r.status_code == 201, r.text
        url, aid = r.json()["uploadUrl"], r.json()["assetId"]
        stored = data_dir / "uploads" / f"{aid}.bin"
        # A PATCH of the whole file whose sender stops after 60 %, connection open.
        sent = len(clip) * 6 // 10
        path = url.split(f":{first.port}", 1)[1]
        conn = socket.create_connection(("127.0.0.1", first.port))
        conn.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 2.0.0\r\n"
                "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(clip)}\r\n\r\n"
            ).encode()
            + clip[:sent]
        )
        _wait_for_size(stored, sent)
        first._proc.kill()  # SIGKILL, mid-request
        first._proc.wait()
        conn.close()
    finally:
        first.close()

    second = ControlServer(db, *flags)
    try:
        r = httpx.head(f"{second.base_url}{path}", headers=SEED)
        assert r.status_code == 200
        offset = int(r.headers["upload-offset"])
        assert offset == sent
        r = httpx.patch(
            f"{second.base_url}{path}",
            content=clip[offset:],
            headers={
                **SEED,
                "upload-offset": str(offset),
                "content-type": "application/offset+octet-stream",
            },
        )
        assert r.status_code == 204 and int(r.headers["upload-offset"]) == len(clip)
        assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(clip).digest()
        # Whole MP4 + idle: the restarted control plane takes it to packaging.
        deadline = time.monotonic() + 20
        status = ""
        while time.monotonic() < deadline:
            status = httpx.get(f"{second.base_url}/v1/assets/{aid}", headers=auth).json()["status"]
            if status not in ("waiting_upload", "uploading"):
                break
            time.sleep(0.1)
        assert status in ("processing", "ready"), status
    finally:
        second.close()
