"""``clutchcall watch`` plays on-demand assets too: a signed ``/vod/pb_...`` URL, or a bare
``pb_`` id with ``--base-url`` and ``--token``; ``--out`` is a playable MP4 of the asset."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from cli.watch import vod_target
from tests.vod.servekit import served
from tests.vod.uploadkit import OCTETS, SEED, make_clip

ROOT = Path(__file__).resolve().parents[2]


async def _watch(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.watch", *args,
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _decoded_seconds(path: Path) -> float:
    """Decode the whole file with ffmpeg (errors fail) and return the duration it read."""
    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
         "-stats", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    errors = [line for line in run.stderr.splitlines() if "time=" not in line]
    assert errors == [], errors
    stamp = run.stderr.rsplit("time=", 1)[1].split()[0]
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_vod_target() -> None:
    base = "http://127.0.0.1:8080/"
    assert vod_target("pb_abc123", base) == "http://127.0.0.1:8080/vod/pb_abc123/catalog.json"
    url = "https://cdn.example/vod/pb_x/catalog.json?token=t"
    assert vod_target(url, base) == url
    assert vod_target("https://pop:4443/stream/org_a/lv_b?token=t", base) is None
    assert vod_target("lv_abc", base) is None
    with pytest.raises(ValueError):
        vod_target("pb_abc", "ftp://x")


@pytest.mark.e2e
async def test_watch_plays_an_asset_by_url_and_by_id(tmp_path: Path) -> None:
    clip = await asyncio.to_thread(make_clip, tmp_path / "clip.mp4", 4.0)
    async with served(tmp_path, record=False) as srv:
        created = await srv.new_upload(requireSignedUrls=True)
        aid, pb = created["assetId"], created["playbackId"]
        r = await srv.client.patch(
            created["uploadUrl"], content=clip, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204, r.text
        await srv.wait_ready(aid)
        r = await srv.client.post(
            f"{srv.base_url}/v1/assets/{aid}/playback_urls",
            json={"ttl_seconds": 600},
            headers=srv.auth(),
        )
        assert r.status_code == 201, r.text
        ticket = r.json()

        # The signed URL, as `clutchcall upload` prints it.
        out = tmp_path / "by-url.mp4"
        code, stdout, stderr = await _watch(ticket["url"], "--out", str(out))
        assert code == 0, (stdout, stderr)
        assert f"watching {pb} (on demand)" in stdout
        assert "closed: ended" in stdout
        assert await asyncio.to_thread(_decoded_seconds, out) == pytest.approx(4.0, abs=0.3)

        # A bare pb_ id, the server and the token given apart; from 2.5 s on, which starts
        # at the group (2 s GOPs) at or before it.
        out = tmp_path / "by-id.mp4"
        code, stdout, stderr = await _watch(
            pb, "--base-url", srv.base_url, "--token", ticket["token"], "--start", "2.5",
            "--out", str(out),
        )  # fmt: skip
        assert code == 0, (stdout, stderr)
        assert await asyncio.to_thread(_decoded_seconds, out) == pytest.approx(2.0, abs=0.3)

        # A signed asset without its token: auth_failed (exit 3), said on stderr.
        code, stdout, stderr = await _watch(pb, "--base-url", srv.base_url)
        assert code == 3, (stdout, stderr)
        assert "clutchcall watch:" in stderr
