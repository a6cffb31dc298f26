"""The live player's latency stays near its small target (issue 12), in Chromium.

The SDK's publisher (Chromium's fake webcam: WebCodecs H.264 + Opus, one object per frame)
goes live through ``clutchcall up``'s POP; one viewer page plays it twice through the
same POP: ``fast`` with ``targetLatencyMs`` 200 (fixed: the default "low" target moves with
the host's jitter, web/test/catchup_low.test.mjs tests its steps, and the opt-in "auto" one
up to 1 s on a starved CI host, web/test/catchup_auto.test.mjs) and ``slow`` with 1500 ms,
the live player's former fixed target. Both are paused 2.5 s (they fall 2.5 s behind), then
resumed: ``fast`` must come back near the live edge and stay there, sampled from
``stats().latency`` (seconds between the newest buffered media and the playhead) over a few
seconds; ``slow``, measured the same way, stays over 1.2 s, which the fast bound would
reject: the assertion can fail, and with the old target it did.

The default ("low") target: a viewer without ``targetLatencyMs`` plays the same broadcast;
its target never leaves 130-200 ms (it steps down from 200 ms only while the measured
jitter allows, and never over 200 ms unasked) and its latency stays near it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import open_sdk_page, run_module, transpile_ts

pytestmark = [pytest.mark.e2e, pytest.mark.latency, pytest.mark.timeout(240)]

PUBLISH = """\
import { Streams } from "@clutchcall/sdk/streams";
const streams = new Streams({ baseUrl: %(base)s, apiKey: %(key)s, orgId: "org_abc" });
const { input, streamKey } = await streams.liveInputs.create({ name: "Latency", ingest: "fmp4" });
const pub = new Streams({ relayUrl: %(relay)s }).publisher({ timesliceMs: 1000 });
const cam = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
await pub.publish(input.external_input_id, streamKey, cam, `stream/org_abc/${input.external_input_id}`);
const { url } = await input.signedPlaybackUrl({ ttlSeconds: 600 });
Object.assign(globalThis, { pub, __out: { id: input.external_input_id, url } });
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>latency</title><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@clutchcall/sdk/streams": "%(sdk)s"}}</script>
</head><body><video id="fast" muted playsinline width="320" height="180"></video>
<video id="slow" muted playsinline width="320" height="180"></video></body></html>
"""

WATCH = """\
import { Streams } from "@clutchcall/sdk/streams";
const streams = new Streams({ apiBase: "", relayUrl: %(relay)s });
const fast = streams.viewer({ targetLatencyMs: 200 });
fast.attach(document.querySelector("#fast"));
await fast.play(%(id)s);
const slow = streams.viewer({ targetLatencyMs: 1500 });
slow.attach(document.querySelector("#slow"));
await slow.play(%(id)s);
globalThis.fast = fast;
globalThis.slow = slow;
globalThis.__lat = { fast: [], slow: [] };
setInterval(() => {
  for (const name of ["fast", "slow"]) {
    const s = globalThis[name].stats();
    if (s.state === "playing" && !document.querySelector("#" + name).paused) globalThis.__lat[name].push(s.latency);
  }
}, 250);
"""

FRAMES = "document.querySelector('#%s').getVideoPlaybackQuality().totalVideoFrames"


def publish_and_watch(
    page: Any,
    context: Any,
    up_stack: dict[str, Any],
    static_server: Callable[[Path], str],
    tmp_path: Path,
    watch_code: str,
) -> Any:
    """Publish the fake camera from ``page`` and open a watch page in ``context`` that runs
    ``watch_code`` (with ``%(relay)s`` and ``%(id)s``) on the page's signed URL."""
    base, relay = up_stack["base_url"], up_stack["relay_url"]
    (tmp_path / "pub").mkdir()
    open_sdk_page(page, static_server, tmp_path / "pub", f"{base}/sdk/streams.js")
    code = PUBLISH % {"base": json.dumps(base), "key": json.dumps(up_stack["api_key"]),
                      "relay": json.dumps(relay)}  # fmt: skip
    out = run_module(page, transpile_ts(code), "globalThis.__out")
    site = tmp_path / "watch"
    (site / "sdk").mkdir(parents=True)
    (site / "index.html").write_text(PAGE % {"sdk": f"{base}/sdk/streams.js"})
    config = httpx.get(f"{base}/sdk/config.json", timeout=10).json()
    (site / "sdk" / "config.json").write_text(json.dumps(config))
    watch = context.new_page()
    watch.goto(f"{static_server(site)}/index.html?token={out['url'].split('token=', 1)[1]}")
    run_module(
        watch, transpile_ts(watch_code % {"relay": json.dumps(relay), "id": json.dumps(out["id"])})
    )
    return watch


def test_live_latency_stays_near_the_target_after_falling_behind(
    browser: Any,
    page: Any,
    up_stack: dict[str, Any],
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    context = browser.new_context(ignore_https_errors=True)
    try:
        watch = publish_and_watch(page, context, up_stack, static_server, tmp_path, WATCH)
        watch.wait_for_function(f"{FRAMES % 'fast'} > 60 && {FRAMES % 'slow'} > 60", timeout=60_000)
        stats = watch.evaluate("fast.stats()")
        assert stats["targetLatencyMs"] == 200, stats  # per-frame objects: the target stands

        # Both fall 2.5 s behind, then play on.
        watch.evaluate("for (const v of document.querySelectorAll('video')) v.pause()")
        watch.wait_for_timeout(2500)
        jumps = watch.evaluate("fast.stats().jumps")
        watch.evaluate("for (const v of document.querySelectorAll('video')) v.play()")
        watch.wait_for_function("fast.stats().latency < 1.5", timeout=10_000)
        watch.wait_for_timeout(1000)  # settle (a seek decodes from the group's keyframe)
        watch.evaluate("globalThis.__lat.fast.length = 0; globalThis.__lat.slow.length = 0")
        watch.wait_for_function(
            "__lat.fast.length >= 20 && __lat.slow.length >= 20", timeout=30_000
        )
        lat = watch.evaluate("globalThis.__lat")
        fast, slow = lat["fast"], lat["slow"]
        after = watch.evaluate("fast.stats()")
        assert after["jumps"] > jumps, after  # 2.5 s behind is far: a seek, not a slow catch-up
        assert statistics.median(fast) < 0.6 and max(fast) < 1.5, (fast, after)
        # The former 1.5 s target, measured the same way, fails the bound above.
        assert statistics.median(slow) > 1.2, (slow, watch.evaluate("slow.stats()"))
        page.evaluate("pub.stop()")
    finally:
        context.close()


WATCH_DEFAULT = """\
import { Streams } from "@clutchcall/sdk/streams";
const viewer = new Streams({ apiBase: "", relayUrl: %(relay)s }).viewer();
viewer.attach(document.querySelector("#fast"));
await viewer.play(%(id)s);
globalThis.viewer = viewer;
globalThis.__seen = [];
setInterval(() => {
  const s = viewer.stats();
  if (s.state === "playing") globalThis.__seen.push([s.targetLatencyMs, s.latency, s.jitterMs, s.stalls]);
}, 250);
"""


def test_the_default_low_target_stays_between_its_floor_and_200_ms(
    browser: Any,
    page: Any,
    up_stack: dict[str, Any],
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    context = browser.new_context(ignore_https_errors=True)
    try:
        watch = publish_and_watch(page, context, up_stack, static_server, tmp_path, WATCH_DEFAULT)
        watch.wait_for_function(f"{FRAMES % 'fast'} > 60", timeout=60_000)
        watch.evaluate("globalThis.__seen.length = 0")
        watch.wait_for_function("__seen.length >= 32", timeout=60_000)  # ~8 s of playing
        seen = watch.evaluate("globalThis.__seen")
        targets = [t for t, _, _, _ in seen]
        latencies = [lat for _, lat, _, _ in seen]
        assert all(130 <= t <= 200 for t in targets), seen  # per-frame objects: no raise
        assert statistics.median(latencies) < 0.6 and max(latencies) < 1.5, seen
        print("low target (ms), jitter (ms), stalls:", targets[::4], seen[-1][2], seen[-1][3])
        page.evaluate("pub.stop()")
    finally:
        context.close()
