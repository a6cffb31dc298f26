"""Live playback in Chromium over MoQT/WebTransport: the seed's recipe 2 step 4 as printed.

A real ``clutchcall up`` (control plane, origin with RTMP, POP over aioquic), a real
ffmpeg encoder pushing RTMP (transcoded to the 720p/360p ladder), a signed playback
URL minted by the control plane, and Chromium playing it through the SDK bundle the
control plane serves. The page's origin (a static server, like an app's own site)
serves its ``/sdk/config.json`` with the control plane's answer, which is what
``new Streams({ apiBase: "", token })`` reads; the relay's self-signed certificate is
pinned from the control plane's ``/v1/relay/certificate``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from media.ffmpeg import ffmpeg_exe
from tests.web.conftest import run_module, transpile_ts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Recipe 2, step 4 (verbatim but for the input id).
RECIPE_2_STEP_4 = """\
const dataPlane = new Streams({ apiBase: "", token: tokenFromUrl });
const viewer = dataPlane.viewer();
viewer.attach(videoEl);
await viewer.play("lv_keynote");
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>live</title><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@clutchcall/sdk/streams": "%(sdk)s"}}</script>
</head><body><video id="v" muted playsinline width="640" height="360"></video></body></html>
"""


def api(up: dict[str, Any]) -> httpx.Client:
    return httpx.Client(
        base_url=up["base_url"],
        headers={"Authorization": f"Bearer {up['api_key']}", "X-ClutchCall-Org": up["org_id"]},
        timeout=30,
    )


def create_input(up: dict[str, Any], name: str = "Keynote 2026") -> tuple[str, str, str]:
    """A live input with RTMP ingest: (li id, external input id, stream key)."""
    with api(up) as http:
        res = http.post("/v1/live_inputs", json={"name": name, "ingest": "rtmp"})
        res.raise_for_status()
        body = res.json()
    return body["input"]["id"], body["input"]["external_input_id"], body["streamKey"]


def signed_url(up: dict[str, Any], li_id: str, ttl: int = 900) -> dict[str, Any]:
    with api(up) as http:
        res = http.post(f"/v1/live_inputs/{li_id}/playback_urls", json={"ttl_seconds": ttl})
        res.raise_for_status()
        ticket: dict[str, Any] = res.json()
        return ticket


@contextlib.contextmanager
def rtmp_encoder(up: dict[str, Any], input_id: str, key: str, seconds: float) -> Iterator[Any]:
    """ffmpeg pushing 720p30 testsrc2 + a tone over RTMP (as an OBS would), for ``seconds``."""
    url = f"{up['rtmp_url']}/{input_id}/{key}"
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", url,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_live(up: dict[str, Any], li_id: str, timeout: float = 60.0) -> None:
    """Until the control plane reports the input live (the origin published its catalog)."""
    deadline = time.monotonic() + timeout
    with api(up) as http:
        while time.monotonic() < deadline:
            if http.get(f"/v1/live_inputs/{li_id}").json().get("status") == "live":
                return
            time.sleep(0.25)
    raise AssertionError(f"input {li_id} did not go live within {timeout}s")


def watch_site(up: dict[str, Any], tmp: Path) -> Path:
    """The app's own site: the page, and its /sdk/config.json as the control plane answers it."""
    site = tmp / "site"
    (site / "sdk").mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text(PAGE % {"sdk": up["base_url"] + "/sdk/streams.js"})
    config = httpx.get(up["base_url"] + "/sdk/config.json", timeout=10).json()
    (site / "sdk" / "config.json").write_text(json.dumps(config))
    return site


PREAMBLE = """\
import { Streams } from "@clutchcall/sdk/streams";
const videoEl = document.querySelector("video");
const tokenFromUrl = new URLSearchParams(location.search).get("token");
"""


def frames(page: Any) -> int:
    return int(
        page.evaluate("document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames")
    )


def wait_frames_rising(page: Any, more: int = 30, timeout: float = 30.0) -> None:
    """The decoded frame count rises by ``more`` (playback is progressing)."""
    start = frames(page)
    page.wait_for_function(
        f"document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames >= {start + more}",
        timeout=timeout * 1000,
    )


def wait_until(page: Any, condition: str, timeout: float) -> None:
    """Wait for a JS condition; on timeout, fail with the viewer's stats."""
    try:
        page.wait_for_function(condition, timeout=timeout * 1000)
    except Exception as exc:
        stats = page.evaluate("globalThis.viewer ? viewer.stats() : null")
        raise AssertionError(f"{condition} not reached in {timeout}s; stats: {stats}") from exc


def test_recipe_2_step_4_plays_a_signed_url_and_switches_rendition(
    up_stack: dict[str, Any],
    page: Any,
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    li_id, input_id, key = create_input(up_stack)
    with rtmp_encoder(up_stack, input_id, key, seconds=90) as encoder:
        wait_live(up_stack, li_id)
        ticket = signed_url(up_stack, li_id)
        origin = static_server(watch_site(up_stack, tmp_path))
        page.goto(f"{origin}/index.html?token={ticket['token']}")
        code = PREAMBLE + RECIPE_2_STEP_4.replace("lv_keynote", input_id)
        code += "globalThis.viewer = viewer;\n"
        run_module(page, transpile_ts(code))

        wait_frames_rising(page, more=30)
        stats = page.evaluate("viewer.stats()")
        assert stats["namespace"] == f"stream/{up_stack['org_id']}/{input_id}"
        renditions = page.evaluate("viewer.renditions()")
        assert set(renditions) >= {"720p", "360p"}, renditions
        assert stats["latency"] < 6, stats

        # Pin the other rendition: the switch happens at a group boundary, playback goes on.
        target = "360p" if stats["rendition"] != "360p" else "720p"
        page.evaluate(f"viewer.setRendition({json.dumps(target)})")
        wait_until(page, f"viewer.stats().rendition === {json.dumps(target)}", 20.0)
        wait_frames_rising(page, more=30)
        after = page.evaluate("viewer.stats()")
        assert after["switches"] >= 1
        assert after["height"] == int(target.rstrip("p"))
        assert encoder.poll() is None, "the encoder stopped early"
    assert not [e for e in page.console_errors if "favicon" not in e], page.console_errors
