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

import asyncio
import concurrent.futures
import contextlib
import json
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.impair import Impairment, ImpairmentProxy
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
</head><body><video id="v" muted playsinline width="%(width)d" height="%(height)d"></video></body></html>
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


def watch_site(
    up: dict[str, Any], tmp: Path, *, relay_url: str | None = None, height: int = 360
) -> Path:
    """The app's own site: the page, and its /sdk/config.json as the control plane answers
    it (``relay_url`` replaced when the viewers reach the relay another way)."""
    site = tmp / "site"
    (site / "sdk").mkdir(parents=True, exist_ok=True)
    page = PAGE % {"sdk": up["base_url"] + "/sdk/streams.js", "width": height * 16 // 9,
                   "height": height}  # fmt: skip
    (site / "index.html").write_text(page)
    config = httpx.get(up["base_url"] + "/sdk/config.json", timeout=10).json()
    if relay_url is not None:
        config["relay_url"] = relay_url
    (site / "sdk" / "config.json").write_text(json.dumps(config))
    return site


class RelayPath:
    """bench.impair's UDP proxy in front of the POP, in a thread of its own: ``url`` reaches
    the relay through it; :meth:`limit` puts a tc tbf-like bottleneck on the viewer-bound
    direction (loopback only)."""

    def __init__(self, relay_url: str) -> None:
        target = urllib.parse.urlsplit(relay_url)
        assert target.hostname is not None and target.port is not None
        self._upstream = (target.hostname, target.port)
        self._ready: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        async with ImpairmentProxy(("127.0.0.1", 0), self._upstream) as proxy:
            stop = asyncio.Event()
            self._ready.set_result((asyncio.get_running_loop(), stop, proxy))
            await stop.wait()

    def __enter__(self) -> RelayPath:
        self._thread.start()
        self._loop, self._stop, self._proxy = self._ready.result(timeout=10)
        host, port = self._proxy.address
        self.url = f"https://{host}:{port}"
        return self

    def limit(self, rate: float) -> None:
        def apply() -> None:
            self._proxy._down.impairment = Impairment(rate=rate, queue=96 * 1024)

        self._loop.call_soon_threadsafe(apply)

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


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


def test_abr_steps_down_when_the_path_is_rate_limited(
    up_stack: dict[str, Any],
    page: Any,
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    """Playing 720p (2.8 Mbit/s), the path drops to 1.5 Mbit/s: the adaptive player moves to
    360p at a group boundary, and playback goes on within what the path carries."""
    li_id, input_id, key = create_input(up_stack, "ABR")
    with (
        rtmp_encoder(up_stack, input_id, key, seconds=120) as encoder,
        RelayPath(up_stack["relay_url"]) as path,
    ):
        wait_live(up_stack, li_id)
        token = signed_url(up_stack, li_id)["token"]
        origin = static_server(watch_site(up_stack, tmp_path, relay_url=path.url, height=720))
        page.goto(f"{origin}/index.html?token={token}")
        code = PREAMBLE + RECIPE_2_STEP_4.replace("lv_keynote", input_id)
        code += "globalThis.viewer = viewer;\n"
        run_module(page, transpile_ts(code))
        wait_frames_rising(page, more=15)
        # Pinned to 720p while the path is open (the start estimate may have chosen it already).
        page.evaluate("viewer.setRendition('720p')")
        wait_until(page, "viewer.stats().rendition === '720p'", 20.0)
        wait_frames_rising(page, more=15)
        switches = page.evaluate("viewer.stats().switches")

        path.limit(1_500_000)
        page.evaluate("viewer.setRendition('auto')")
        wait_until(page, "viewer.stats().rendition === '360p'", 45.0)
        wait_frames_rising(page, more=30)
        stats = page.evaluate("viewer.stats()")
        assert stats["switches"] > switches and stats["state"] == "playing", stats
        assert stats["throughputKbps"] < 1600, stats  # 360p + audio: the 720p subscription is gone
        assert encoder.poll() is None, "the encoder stopped early"


def test_the_broadcast_ending_is_on_ended_not_an_error(
    up_stack: dict[str, Any],
    page: Any,
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    li_id, input_id, key = create_input(up_stack, "Short")
    with rtmp_encoder(up_stack, input_id, key, seconds=14) as encoder:
        wait_live(up_stack, li_id)
        token = signed_url(up_stack, li_id)["token"]
        page.goto(static_server(watch_site(up_stack, tmp_path)) + "/index.html")
        run_module(
            page,
            PREAMBLE
            + f"""
globalThis.seen = [];
globalThis.viewer = new Streams({{ apiBase: "", token: {json.dumps(token)} }}).viewer({{
  onStarted: () => seen.push("started"),
  onError: (e) => seen.push("error:" + e.reason),
  onEnded: () => seen.push("ended"),
}});
viewer.attach(videoEl);
await viewer.play({json.dumps(input_id)});
""",
        )
        wait_until(page, "seen.includes('started')", 20.0)
        encoder.wait(30)  # the encoder finishes its 14 s
        wait_until(page, "seen.includes('ended')", 30.0)
    page.wait_for_timeout(500)
    assert page.evaluate("seen") == ["started", "ended"]
