"""The publisher's CMAF timeline in Chromium's Media Source Extensions (issue 12).

An MSE player takes a decode-time jump of more than twice the previous frame's duration for
a discontinuity and drops every frame after it up to the next keyframe. The SDK's muxer wrote
the gap to the previous frame as a frame's duration, so a capture whose frames come 17 / 33 /
50 ms apart (a busy page, a camera dropping frames) lost most of each group: Chromium buffered
[0, 0.117], [0.667, 0.783], [1.0, 1.3] of 1.5 s. Frames encoded by Chromium's own
``VideoEncoder``, muxed by the SDK's ``TrackMuxer`` (web/dist/lib), appended one per chunk as
the live publisher sends them.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.web.conftest import ROOT

PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body><video id="v" muted></video><script type="module">
import { TrackMuxer, avcCodecString } from "./lib/cmaf/index.js";
globalThis.buffered = async (timesMs, keys) => {
  const canvas = new OffscreenCanvas(320, 240);
  const g = canvas.getContext("2d");
  const chunks = [];
  let avcC = null;
  const encoder = new VideoEncoder({
    output: (c, meta) => {
      if (meta?.decoderConfig?.description) avcC = new Uint8Array(meta.decoderConfig.description);
      const data = new Uint8Array(c.byteLength);
      c.copyTo(data);
      chunks.push({ data, ts: c.timestamp, key: c.type === "key" });
    },
    error: (e) => { throw e; },
  });
  encoder.configure({ codec: "avc1.42e01f", width: 320, height: 240, avc: { format: "avc" },
                      latencyMode: "realtime", framerate: 30 });
  timesMs.forEach((t, i) => {
    g.fillStyle = `hsl(${(i * 37) % 360},50%,50%)`;
    g.fillRect(0, 0, 320, 240);
    g.fillStyle = "#fff";
    g.fillRect(i * 5, 100, 40, 40);
    const frame = new VideoFrame(canvas, { timestamp: Math.round(t * 1000) });
    encoder.encode(frame, { keyFrame: keys.includes(i) });
    frame.close();
  });
  await encoder.flush();
  const mux = new TrackMuxer({ kind: "video", trackId: 1, timescale: 90000, width: 320, height: 240, avcC });
  const source = new MediaSource();
  document.getElementById("v").src = URL.createObjectURL(source);
  await new Promise((r) => source.addEventListener("sourceopen", r, { once: true }));
  const sb = source.addSourceBuffer(`video/mp4; codecs="${avcCodecString(avcC)}"`);
  const append = (b) => new Promise((r) => { sb.addEventListener("updateend", r, { once: true }); sb.appendBuffer(b); });
  await append(mux.init);
  // As the live publisher does: one chunk per frame, no duration from the encoder.
  for (const c of chunks) await append(mux.chunk([mux.sample(c.data, c.ts, null, c.key)]));
  const b = sb.buffered;
  return Array.from({ length: b.length }, (_, i) => [b.start(i), b.end(i)]);
};
</script></body></html>
"""


def test_jittery_capture_keeps_one_buffered_range(
    page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    shutil.copytree(ROOT / "web" / "dist" / "lib", site / "lib")
    (site / "index.html").write_text(PAGE)
    page.goto(static_server(site) + "/index.html")
    page.wait_for_function("typeof globalThis.buffered === 'function'")
    rng = random.Random(1)
    times, t = [], 0.0
    for _ in range(45):
        times.append(t)
        t += rng.choice([16.7, 33.3, 33.3, 50.0])  # a busy capture; one frame missed at most
    ranges = page.evaluate("([t, k]) => globalThis.buffered(t, k)", [times, [0, 30]])
    assert len(ranges) == 1, f"the timeline broke: buffered {ranges}"
    assert ranges[0][0] < 0.01 and ranges[0][1] >= times[-1] / 1000, ranges
    assert not page.console_errors
