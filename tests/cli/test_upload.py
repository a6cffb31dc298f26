"""``clutchcall upload`` as a user runs it, against ``clutchcall control`` processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.control.server import ROOT, ControlServer, create_org

pytestmark = pytest.mark.timeout(180)


class Stack:
    def __init__(self, server: ControlServer, api_key: str, data_dir: Path) -> None:
        self.server = server
        self.api_key = api_key
        self.data_dir = data_dir

    def upload(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CLUTCHCALL_CREDENTIALS": key or self.api_key}
        env["CLUTCHCALL_BASE_URL"] = self.server.base_url
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "upload", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )

    def api(self, method: str, path: str, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.request(method, self.server.base_url + path, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    db = f"sqlite:///{tmp_path / 'control.db'}"
    data = tmp_path / "data"
    org = create_org(db)
    server = ControlServer(db, "--data-dir", str(data), "--upload-idle-seconds", "0.5")
    try:
        yield Stack(server, str(org["api_key"]), data)
    finally:
        server.close()


def test_upload_no_wait_stores_the_file(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "talk.mp4"
    source.write_bytes(os.urandom(1_500_000))
    out = stack.upload(str(source), "--name", "Talk", "--no-wait", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    asset = stack.api("GET", f"/v1/assets/{result['asset_id']}").json()
    assert asset["name"] == "Talk" and asset["size"] == 1_500_000
    assert asset["status"] in ("processing", "errored")  # random bytes are not media
    assert (stack.data_dir / "uploads" / f"{asset['id']}.bin").read_bytes() == source.read_bytes()


def test_upload_resume_continues_where_the_server_is(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    data = os.urandom(800_000)
    source.write_bytes(data)
    created = stack.api("POST", "/v1/assets/uploads", json={"name": "c", "size": len(data)}).json()
    r = httpx.patch(
        created["uploadUrl"],
        content=data[:300_000],
        headers={"Tus-Resumable": "2.0.0", "Upload-Offset": "0",
                 "Content-Type": "application/offset+octet-stream"},
    )  # fmt: skip
    assert r.status_code == 204, r.text
    out = stack.upload(
        str(source), "--resume", created["uploadUrl"], "--asset", created["assetId"], "--no-wait"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == created["assetId"]
    assert "uploading" in out.stderr and "800.0/800.0 kB" in out.stderr  # the bar
    stored = stack.data_dir / "uploads" / f"{created['assetId']}.bin"
    assert stored.read_bytes() == data


def test_upload_errors_say_what_to_do(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "a.mp4"
    source.write_bytes(b"x" * 1000)
    out = stack.upload(str(tmp_path / "missing.mp4"))
    assert out.returncode == 2 and "no such file" in out.stderr
    out = stack.upload(str(source), key="ck_wrong")
    assert out.returncode == 1 and "401" in out.stderr and "Traceback" not in out.stderr
    out = stack.upload(str(source), "--asset", "as_x")
    assert out.returncode == 2 and "--resume" in out.stderr
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CLUTCHCALL_CREDENTIALS", "CLUTCHCALL_API_KEY")
    }
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "upload", str(source)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "API key" in out.stderr
    # An upload URL that is no capability: a typed refusal, and how to continue.
    out = stack.upload(
        str(source), "--resume", f"{stack.server.base_url}/v1/uploads/up_{'A' * 43}", "--quiet"
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr


@pytest.mark.e2e
def test_upload_waits_until_ready_and_prints_the_signed_url(stack: Stack, tmp_path: Path) -> None:
    from tests.vod._clips import make_clip

    clip = make_clip(tmp_path / "talk.mp4", seconds=3.0)
    out = stack.upload(str(clip), "--require-signed-urls", "--ttl", "600")
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip()
    assert re.fullmatch(
        rf"{re.escape(stack.server.base_url)}/vod/pb_\w+/catalog\.json\?token=.+", url
    )
    assert "uploading" in out.stderr and "Traceback" not in out.stderr
    catalog = httpx.get(url, timeout=10)
    assert catalog.status_code == 200 and catalog.json()["tracks"]
    assert httpx.get(url.split("?")[0], timeout=10).status_code == 401  # signed only
