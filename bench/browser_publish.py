"""Glass-to-glass latency and publishing CPU of the browser SDK (issue 12).

    .venv/bin/python -m bench.browser_publish [--seconds 20] [--timeslices 500,1000]
        [--targets low,200] [--scene flat|detailed] [--encoders default,constant]
        [--no-cpu] [--json out.json] [--sdk NAME=DIR ...]

A real ``clutchcall up`` (control plane, origin, POP) on loopback and one headless
Chromium. The broadcaster page draws a 1280x720 canvas at 30 fps with the wall clock
written into it as a barcode (44 bits of ``Date.now()``, 32 px blocks), and publishes
its ``captureStream(30)`` (+ a tone) with the SDK's publisher (WebCodecs H.264 + Opus)
to the POP, which carries it to the origin. A viewer page (another browser context)
plays it through the same POP with the SDK's live viewer; for every frame it presents
(``requestVideoFrameCallback``) it reads the barcode back from the decoded picture:
glass-to-glass latency = expected display time - the time drawn into the frame. Both
pages share one machine clock. p50/p99 per ``timesliceMs``, split (p50s) into the video
encoder's time (the publisher's ``stats().encodeMs``), the player's own buffer (newest
appended media - playhead) and the rest (capture, muxing, send, POP -> origin -> POP,
receive, append, decode, display); with the player's target and its stalls (``waiting``).

A/B: ``--targets`` lists the viewer's ``targetLatencyMs`` values to compare (``low``, the
default; ``auto``; ms, e.g. ``200``). One viewer page per value watches the SAME broadcast
over the SAME seconds, so every variant sees the same host load (``/proc/loadavg`` is
printed before and after each point). Keyframes: the broadcaster page wraps
``VideoEncoder`` (the SDK's own, unchanged) to time each frame's encode and size, and when
each keyframe was asked for; each presented frame is then put in a bucket by where it
was drawn in its group: the keyframe itself, the next 200 ms, or the rest of the group,
with p50 / p99 per bucket (does the group's first, biggest frame make the p99 tail?).
``--scene detailed`` draws a still textured picture with a moving box instead of a picture
that changes hue every frame, so keyframes are many times the other frames (a webcam's
case); ``--encoders`` runs one broadcast per encoder variant (``default``: the SDK's own
configuration; ``constant``: ``bitrateMode: "constant"``; ``quantizer``: per-frame QP, 38
for keyframes and 30 for the others, a smaller keyframe; Chromium 156's software H.264
encoder refuses it: "Unsupported bitrate mode"), one after the other (each
point's load printed: a second concurrent broadcast's viewers were refused on a loaded host).

SDK builds A/B: ``--sdk base=DIR`` (a copy of web/dist) serves that build too; a target
``low@base`` watches with it, an encoder ``default@base`` publishes with it, side by side
with the stack's own build. Each viewer's ``waiting`` events are classified from the
element's and each SourceBuffer's ranges: ``hole`` (a later range), ``dry video`` /
``dry audio`` (under 50 ms ahead in that SourceBuffer), ``decoder`` (media ahead in both).

CPU: Chromium's processes (all of them: browser, renderer, GPU, utility) while the
broadcaster page publishes 720p30 and no viewer watches, against the same page only
drawing its canvas, in cores (CPU seconds per wall second) from /proc.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ._procs import cpu_seconds, percentile

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CLUTCHCALL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        "--autoplay-policy=no-user-gesture-required", "--no-sandbox", "--disable-dev-shm-usage",
        "--mute-audio", "--disable-gpu"]  # fmt: skip

PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@clutchcall/sdk/streams": "%(sdk)s"}}</script>
</head><body><video id="v" muted playsinline></video></body></html>"""

# The broadcaster: a canvas with the clock as 44 black/white 32 px blocks (2 rows of 22).
DRAW = """
const canvas = document.createElement("canvas");
canvas.width = 1280; canvas.height = 720;
const g = canvas.getContext("2d");
let frame = 0;
// "detailed": a still, textured picture (like a webcam's room) with a small moving box:
// keyframes many times the other frames. "flat": the whole picture changes hue every frame.
let texture = null;
if (globalThis.__scene === "detailed") {
  texture = new OffscreenCanvas(1280, 720);
  const t = texture.getContext("2d");
  let seed = 1;
  const rnd = () => ((seed = (seed * 16807) %% 2147483647) / 2147483647);
  for (let y = 0; y < 720; y += 8) for (let x = 0; x < 1280; x += 8) {
    t.fillStyle = `hsl(${Math.floor(rnd() * 360)} ${Math.floor(rnd() * 60)}% ${Math.floor(30 + rnd() * 40)}%)`;
    t.fillRect(x, y, 8, 8);
  }
}
globalThis.__draw = setInterval(() => {
  const now = Date.now();
  if (texture) {
    g.drawImage(texture, 0, 0);
    g.fillStyle = "#f33"; g.fillRect(200 + (frame++ * 8) %% 880, 400, 120, 120);
  } else {
    g.fillStyle = `hsl(${(frame++ * 3) %% 360} 60% 50%)`; g.fillRect(0, 0, 1280, 720);
  }
  g.fillStyle = "#888"; g.fillRect(0, 0, 22 * 32 + 32, 2 * 32 + 32);
  for (let bit = 0; bit < 44; bit++) {
    g.fillStyle = Math.floor(now / 2 ** bit) % 2 ? "#fff" : "#000";
    g.fillRect(16 + (bit %% 22) * 32, 16 + Math.floor(bit / 22) * 32, 32, 32);
  }
}, 1000 / 30);
// Keyframes and encode times, seen from outside the SDK (its VideoEncoder wrapped).
globalThis.__keys = []; globalThis.__enc = [];
const Encoder = globalThis.VideoEncoder;
if (Encoder) {
  const started = new Map();
  globalThis.VideoEncoder = class extends Encoder {
    constructor(init) {
      super({ ...init, output: (chunk, meta) => {
        const t0 = started.get(chunk.timestamp);
        started.delete(chunk.timestamp);
        if (t0 !== undefined) globalThis.__enc.push([chunk.type === "key" ? 1 : 0, chunk.byteLength, performance.now() - t0]);
        if (globalThis.__enc.length > 5000) globalThis.__enc.shift();
        init.output(chunk, meta);
      } });
    }
    configure(config) {
      return super.configure({ ...config, ...(globalThis.__encoderPatch || {}) });
    }
    encode(frame, options) {
      if (options && options.keyFrame) globalThis.__keys.push(Date.now());
      started.set(frame.timestamp, performance.now());
      const q = globalThis.__encoderPatch && globalThis.__encoderPatch.bitrateMode === "quantizer";
      // quantizer: a coarser keyframe (QP 38) than the other frames (QP 30): a smaller keyframe
      return super.encode(frame, q ? { ...options, avc: { quantizer: options && options.keyFrame ? 38 : 30 } } : options);
    }
  };
}
const stream = canvas.captureStream(30);
const audio = new AudioContext();
const tone = audio.createOscillator();
const sink = audio.createMediaStreamDestination();
tone.connect(sink); tone.start();
stream.addTrack(sink.stream.getAudioTracks()[0]);
globalThis.__stream = stream;
"""

PUBLISH = """
import { Streams } from %(sdk)s;
const pub = new Streams({ relayUrl: %(relay)s }).publisher({ timesliceMs: %(timeslice)d, videoBitrate: 2500000 });
await pub.publish(%(id)s, %(key)s, globalThis.__stream, %(ns)s);
globalThis.pub = pub;
"""

WATCH = """
globalThis.__sbs = [];
const addSourceBuffer = MediaSource.prototype.addSourceBuffer;
MediaSource.prototype.addSourceBuffer = function (type) {
  const sb = addSourceBuffer.call(this, type);
  globalThis.__sbs.push(sb);
  return sb;
};
const { Streams } = await import(%(sdk)s);
const video = document.querySelector("video");
const viewer = new Streams({ apiBase: "", relayUrl: %(relay)s, token: %(token)s }).viewer(%(options)s);
viewer.attach(video);
await viewer.play(%(id)s);
globalThis.viewer = viewer;
// The player's own buffer: seconds behind the newest media it received (its live-edge policy).
globalThis.__buffer = [];
globalThis.__target = [];
globalThis.__stalls = 0;
// Each waiting: where the playhead was against the element's and each SourceBuffer's
// buffered ranges (the SourceBuffers recorded by the addSourceBuffer wrapper above).
globalThis.__waits = [];
const ends = (r) => Array.from({ length: r.length }, (_, i) => [r.start(i), r.end(i)]);
video.addEventListener("waiting", () => {
  globalThis.__stalls += 1;
  const t = video.currentTime;
  const sbs = (globalThis.__sbs || []).map((sb) => { try { return ends(sb.buffered); } catch { return []; } });
  globalThis.__waits.push({ t, rs: video.readyState, ranges: ends(video.buffered), sbs });
});
setInterval(() => {
  const s = viewer.stats();
  if (typeof s.latency === "number") globalThis.__buffer.push(s.latency * 1000);
  if (typeof s.targetLatencyMs === "number") globalThis.__target.push(s.targetLatencyMs);
}, 250);
const canvas = document.createElement("canvas");
const g = canvas.getContext("2d", { willReadFrequently: true });
globalThis.__latency = [];
globalThis.__drawn = [];
const read = (_now, meta) => {
  const w = video.videoWidth, h = video.videoHeight;
  if (w && h) {
    const sx = w / 1280, sy = h / 720;
    // Only the barcode's corner is copied out of the frame (a whole 720p copy per frame kept
    // the viewer page's main thread busy: its appends, hence its measured jitter, were late).
    const rw = Math.ceil(752 * sx), rh = Math.ceil(112 * sy);
    if (canvas.width !== rw || canvas.height !== rh) { canvas.width = rw; canvas.height = rh; }
    g.drawImage(video, 0, 0, rw, rh, 0, 0, rw, rh);
    let t = 0;
    for (let bit = 0; bit < 44; bit++) {
      const x = Math.round((16 + (bit %% 22) * 32 + 16) * sx), y = Math.round((16 + Math.floor(bit / 22) * 32 + 16) * sy);
      const p = g.getImageData(x, y, 1, 1).data;
      if (p[0] + p[1] + p[2] > 384) t += 2 ** bit;
    }
    const shown = performance.timeOrigin + meta.expectedDisplayTime;
    const latency = shown - t;
    if (latency > 0 && latency < 60000) { globalThis.__latency.push(latency); globalThis.__drawn.push(t); }
  }
  video.requestVideoFrameCallback(read);
};
video.requestVideoFrameCallback(read);
"""


def _run_module(page: Any, code: str) -> Any:
    return page.evaluate(
        """async (code) => {
            const url = URL.createObjectURL(new Blob([code], {type: "text/javascript"}));
            try { await import(url); } finally { URL.revokeObjectURL(url); }
        }""",
        code,
    )


@contextmanager
def _stack(workdir: Path) -> Iterator[dict[str, Any]]:
    info = workdir / "up.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUTCHCALL_")}
    env.update(PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--http", "127.0.0.1:0", "--origin", "127.0.0.1:0",
         "--pop", "127.0.0.1:0", "--rtmp", "", "--db", f"sqlite:///{workdir / 'up.db'}",
         "--org-id", "org_abc", "--info-file", str(info)],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"running;"):
                break
        else:
            raise SystemExit("clutchcall up did not start")
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield json.loads(info.read_text())
    finally:
        proc.terminate()
        proc.wait(20)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _static(directory: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()


def _chromium_cpu() -> float:
    """CPU seconds of every Chromium process descending from this one."""
    me, total = os.getpid(), 0.0
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
            except (OSError, IndexError):
                continue
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, me):
            ancestor = parents.get(ancestor)
        if ancestor == me:
            try:
                if "chrom" in (Path(f"/proc/{pid}/comm").read_text()):
                    total += cpu_seconds(pid)
            except OSError:
                continue
    return total


def _api(up: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=up["base_url"], timeout=10,
                        headers={"Authorization": f"Bearer {up['api_key']}", "X-ClutchCall-Org": "org_abc"})  # fmt: skip


def _input(up: dict[str, Any]) -> tuple[str, str, str, str]:
    with _api(up) as api:
        body = api.post("/v1/live_inputs", json={"name": "bench", "ingest": "fmp4"}).json()
        li, lv = body["input"]["id"], body["input"]["external_input_id"]
        token = api.post(f"/v1/live_inputs/{li}/playback_urls", json={"ttl_seconds": 3600}).json()
        return li, lv, body["streamKey"], token["token"]


# Publisher encoder variants (merged into the SDK's VideoEncoder.configure by the wrapper).
ENCODERS: dict[str, dict[str, Any]] = {
    "default": {},  # the SDK's own: latencyMode realtime, bitrateMode variable
    "constant": {"bitrateMode": "constant"},
    "quantizer": {"bitrateMode": "quantizer"},  # per frame: keyframes QP 38, others QP 30
}


def _broadcaster(context: Any, site: str, scene: str = "flat", encoder: str = "default") -> Any:
    page = context.new_page()
    page.goto(f"{site}/index.html")
    page.evaluate(
        "([scene, patch]) => { globalThis.__scene = scene; globalThis.__encoderPatch = patch; }",
        [scene, ENCODERS[encoder]],
    )
    _run_module(page, DRAW.replace("%%", "%"))
    return page


def _publish(
    page: Any, up: dict[str, Any], timeslice: int, sdk: str | None = None
) -> tuple[str, str]:
    li, lv, key, token = _input(up)
    _run_module(page, PUBLISH % {"relay": json.dumps(up["relay_url"]), "timeslice": timeslice,
                                 "sdk": json.dumps(sdk or f"{up['base_url']}/sdk/streams.js"),
                                 "id": json.dumps(lv), "key": json.dumps(key),
                                 "ns": json.dumps(f"stream/org_abc/{lv}")})  # fmt: skip
    deadline = time.monotonic() + 30
    with _api(up) as api:  # live at the origin (its first group arrived)
        while api.get(f"/v1/live_inputs/{li}").json()["status"] != "live":
            if time.monotonic() > deadline:
                raise SystemExit(f"{lv} did not go live")
            time.sleep(0.2)
    return lv, token


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _viewer_options(target: str) -> str:
    if target in ("low", "auto"):
        return json.dumps({"targetLatencyMs": target})
    return json.dumps({"targetLatencyMs": float(target)})


def _group_position(drawn: float, keys: Sequence[float]) -> float:
    """ms from the keyframe request of the group a frame drawn at ``drawn`` belongs to (a
    frame is asked for as a keyframe up to a frame interval after it was drawn)."""
    position = float("inf")
    for key in keys:
        if key <= drawn + 35:
            position = drawn - key
        else:
            break
    return position


def _buckets(
    samples: Sequence[float], drawn: Sequence[float], keys: Sequence[float]
) -> dict[str, Any]:
    """Glass-to-glass p50 / p99 of the keyframes, the next 200 ms, and the rest of the groups."""
    groups: dict[str, list[float]] = {"keyframe": [], "after_key_200ms": [], "rest": []}
    for latency, t in zip(samples, drawn, strict=False):
        pos = _group_position(t, keys)
        name = "keyframe" if pos < 2 else "after_key_200ms" if pos < 200 else "rest"
        groups[name].append(latency)
    return {
        name: {"frames": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
        for name, v in groups.items()
    }


def _encodes(records: Sequence[Sequence[float]]) -> dict[str, float]:
    keys = [r for r in records if r[0]]
    deltas = [r for r in records if not r[0]]
    return {
        "key_bytes_p50": percentile([r[1] for r in keys], 50),
        "delta_bytes_p50": percentile([r[1] for r in deltas], 50),
        "key_encode_p50_ms": percentile([r[2] for r in keys], 50),
        "key_encode_max_ms": max((r[2] for r in keys), default=float("nan")),
        "delta_encode_p50_ms": percentile([r[2] for r in deltas], 50),
    }


def _watch(
    browser: Any, site: str, sdk: str, up: dict[str, Any], lv: str, token: str, target: str
) -> tuple[Any, Any]:
    view_ctx = browser.new_context(ignore_https_errors=True)
    viewer = view_ctx.new_page()
    viewer.goto(f"{site}/index.html")
    code = WATCH % {
        "sdk": json.dumps(sdk), "relay": json.dumps(up["relay_url"]),
        "token": json.dumps(token), "id": json.dumps(lv), "options": _viewer_options(target.split("@")[0]),
    }  # fmt: skip
    for attempt in range(3):  # a starved host can fail a join (network, not_found): again
        try:
            _run_module(viewer, code)
            break
        except Exception as exc:  # playwright's Error: the page's PlaybackError
            if attempt == 2 or "network" not in str(exc):
                raise
            print(f"  target {target}: join failed ({exc}); again", flush=True)
            viewer.reload()
    return view_ctx, viewer


def _count(kinds: Iterator[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _wait_kind(wait: dict[str, Any]) -> str:
    """What a ``waiting`` found at the playhead: a later buffered range (``hole``), a
    SourceBuffer with under 50 ms ahead (``dry video`` / ``dry audio``, the first
    SourceBuffer being the video's), or media ahead in both (``decoder``)."""
    t = wait["t"]
    if any(start > t + 1e-3 for start, _ in wait["ranges"]):
        return "hole"
    dry = []
    for i, ranges in enumerate(wait["sbs"]):
        ahead = max(
            (end - t for start, end in ranges if start - 0.1 <= t <= end + 0.1), default=0.0
        )
        if ahead < 0.05:
            dry.append("video" if i == 0 else "audio")
    return f"dry {'+'.join(dry)}" if dry else "decoder"


def _viewer_figures(viewer: Any, keys: Sequence[float], encode: float) -> dict[str, Any]:
    samples = viewer.evaluate("globalThis.__latency")
    drawn = viewer.evaluate("globalThis.__drawn")
    buffered = viewer.evaluate("globalThis.__buffer")
    targets_seen = viewer.evaluate("globalThis.__target")
    g2g, buf = percentile(samples, 50), percentile(buffered, 50)
    player = viewer.evaluate("viewer.stats()")
    # Where the time goes (p50s): the encoder (frame in -> chunk out), the player's own
    # buffer (newest appended media - playhead), and the rest: capture, muxing, send,
    # POP -> origin -> POP, receive, append, decode, display.
    return {
        "frames": len(samples),
        "p50_ms": g2g,
        "p99_ms": percentile(samples, 99),
        "player_buffer_p50_ms": buf,
        "player_target_p50_ms": percentile(targets_seen, 50),
        "player_target_min_ms": min(targets_seen, default=float("nan")),
        "encode_p50_ms": encode,
        "rest_p50_ms": g2g - buf - encode,
        "stalls": viewer.evaluate("globalThis.__stalls"),
        "stall_kinds": _count(_wait_kind(w) for w in viewer.evaluate("globalThis.__waits")),
        "by_group_position": _buckets(samples, drawn, keys),
        # the longest a group's keyframe waited at the viewer for the group before to end
        "handover_max_ms": player.get("handoverMaxMs"),
        "skipped_groups": player.get("skippedGroups"),
        "jitter_ms": player.get("jitterMs"),  # the low / auto targets' measure, at the end
    }


def run(
    seconds: float,
    timeslices: Sequence[int],
    targets: Sequence[str] = ("low", "200"),
    cpu: bool = True,
    scene: str = "flat",
    encoders: Sequence[str] = ("default",),
    sdks: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Per timesliceMs: one broadcast per encoder variant, one viewer per target on each,
    all measured over the same seconds. A target ``200@NAME`` plays with the SDK build
    ``sdks[NAME]`` (a web/dist directory) instead of the stack's own."""
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"scene": scene, "latency": {}, "cpu": {}}
    with tempfile.TemporaryDirectory() as tmp, _stack(Path(tmp)) as up:
        sdk = f"{up['base_url']}/sdk/streams.js"
        site_dir = Path(tmp) / "site"
        (site_dir / "sdk").mkdir(parents=True)
        (site_dir / "index.html").write_text(PAGE % {"sdk": sdk})
        config = httpx.get(f"{up['base_url']}/sdk/config.json", timeout=10).json()
        (site_dir / "sdk" / "config.json").write_text(json.dumps(config))
        # An SDK build served from this site looks for a development relay's certificate
        # hash at its own origin: the control plane's answer, copied.
        cert = httpx.get(f"{up['base_url']}/v1/relay/certificate", timeout=10).content
        (site_dir / "v1" / "relay").mkdir(parents=True)
        (site_dir / "v1" / "relay" / "certificate").write_bytes(cert)
        for name, dist in (sdks or {}).items():
            (site_dir / f"sdk-{name}").mkdir()
            (site_dir / f"sdk-{name}" / "config.json").write_text(json.dumps(config))
            (site_dir / f"sdk-{name}" / "streams.js").write_bytes(
                (dist / "streams.js").read_bytes()
            )
        with _static(site_dir) as site, sync_playwright() as pw:

            def sdk_for(target: str) -> str:
                return f"{site}/sdk-{target.split('@')[1]}/streams.js" if "@" in target else sdk

            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            for timeslice in timeslices:
                # One broadcast at a time (a second concurrent broadcast's viewers were refused
                # "upstream unavailable" by the POP on the loaded host): encoder variants in turn.
                for batch in [[e] for e in encoders]:
                    # encoder -> (publisher context, page, {target: (viewer context, page)})
                    runs: dict[str, tuple[Any, Any, dict[str, tuple[Any, Any]]]] = {}
                    for encoder in batch:
                        pub_ctx = browser.new_context(ignore_https_errors=True)
                        page = _broadcaster(pub_ctx, site, scene, encoder.split("@")[0])
                        lv, token = _publish(page, up, timeslice, sdk_for(encoder))
                        viewers = {
                            t: _watch(browser, site, sdk_for(t), up, lv, token, t) for t in targets
                        }
                        runs[encoder] = (pub_ctx, page, viewers)
                    for _, _, viewers in runs.values():
                        for _, viewer in viewers.values():
                            try:
                                viewer.wait_for_function(
                                    "globalThis.__latency.length > 30", timeout=60_000
                                )
                            except Exception as exc:
                                state = viewer.evaluate(
                                    "({stats: viewer.stats(), frames: globalThis.__latency.length})"
                                )
                                raise SystemExit(f"the viewer did not play: {state}") from exc
                    # Warm-up over (the low target's first steps included): measure all at once.
                    time.sleep(min(5.0, seconds / 4))
                    load_before = _loadavg()
                    for _, page, viewers in runs.values():
                        page.evaluate("globalThis.__enc.length = 0")
                        for _, viewer in viewers.values():
                            viewer.evaluate("globalThis.__latency.length = 0; globalThis.__drawn.length = 0;"
                                            "globalThis.__buffer.length = 0; globalThis.__target.length = 0;"
                                            "globalThis.__stalls = 0; globalThis.__waits.length = 0")  # fmt: skip
                    time.sleep(seconds)
                    load_after = _loadavg()
                    point = results["latency"].setdefault(timeslice, {})
                    print(
                        f"timesliceMs {timeslice}, scene {scene}: load {load_before} -> {load_after}",
                        flush=True,
                    )
                    for encoder, (pub_ctx, page, viewers) in runs.items():
                        keys = page.evaluate("globalThis.__keys")
                        encodes = _encodes(page.evaluate("globalThis.__enc"))
                        stats = page.evaluate("pub.stats()")
                        point[encoder] = {
                            "load_before": load_before,
                            "load_after": load_after,
                            "encoder": encodes,
                            "publisher": stats,
                            "targets": {},
                        }
                        print(f" encoder {encoder}: keyframe {encodes['key_bytes_p50']:.0f} B (encode p50 "
                              f"{encodes['key_encode_p50_ms']:.0f} ms, max {encodes['key_encode_max_ms']:.0f}), "
                              f"other frames {encodes['delta_bytes_p50']:.0f} B ({encodes['delta_encode_p50_ms']:.0f} ms)",
                              flush=True)  # fmt: skip
                        for target, (view_ctx, viewer) in viewers.items():
                            r = _viewer_figures(viewer, keys, stats.get("encodeMs", 0))
                            point[encoder]["targets"][target] = r
                            by = ", ".join(f"{k} {v['frames']} p50 {v['p50_ms']:.0f} p99 {v['p99_ms']:.0f}"
                                           for k, v in r["by_group_position"].items())  # fmt: skip
                            print(f"  target {target}: {r['frames']} frames, p50 {r['p50_ms']:.0f} ms, p99 "
                                  f"{r['p99_ms']:.0f} ms; player buffer p50 {r['player_buffer_p50_ms']:.0f} ms "
                                  f"(target p50 {r['player_target_p50_ms']:.0f}, min {r['player_target_min_ms']:.0f}), "
                                  f"encoder p50 {r['encode_p50_ms']:.0f} ms, rest {r['rest_p50_ms']:.0f} ms; "
                                  f"{r['stalls']} stalls {r['stall_kinds']}; {by}; keyframe waited for the group end <= "
                                  f"{r['handover_max_ms']} ms, {r['skipped_groups']} groups skipped, jitter {r['jitter_ms']} ms", flush=True)  # fmt: skip
                            viewer.evaluate("viewer.stop()")
                            view_ctx.close()
                        page.evaluate("pub.stop()")
                        pub_ctx.close()
            if not cpu:
                browser.close()
                return results
            # CPU: the same broadcaster page drawing only, then drawing and publishing.
            ctx = browser.new_context(ignore_https_errors=True)
            page = _broadcaster(ctx, site)
            for phase in ("draw_only", "publish_720p30"):
                if phase == "publish_720p30":
                    _publish(page, up, 1000)
                    time.sleep(3)  # past the encoders' start
                before, t0 = _chromium_cpu(), time.monotonic()
                time.sleep(seconds)
                cores = (_chromium_cpu() - before) / (time.monotonic() - t0)
                results["cpu"][phase] = round(cores, 3)
                print(f"chromium CPU {phase}: {cores:.2f} cores", flush=True)
            results["cpu"]["publish_stats"] = page.evaluate("pub.stats()")
            page.evaluate("pub.stop()")
            ctx.close()
            browser.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.browser_publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement time per point")
    parser.add_argument("--timeslices", default="500,1000", help="publisher timesliceMs values")
    parser.add_argument(
        "--targets",
        default="low,200",
        help='the viewers\' targetLatencyMs values, side by side on one broadcast: "low" '
        '(the default), "auto", or ms (e.g. 200); default "low,200"',
    )
    # the former single value
    parser.add_argument("--target", dest="targets", help=argparse.SUPPRESS)
    parser.add_argument("--scene", choices=("flat", "detailed"), default="flat",
                        help="flat: the picture changes hue every frame; detailed: a still textured "
                        "picture with a moving box (keyframes much bigger than the other frames)")  # fmt: skip
    parser.add_argument("--encoders", default="default",
                        help=f"publisher encoder variants one after the other: {', '.join(ENCODERS)} "
                        "(ENCODER@NAME: published with the --sdk NAME build)")  # fmt: skip
    parser.add_argument("--no-cpu", action="store_true", help="skip the publishing CPU measurement")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--sdk", action="append", default=[], metavar="NAME=DIR",
                        help="another SDK build (a web/dist directory) for targets written "
                        "TARGET@NAME (or --encoders ENCODER@NAME: its publisher), "
                        "e.g. --sdk base=/tmp/dist --targets low,low@base")  # fmt: skip
    args = parser.parse_args(argv)
    sdks: dict[str, Path] = {}
    for spec in args.sdk:
        name, _, where = spec.partition("=")
        if not name.isidentifier() or not (Path(where) / "streams.js").is_file():
            parser.error(f"--sdk: {spec!r} is not NAME=DIR with DIR/streams.js")
        sdks[name] = Path(where)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for spec in targets:
        t, _, name = spec.partition("@")
        if name and name not in sdks:
            parser.error(f"--targets: {spec!r} names no --sdk {name}=DIR")
        if t not in ("low", "auto"):
            try:
                if float(t) < 0:
                    raise ValueError
            except ValueError:
                parser.error(f'--targets: {t!r} is not "low", "auto" or a number of ms >= 0')
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    for spec in encoders:
        e, _, name = spec.partition("@")
        if name and name not in sdks:
            parser.error(f"--encoders: {spec!r} names no --sdk {name}=DIR")
        if e not in ENCODERS:
            parser.error(f"--encoders: {e!r} is not one of {', '.join(ENCODERS)}")
    results = run(args.seconds, [int(t) for t in args.timeslices.split(",")], targets,
                  cpu=not args.no_cpu, scene=args.scene, encoders=encoders, sdks=sdks)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
