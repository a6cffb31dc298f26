"""On-demand playback in Chromium: the seed's recipe 3 step 3 as printed, seeking by the
catalog timeline, rendition pinning and typed errors.

The asset is packaged for real (vod.packaging on an ffmpeg clip) and served in the
docs/vod.md layout (``/vod/<pb>/catalog.json``, ``<track>/init.mp4``,
``<track>/<group>.m4s``) by a real static HTTP server on the page's own origin, which is
what ``new Streams({ apiBase: "" })`` means.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ROOT, run_module, transpile_ts
from tests.web.vodkit import package_clip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PB = "pb_test"

# Recipe 3, step 3 (verbatim but for the playback id; videoEl is the page's <video>).
RECIPE_3_STEP_3 = """\
const dataPlane = new Streams({ apiBase: "" });
const viewer = dataPlane.viewer();
viewer.attach(videoEl);
await viewer.play("pb_def456");   // pb_… → VOD: catalog.json + CMAF over HTTPS
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>vod</title><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@clutchcall/sdk/streams": "/sdk/streams.js"}}</script>
</head><body><video id="v" muted playsinline width="640" height="360"></video></body></html>
"""

# Canvas statistics of the current frame: mean and spread of the luma.
FRAME_STATS = """() => {
  const v = document.querySelector("video");
  const c = document.createElement("canvas");
  c.width = 160; c.height = 90;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sq = 0;
  const luma = [];
  for (let i = 0; i < d.length; i += 4) {
    const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    luma.push(Math.round(y)); sum += y; sq += y * y;
  }
  const n = d.length / 4, mean = sum / n;
  return { mean, std: Math.sqrt(sq / n - mean * mean), luma };
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vodsite")
    package_clip(root / "vod", PB, seconds=8.0)
    (root / "sdk").symlink_to(ROOT / "web" / "dist")
    (root / "index.html").write_text(PAGE)
    return root


def _open(page: Any, static_server: Callable[[Path], str], site: Path) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(static_server(site) + "/index.html")
    return requests


def _segments(requests: list[str], *tracks: str) -> list[str]:
    """Segment file names fetched for any of ``tracks``, in order."""
    return [
        u.split("/")[-1].split("?")[0]
        for u in requests
        if any(f"/vod/{PB}/{track}/" in u for track in tracks)
    ]


def test_recipe_3_plays_a_pb_asset_as_printed(
    page: Any, static_server: Callable[[Path], str], site: Path
) -> None:
    requests = _open(page, static_server, site)
    code = transpile_ts(
        'import { Streams } from "@clutchcall/sdk/streams";\n'
        'const videoEl = document.querySelector("video")!;\n'
        + RECIPE_3_STEP_3.replace("pb_def456", PB)
        + "Object.assign(globalThis, { __viewer: viewer });\n"
    )
    run_module(page, code)
    page.wait_for_function("() => document.querySelector('video').currentTime > 1.0")
    first = page.evaluate(FRAME_STATS)
    page.wait_for_function("() => document.querySelector('video').currentTime > 2.5")
    second = page.evaluate(FRAME_STATS)
    assert first["std"] > 20 and second["std"] > 20, "the frames are blank"
    changed = sum(1 for a, b in zip(first["luma"], second["luma"], strict=True) if abs(a - b) > 16)
    assert changed > len(first["luma"]) // 50, "the picture does not move"
    stats = page.evaluate("() => globalThis.__viewer.stats()")
    assert stats["mode"] == "vod" and stats["rendition"] in ("720p", "360p")
    assert stats["decodedFrames"] > 30 and stats["duration"] == pytest.approx(8.0, abs=0.2)
    assert page.evaluate("() => globalThis.__viewer.renditions()") == ["720p", "360p"]
    assert any(u.endswith(f"/vod/{PB}/catalog.json") for u in requests)
    assert "0.m4s" in _segments(requests, "audio")
    assert page.console_errors == []


SEEK = """\
import { Streams } from "@clutchcall/sdk/streams";
const events = { started: 0, ended: 0, errors: [] };
const viewer = new Streams({ apiBase: "" }).viewer({
  bufferAhead: 1,
  onStarted: () => { events.started += 1; },
  onEnded: () => { events.ended += 1; },
  onError: (e) => { events.errors.push(`${e.reason}: ${e.detail}`); },
});
viewer.attach(document.querySelector("video"));
await viewer.play(%(pb)s);
Object.assign(globalThis, { __viewer: viewer, __events: events });
"""


def test_seeking_fetches_the_group_of_the_timeline_and_plays_on_to_the_end(
    page: Any, static_server: Callable[[Path], str], site: Path
) -> None:
    requests = _open(page, static_server, site)
    run_module(page, SEEK % {"pb": repr(PB)})
    page.wait_for_function("() => globalThis.__events.started === 1")
    # Only a little is buffered ahead: the last group (6 s..8 s) was not fetched yet.
    assert "3.m4s" not in _segments(requests, "720p", "360p")
    before = len(requests)
    page.evaluate("() => { document.querySelector('video').currentTime = 6.5; }")
    page.wait_for_function("() => document.querySelector('video').currentTime > 6.8")
    after = _segments(requests[before:], "720p", "360p")
    assert after and after[0] == "3.m4s", after  # the timeline record at or before 6.5 s
    assert "1.m4s" not in after  # what lies between was skipped
    page.wait_for_function("() => globalThis.__events.ended === 1", timeout=20_000)
    assert page.evaluate("() => globalThis.__events.errors") == []
    # Seek back: the start plays again.
    page.evaluate(
        "() => { const v = document.querySelector('video'); v.currentTime = 0.5; v.play(); }"
    )
    page.wait_for_function("() => document.querySelector('video').currentTime > 1.0")
    assert page.evaluate("() => globalThis.__events.errors") == []


def test_a_pinned_rendition_is_what_plays(
    page: Any, static_server: Callable[[Path], str], site: Path
) -> None:
    _open(page, static_server, site)
    run_module(page, SEEK % {"pb": repr(PB)})
    page.wait_for_function("() => globalThis.__events.started === 1")
    page.evaluate("() => globalThis.__viewer.setRendition('360p')")
    page.wait_for_function(
        "() => document.querySelector('video').videoHeight === 360", timeout=20_000
    )
    page.evaluate("() => globalThis.__viewer.setRendition('720p')")
    page.wait_for_function(
        "() => document.querySelector('video').videoHeight === 720", timeout=20_000
    )
    assert page.evaluate("() => globalThis.__viewer.stats().rendition") == "720p"
    bad = page.evaluate(
        "() => { try { globalThis.__viewer.setRendition('4k'); return 'accepted'; }"
        " catch (e) { return e.name; } }"
    )
    assert bad == "RangeError"


ERRORS = """\
import { Streams, PlaybackError } from "@clutchcall/sdk/streams";
const out = {};
for (const id of ["pb_missing", "xx_nope"]) {
  const seen = [];
  const viewer = new Streams({ apiBase: "" }).viewer({ onError: (e) => seen.push(e.reason) });
  viewer.attach(document.querySelector("video"));
  try { await viewer.play(id); out[id] = "played"; }
  catch (e) { out[id] = { reason: e.reason, typed: e instanceof PlaybackError, seen }; }
}
const unattached = new Streams({ apiBase: "" }).viewer();
try { await unattached.play(%(pb)s); out.unattached = "played"; }
catch (e) { out.unattached = e.reason; }
Object.assign(globalThis, { __out: out });
"""


def test_playback_errors_are_typed(
    page: Any, static_server: Callable[[Path], str], site: Path
) -> None:
    _open(page, static_server, site)
    out = run_module(page, ERRORS % {"pb": repr(PB)}, "globalThis.__out")
    assert out["pb_missing"] == {"reason": "not_found", "typed": True, "seen": ["not_found"]}
    assert out["xx_nope"]["reason"] == "not_found" and out["xx_nope"]["typed"]
    assert out["unattached"] == "unsupported"
