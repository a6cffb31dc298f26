"""Glass-to-glass latency and publishing CPU of the browser SDK (issue 12).

    .venv/bin/python -m bench.browser_publish [--seconds 20] [--timeslices 500,1000]
        [--target auto|<ms>] [--no-cpu] [--json out.json]

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
globalThis.__draw = setInterval(() => {
  const now = Date.now();
  g.fillStyle = `hsl(${(frame++ * 3) % 360} 60% 50%)`; g.fillRect(0, 0, 1280, 720);
  g.fillStyle = "#888"; g.fillRect(0, 0, 22 * 32 + 32, 2 * 32 + 32);
  for (let bit = 0; bit < 44; bit++) {
    g.fillStyle = Math.floor(now / 2 ** bit) % 2 ? "#fff" : "#000";
    g.fillRect(16 + (bit %% 22) * 32, 16 + Math.floor(bit / 22) * 32, 32, 32);
  }
}, 1000 / 30);
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
import { Streams } from %(sdk)s;
const video = document.querySelector("video");
const viewer = new Streams({ apiBase: "", relayUrl: %(relay)s, token: %(token)s }).viewer(%(options)s);
viewer.attach(video);
await viewer.play(%(id)s);
globalThis.viewer = viewer;
// The player's own buffer: seconds behind the newest media it received (its live-edge policy).
globalThis.__buffer = [];
globalThis.__target = [];
globalThis.__stalls = 0;
video.addEventListener("waiting", () => { globalThis.__stalls += 1; });
setInterval(() => {
  const s = viewer.stats();
  if (typeof s.latency === "number") globalThis.__buffer.push(s.latency * 1000);
  if (typeof s.targetLatencyMs === "number") globalThis.__target.push(s.targetLatencyMs);
}, 250);
const canvas = document.createElement("canvas");
const g = canvas.getContext("2d", { willReadFrequently: true });
globalThis.__latency = [];
const read = (_now, meta) => {
  const w = video.videoWidth, h = video.videoHeight;
  if (w && h) {
    canvas.width = w; canvas.height = h;
    g.drawImage(video, 0, 0, w, h);
    const sx = w / 1280, sy = h / 720;
    let t = 0;
    for (let bit = 0; bit < 44; bit++) {
      const x = Math.round((16 + (bit %% 22) * 32 + 16) * sx), y = Math.round((16 + Math.floor(bit / 22) * 32 + 16) * sy);
      const p = g.getImageData(x, y, 1, 1).data;
      if (p[0] + p[1] + p[2] > 384) t += 2 ** bit;
    }
    const shown = performance.timeOrigin + meta.expectedDisplayTime;
    const latency = shown - t;
    if (latency > 0 && latency < 60000) globalThis.__latency.push(latency);
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


def _broadcaster(context: Any, site: str) -> Any:
    page = context.new_page()
    page.goto(f"{site}/index.html")
    _run_module(page, DRAW.replace("%%", "%"))
    return page


def _publish(page: Any, up: dict[str, Any], timeslice: int) -> tuple[str, str]:
    li, lv, key, token = _input(up)
    _run_module(page, PUBLISH % {"relay": json.dumps(up["relay_url"]), "timeslice": timeslice,
                                 "sdk": json.dumps(f"{up['base_url']}/sdk/streams.js"),
                                 "id": json.dumps(lv), "key": json.dumps(key),
                                 "ns": json.dumps(f"stream/org_abc/{lv}")})  # fmt: skip
    deadline = time.monotonic() + 30
    with _api(up) as api:  # live at the origin (its first group arrived)
        while api.get(f"/v1/live_inputs/{li}").json()["status"] != "live":
            if time.monotonic() > deadline:
                raise SystemExit(f"{lv} did not go live")
            time.sleep(0.2)
    return lv, token


def run(
    seconds: float, timeslices: Sequence[int], target: str = "auto", cpu: bool = True
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"latency": {}, "cpu": {}}
    with tempfile.TemporaryDirectory() as tmp, _stack(Path(tmp)) as up:
        site_dir = Path(tmp) / "site"
        (site_dir / "sdk").mkdir(parents=True)
        (site_dir / "index.html").write_text(PAGE % {"sdk": f"{up['base_url']}/sdk/streams.js"})
        config = httpx.get(f"{up['base_url']}/sdk/config.json", timeout=10).json()
        (site_dir / "sdk" / "config.json").write_text(json.dumps(config))
        with _static(site_dir) as site, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            for timeslice in timeslices:
                pub_ctx = browser.new_context(ignore_https_errors=True)
                view_ctx = browser.new_context(ignore_https_errors=True)
                page = _broadcaster(pub_ctx, site)
                lv, token = _publish(page, up, timeslice)
                viewer = view_ctx.new_page()
                viewer.goto(f"{site}/index.html")
                _run_module(viewer, WATCH % {
                    "sdk": json.dumps(f"{up['base_url']}/sdk/streams.js"),
                    "relay": json.dumps(up["relay_url"]), "token": json.dumps(token), "id": json.dumps(lv),
                    "options": "{}" if target == "auto" else json.dumps({"targetLatencyMs": float(target)}),
                })  # fmt: skip
                viewer.wait_for_function("globalThis.__latency.length > 30", timeout=60_000)
                viewer.evaluate("globalThis.__latency.length = 0; globalThis.__buffer.length = 0;"
                                "globalThis.__target.length = 0; globalThis.__stalls = 0")  # fmt: skip
                time.sleep(seconds)
                samples = viewer.evaluate("globalThis.__latency")
                buffered = viewer.evaluate("globalThis.__buffer")
                targets = viewer.evaluate("globalThis.__target")
                stalls = viewer.evaluate("globalThis.__stalls")
                stats = page.evaluate("pub.stats()")
                g2g, buf = percentile(samples, 50), percentile(buffered, 50)
                # Where the time goes (p50s): the encoder (frame in -> chunk out), the player's
                # own buffer (newest appended media - playhead), and the rest: capture, muxing,
                # the publisher's send, POP -> origin -> POP, receive, append, decode, display.
                results["latency"][timeslice] = {
                    "frames": len(samples),
                    "p50_ms": g2g,
                    "p99_ms": percentile(samples, 99),
                    "player_buffer_p50_ms": buf,
                    "player_target_p50_ms": percentile(targets, 50),
                    "encode_p50_ms": stats.get("encodeMs", 0),
                    "rest_p50_ms": g2g - buf - stats.get("encodeMs", 0),
                    "stalls": stalls,
                    "publisher": stats,
                }
                print(f"timesliceMs {timeslice}: {len(samples)} frames, p50 "
                      f"{g2g:.0f} ms, p99 {percentile(samples, 99):.0f} ms; player buffer p50 "
                      f"{buf:.0f} ms (target p50 {percentile(targets, 50):.0f} ms), encoder p50 "
                      f"{stats.get('encodeMs', 0):.0f} ms, rest {g2g - buf - stats.get('encodeMs', 0):.0f} ms; "
                      f"{stalls} stalls", flush=True)  # fmt: skip
                viewer.evaluate("viewer.stop()")
                page.evaluate("pub.stop()")
                view_ctx.close()
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
        "--target",
        default="auto",
        help='the viewer\'s targetLatencyMs: "auto" (default) or ms, e.g. 200',
    )
    parser.add_argument("--no-cpu", action="store_true", help="skip the publishing CPU measurement")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    results = run(args.seconds, [int(t) for t in args.timeslices.split(",")], args.target,
                  cpu=not args.no_cpu)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
