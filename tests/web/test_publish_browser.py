"""Recipe 1 as printed, in Chromium against ``clutchcall up``: go live from the browser.

Page 1 (the broadcaster, on its own origin) creates a live input through the control
plane, publishes Chromium's fake webcam and microphone with the SDK's publisher
(WebCodecs H.264 + Opus muxed to CMAF, MoQT over WebTransport) to the stack's
``relay_url`` - the POP, which carries the publisher to the origin - and mints a
signed playback URL. Page 2 (a viewer, another browser context) plays it with the
SDK's live viewer through the same POP: its decoded frame count keeps rising. Then
both tear down and the input goes idle. The only edits to the printed code are the
URLs (``https://app.clutchcall.dev`` and ``https://relay.clutchcall.dev`` -> the
stack's) and, on page 2, where ``input`` comes from (page 1 handed it over).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import open_sdk_page, run_module, transpile_ts, typecheck_ts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SEED_BASE = "https://app.clutchcall.dev"
SEED_RELAY = "https://relay.clutchcall.dev"

# Recipe 1, steps 1 to 5 (verbatim).
STEP_1 = """\
import { Streams } from "@clutchcall/sdk/streams";

const streams = new Streams({
  baseUrl: "https://app.clutchcall.dev",
  apiKey:  process.env.CLUTCHCALL_CREDENTIALS!,
  orgId:   "org_abc",
});

const { input, streamKey } = await streams.liveInputs.create({
  name: "Live Demo", ingest: "fmp4",
});
// Persist streamKey now — it is never returned again.
"""
STEP_2 = """\
const dataPlane = new Streams({ relayUrl: "https://relay.clutchcall.dev" });
const pub  = dataPlane.publisher({ timesliceMs: 1000 });
const cam  = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });

await pub.publish(
  input.external_input_id,
  streamKey,
  cam,
  `stream/org_abc/${input.external_input_id}`,
);
"""
STEP_3 = """\
const { url } = await input.signedPlaybackUrl({ ttlSeconds: 3600 });
// Hand `url` (or just the input id + a token) to each viewer.
"""
STEP_4 = """\
const viewerStreams = new Streams({ apiBase: "", relayUrl: "https://relay.clutchcall.dev" });
const viewer = viewerStreams.viewer({
  onStarted: () => console.log("live"),
  onError:   (e) => console.error("playback error", e),
});
viewer.attach(document.querySelector("video")!);
await viewer.play(input.external_input_id);   // lv_… → live over MoQT
"""
STEP_5 = """\
pub.stop();
viewer.stop();
"""

VIEWER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>watch</title><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@clutchcall/sdk/streams": "%(sdk)s"}}</script>
</head><body><video id="v" muted playsinline width="640" height="360"></video></body></html>
"""


def test_recipe_1_type_checks_as_printed(tmp_path: Path) -> None:
    program = STEP_1 + STEP_2 + STEP_3 + STEP_4 + STEP_5 + "export {};\n"
    typecheck_ts({"recipe1.ts": program}, tmp_path)


def _frames(page: Any) -> int:
    return int(
        page.evaluate("document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames")
    )


def _input(up: dict[str, Any], li_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {up['api_key']}", "X-ClutchCall-Org": up["org_id"]}
    with httpx.Client(base_url=up["base_url"], headers=headers, timeout=10) as api:
        body: dict[str, Any] = api.get(f"/v1/live_inputs/{li_id}").json()
        return body


def _wait_status(up: dict[str, Any], li_id: str, wanted: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _input(up, li_id)["status"] == wanted:
            return
        time.sleep(0.25)
    got = _input(up, li_id)
    raise AssertionError(
        f"input {li_id} is {got['status']!r} ({got['last_error']}), not {wanted!r}"
    )


def _watch(
    context: Any,
    up: dict[str, Any],
    static_server: Callable[[Path], str],
    tmp_path: Path,
    input_id: str,
    token: str,
    frames: int = 45,
) -> tuple[Any, list[str]]:
    """Recipe 1 step 4 on a page of ``context``; returns once ``frames`` more were decoded."""
    base = up["base_url"]
    site = tmp_path / "watch"
    (site / "sdk").mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text(VIEWER_PAGE % {"sdk": f"{base}/sdk/streams.js"})
    config = httpx.get(f"{base}/sdk/config.json", timeout=10).json()
    (site / "sdk" / "config.json").write_text(json.dumps(config))
    viewer_page = context.new_page()
    errors: list[str] = []
    viewer_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    viewer_page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    viewer_page.goto(f"{static_server(site)}/index.html?token={token}")
    preamble = (
        'import { Streams } from "@clutchcall/sdk/streams";\n'
        f"const input = {{ external_input_id: {json.dumps(input_id)} }};\n"
    )
    step_4 = STEP_4.replace(SEED_RELAY, up["relay_url"])
    run_module(viewer_page, transpile_ts(preamble + step_4 + "globalThis.viewer = viewer;\n"))
    start = _frames(viewer_page)
    viewer_page.wait_for_function(
        "document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames"
        f" >= {start + frames}",
        timeout=40_000,
    )
    return viewer_page, errors


def test_recipe_1_go_live_from_the_browser_and_watch_through_the_pop(
    browser: Any,
    page: Any,
    up_stack: dict[str, Any],
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    base, relay = up_stack["base_url"], up_stack["relay_url"]
    assert up_stack["org_id"] == "org_abc"
    # Page 1: create the input, publish the fake webcam, mint the signed URL.
    open_sdk_page(page, static_server, tmp_path, f"{base}/sdk/streams.js",
                  env={"CLUTCHCALL_CREDENTIALS": up_stack["api_key"]})  # fmt: skip
    code = (STEP_1.replace(SEED_BASE, base) + STEP_2.replace(SEED_RELAY, relay) + STEP_3
            + "Object.assign(globalThis, { pub, __out: { input: input.toJSON(), url } });\n")  # fmt: skip
    out = run_module(page, transpile_ts(code), "globalThis.__out")
    li_id, input_id = out["input"]["id"], out["input"]["external_input_id"]
    assert out["url"].startswith(relay)
    _wait_status(up_stack, li_id, "live", 30)
    stats = page.evaluate("pub.stats()")
    assert stats["capture"] == "webcodecs", stats

    # Page 2: a viewer elsewhere, handed the input id and the signed URL's token.
    context = browser.new_context(ignore_https_errors=True)
    try:
        viewer_page, viewer_errors = _watch(
            context, up_stack, static_server, tmp_path, input_id, out["url"].split("token=", 1)[1]
        )
        stats = viewer_page.evaluate("viewer.stats()")
        assert stats["namespace"] == f"stream/org_abc/{input_id}", stats
        published = page.evaluate("pub.stats()")
        assert published["videoFrames"] > 45 and published["audioFrames"] > 50, published
        assert published["groups"] >= 2, published

        # Step 5, each page tearing down its own half.
        page.evaluate("pub.stop()")
        viewer_page.evaluate("viewer.stop()")
        _wait_status(up_stack, li_id, "idle", 20)
        assert viewer_errors == [], viewer_errors
    finally:
        context.close()
    assert page.console_errors == [], page.console_errors


FALLBACK = """\
import { Streams } from "@clutchcall/sdk/streams";
const cam = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
const pub = new Streams({ relayUrl: %(relay)s }).publisher({ timesliceMs: 500, capture: "mediarecorder" });
await pub.publish(%(id)s, %(key)s, cam, %(ns)s);
globalThis.pub = pub;
"""


def test_mediarecorder_fallback_publishes_one_gop_per_group(
    browser: Any,
    page: Any,
    up_stack: dict[str, Any],
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    """Where WebCodecs capture is missing: MediaRecorder MP4, split into single-track CMAF."""
    headers = {"Authorization": f"Bearer {up_stack['api_key']}", "X-ClutchCall-Org": "org_abc"}
    with httpx.Client(base_url=up_stack["base_url"], headers=headers, timeout=10) as api:
        created = api.post("/v1/live_inputs", json={"name": "fallback", "ingest": "fmp4"}).json()
        li_id, input_id = created["input"]["id"], created["input"]["external_input_id"]
        ticket = api.post(f"/v1/live_inputs/{li_id}/playback_urls", json={"ttl_seconds": 600})
        token = ticket.json()["token"]
    open_sdk_page(page, static_server, tmp_path, f"{up_stack['base_url']}/sdk/streams.js")
    run_module(page, FALLBACK % {
        "relay": json.dumps(up_stack["relay_url"]), "id": json.dumps(input_id),
        "key": json.dumps(created["streamKey"]), "ns": json.dumps(f"stream/org_abc/{input_id}"),
    })  # fmt: skip
    _wait_status(up_stack, li_id, "live", 30)
    context = browser.new_context(ignore_https_errors=True)
    try:
        try:
            viewer_page, viewer_errors = _watch(
                context, up_stack, static_server, tmp_path, input_id, token, frames=30
            )
        except Exception as exc:
            stats = page.evaluate("pub.stats()")
            raise AssertionError(f"{exc}: {_input(up_stack, li_id)} {stats}") from exc
        stats = page.evaluate("pub.stats()")
        assert stats["capture"] == "mediarecorder" and stats["groups"] >= 2, stats
        page.evaluate("pub.stop()")
        viewer_page.evaluate("viewer.stop()")
        _wait_status(up_stack, li_id, "idle", 20)
        assert viewer_errors == [], viewer_errors
    finally:
        context.close()
    assert page.console_errors == [], page.console_errors


CANVAS_44K1 = """\
import { Streams } from "@clutchcall/sdk/streams";
const canvas = document.createElement("canvas");
canvas.width = 640; canvas.height = 360;
const g = canvas.getContext("2d");
let n = 0;
setInterval(() => { g.fillStyle = `hsl(${(n++ * 7) %% 360} 60%% 50%%)`; g.fillRect(0, 0, 640, 360); }, 33);
const stream = canvas.captureStream(30);
const audio = new AudioContext({ sampleRate: 44100 });   // a 44.1 kHz stereo source
const tone = audio.createOscillator();
const sink = audio.createMediaStreamDestination();
tone.connect(sink); tone.start();
stream.addTrack(sink.stream.getAudioTracks()[0]);
const pub = new Streams({ relayUrl: %(relay)s }).publisher({ timesliceMs: 500 });
await pub.publish(%(id)s, %(key)s, stream, %(ns)s);
globalThis.pub = pub;
"""


def test_a_canvas_and_a_44k1_audio_context_play(
    browser: Any,
    page: Any,
    up_stack: dict[str, Any],
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    """Not every source is a 48 kHz microphone: Chromium's MSE played a 44.1 kHz source's
    Opus at the dOps input rate and the viewer failed; it is always written as 48000."""
    headers = {"Authorization": f"Bearer {up_stack['api_key']}", "X-ClutchCall-Org": "org_abc"}
    with httpx.Client(base_url=up_stack["base_url"], headers=headers, timeout=10) as api:
        created = api.post("/v1/live_inputs", json={"name": "canvas", "ingest": "fmp4"}).json()
        li_id, input_id = created["input"]["id"], created["input"]["external_input_id"]
        ticket = api.post(f"/v1/live_inputs/{li_id}/playback_urls", json={"ttl_seconds": 600})
        token = ticket.json()["token"]
    open_sdk_page(page, static_server, tmp_path, f"{up_stack['base_url']}/sdk/streams.js")
    run_module(page, CANVAS_44K1 % {
        "relay": json.dumps(up_stack["relay_url"]), "id": json.dumps(input_id),
        "key": json.dumps(created["streamKey"]), "ns": json.dumps(f"stream/org_abc/{input_id}"),
    })  # fmt: skip
    _wait_status(up_stack, li_id, "live", 30)
    context = browser.new_context(ignore_https_errors=True)
    try:
        viewer_page, viewer_errors = _watch(
            context, up_stack, static_server, tmp_path, input_id, token, frames=30
        )
        page.evaluate("pub.stop()")
        viewer_page.evaluate("viewer.stop()")
        assert viewer_errors == [], viewer_errors
    finally:
        context.close()


REFUSALS = """\
import { Streams, PublishError } from "@clutchcall/sdk/streams";
const cam = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
async function outcome(relayUrl, key) {
  const pub = new Streams({ relayUrl }).publisher({ timesliceMs: 500 });
  try { await pub.publish(%(id)s, key, cam, %(ns)s); pub.stop(); return "resolved"; }
  catch (e) { return { isPublishError: e instanceof PublishError, reason: e.reason, message: e.message }; }
}
globalThis.__out = {
  wrongKey: await outcome(%(relay)s, "sk_wrong"),
  otherInputsKey: await outcome(%(relay)s, %(other)s),
  noRelay: await outcome(%(nowhere)s, %(key)s),
};
"""


def test_a_wrong_key_or_endpoint_is_a_typed_publish_error(
    page: Any, up_stack: dict[str, Any], static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {up_stack['api_key']}", "X-ClutchCall-Org": "org_abc"}
    with httpx.Client(base_url=up_stack["base_url"], headers=headers, timeout=10) as api:
        mine = api.post("/v1/live_inputs", json={"name": "mine", "ingest": "fmp4"}).json()
        other = api.post("/v1/live_inputs", json={"name": "other", "ingest": "fmp4"}).json()
    input_id = mine["input"]["external_input_id"]
    relay = up_stack["relay_url"]
    nowhere = relay.rsplit(":", 1)[0] + ":9"  # nothing answers WebTransport there
    open_sdk_page(page, static_server, tmp_path, f"{up_stack['base_url']}/sdk/streams.js")
    out = run_module(page, REFUSALS % {
        "id": json.dumps(input_id), "ns": json.dumps(f"stream/org_abc/{input_id}"),
        "relay": json.dumps(relay), "nowhere": json.dumps(nowhere),
        "key": json.dumps(mine["streamKey"]), "other": json.dumps(other["streamKey"]),
    }, "globalThis.__out")  # fmt: skip
    for case in ("wrongKey", "otherInputsKey"):
        assert out[case]["isPublishError"], out
        assert out[case]["reason"] == "auth_failed", out
        assert f"invalid stream key for {input_id}" in out[case]["message"], out
    assert out["noRelay"]["isPublishError"] and out["noRelay"]["reason"] == "network", out
