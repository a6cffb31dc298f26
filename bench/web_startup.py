"""Browser live start-up: ``viewer.play()`` -> first presented frame for late joiners (issue 12).

    python -m bench.web_startup [--joins 10] [--gop 2] [--json F]

Real processes on loopback: ``clutchcall up`` (control plane, origin, POP over aioquic),
``clutchcall publish testsrc`` (500 ms objects, ``--gop`` s groups) and headless Debian
Chromium driven by Playwright, playing through the SDK bundle the control plane serves.
Each join is a fresh page that imports the SDK (cached by then), then times
``await viewer.play(lv_…)`` -> ``onStarted`` (the first frame presented,
``requestVideoFrameCallback``): WebTransport + MoQT setup with the token, the catalog
(SUBSCRIBE + joining FETCH), MSE set-up, the video and audio SUBSCRIBE + joining FETCH
of the current group from its keyframe, and the decode of the first frame. Joins are
spaced by a random fraction of a group, so they land anywhere in a group (a late joiner
starts at the latest group's first object, which the joining FETCH brings at once).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@clutchcall/sdk/streams": "%s/sdk/streams.js"}}</script>
</head><body><video muted playsinline width="640" height="360"></video></body></html>
"""

JOIN = """async ([id, token]) => {
  const { Streams } = await import("@clutchcall/sdk/streams");
  let started;
  const first = new Promise((resolve) => { started = resolve; });
  const viewer = new Streams({ apiBase: "", token }).viewer({ onStarted: () => started(performance.now()) });
  viewer.attach(document.querySelector("video"));
  const t0 = performance.now();
  await viewer.play(id);
  const resolved = performance.now();
  const shown = await Promise.race([first, new Promise((r) => setTimeout(() => r(null), 15000))]);
  const stats = viewer.stats();
  viewer.stop();
  return { play: resolved - t0, first: shown === null ? null : shown - t0, stats };
}"""


def _up(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    info = workdir / "up.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--http", "127.0.0.1:0", "--origin",
         "127.0.0.1:0", "--pop", "127.0.0.1:0", "--rtmp", "", "--db",
         f"sqlite:///{workdir / 'up.db'}", "--info-file", str(info)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if info.exists() and info.read_text().strip():
            return proc, json.loads(info.read_text())
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("clutchcall up did not start")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _site(workdir: Path, up: dict[str, Any]) -> str:
    site = workdir / "site"
    (site / "sdk").mkdir(parents=True)
    (site / "index.html").write_text(PAGE % up["base_url"])
    config = httpx.get(up["base_url"] + "/sdk/config.json", timeout=10).json()
    (site / "sdk" / "config.json").write_text(json.dumps(config))
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://localhost:{server.server_address[1]}/index.html"


def run(joins: int, gop: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        workdir = Path(tmp)
        up_proc, up = _up(workdir)
        publisher: subprocess.Popen[bytes] | None = None
        try:
            http = httpx.Client(
                base_url=up["base_url"], timeout=30,
                headers={"Authorization": f"Bearer {up['api_key']}", "X-ClutchCall-Org": up["org_id"]},
            )  # fmt: skip
            body = http.post("/v1/live_inputs", json={"name": "bench", "ingest": "fmp4"}).json()
            li, lv = body["input"]["id"], body["input"]["external_input_id"]
            publisher = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "publish", "testsrc", "--relay",
                 up["publish_url"], "--namespace", body["input"]["namespace"], "--key",
                 body["streamKey"], "--cafile", up["cafile"], "--gop", str(gop)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while http.get(f"/v1/live_inputs/{li}").json().get("status") != "live":
                if time.monotonic() > deadline:
                    raise SystemExit("the input did not go live")
                time.sleep(0.25)
            time.sleep(2 * gop)  # a warm POP: the first viewer's upstream subscription is not timed
            url = _site(workdir, up)
            results: list[dict[str, Any]] = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True,
                    args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox",
                          "--disable-dev-shm-usage", "--mute-audio"],
                )  # fmt: skip
                context = browser.new_context()
                rng = random.Random(12)
                for _ in range(joins + 1):
                    token = http.post(f"/v1/live_inputs/{li}/playback_urls", json={}).json()[
                        "token"
                    ]
                    page = context.new_page()
                    page.goto(url)
                    results.append(page.evaluate(JOIN, [lv, token]))
                    page.close()
                    time.sleep(rng.uniform(0, gop))
                browser.close()
            timed = results[1:]  # the first join also loads and compiles the SDK
            firsts = [r["first"] for r in timed if r["first"] is not None]
            plays = [r["play"] for r in timed]
            return {
                "joins": len(timed),
                "gop_s": gop,
                "failed": len(timed) - len(firsts),
                "first_frame_ms": {
                    "median": statistics.median(firsts) if firsts else None,
                    "p90": sorted(firsts)[int(0.9 * (len(firsts) - 1))] if firsts else None,
                    "max": max(firsts) if firsts else None,
                    "all": [round(x) for x in firsts],
                },
                "play_resolved_ms": {"median": statistics.median(plays), "max": max(plays)},
                "renditions": sorted({r["stats"]["rendition"] for r in timed}),
                "stats": [r["stats"] for r in timed],
            }
        finally:
            if publisher is not None:
                publisher.terminate()
                publisher.wait(10)
            up_proc.send_signal(signal.SIGINT)
            try:
                up_proc.wait(20)
            except subprocess.TimeoutExpired:
                up_proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--gop", type=float, default=2.0, help="publisher group duration (s)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args.joins, args.gop)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
