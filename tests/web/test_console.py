"""The web console (``/console/``) in Chromium against ``clutchcall up``: sign in, live
inputs, upload with progress then watch (two screenshots of the watch page differ: the
video moves), and the serving rules of control/web.py."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from control.problems import install_problem_handlers
from control.settings import ControlSettings
from control.web import install_web
from tests.vod._clips import make_clip

pytestmark = [pytest.mark.timeout(180)]

# Decode two PNG screenshots in the page and compare them: spread of the luma of each
# (a blank or black frame has none) and the share of pixels that changed between them.
COMPARE = """async ([a, b]) => {
  const load = async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext("2d");
    g.drawImage(bmp, 0, 0);
    return g.getImageData(0, 0, bmp.width, bmp.height).data;
  };
  const [p, q] = [await load(a), await load(b)];
  const luma = (d, i) => 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
  let changed = 0, s = 0, ss = 0, n = p.length / 4;
  for (let i = 0; i < p.length; i += 4) {
    const y = luma(p, i);
    s += y; ss += y * y;
    if (Math.abs(y - luma(q, i)) > 24) changed += 1;
  }
  const mean = s / n;
  return { std: Math.sqrt(ss / n - mean * mean), changedShare: changed / n };
}"""


def _console(page: Any, up_stack: dict[str, Any], hash_: str = "") -> None:
    page.goto(f"{up_stack['base_url']}/console/{hash_}")


def _sign_in(page: Any, up_stack: dict[str, Any]) -> None:
    _console(page, up_stack)
    page.wait_for_selector("#signin button")
    assert page.input_value("#signin input[name=org]") == "org_abc"  # pre-filled: local demo
    assert page.input_value("#signin input[name=key]") == up_stack["api_key"]
    page.click("#signin button")
    page.wait_for_selector("#create-input")


@pytest.mark.e2e
def test_sign_in_list_and_create_live_inputs(page: Any, up_stack: dict[str, Any]) -> None:
    _console(page, up_stack)
    page.wait_for_selector("#signin button")
    page.fill("#signin input[name=key]", "ck_wrong")
    page.click("#signin button")
    page.wait_for_selector("#signin ~ p.error")
    assert "API key" in page.inner_text("#signin ~ p.error")
    _sign_in(page, up_stack)
    page.fill("#create-input input[name=name]", "Console Demo")
    page.select_option("#create-input select[name=ingest]", "rtmp")
    page.click("#create-input button")
    key = page.wait_for_selector("#stream-key").inner_text()
    row = page.wait_for_selector("#inputs tr[data-id]:has-text('Console Demo')")
    input_id = row.get_attribute("data-id")
    headers = {"Authorization": f"Bearer {up_stack['api_key']}"}
    got = httpx.get(f"{up_stack['base_url']}/v1/live_inputs/{input_id}", headers=headers).json()
    assert got["name"] == "Console Demo" and got["ingest"] == "rtmp"
    assert key.startswith("sk_") and got["external_input_id"] in row.inner_text()
    page.click(f"#inputs tr[data-id='{input_id}'] a:has-text('Go live')")
    page.wait_for_selector("#go-live")
    assert got["rtmp_url"] in page.inner_text("main")
    errors = [e for e in page.console_errors if "401" not in e]  # the wrong key's answer
    assert errors == []


@pytest.mark.e2e
def test_upload_with_progress_then_the_watch_page_shows_moving_video(
    page: Any, up_stack: dict[str, Any], tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "Session-Recording.mp4", seconds=6, width=640, height=360)
    _sign_in(page, up_stack)
    page.click("#nav a:has-text('Uploads')")
    page.wait_for_selector("#upload")
    page.set_input_files("#file", str(clip))
    page.click("#upload button")
    link = page.wait_for_selector("#play-upload", timeout=90_000)
    assert page.eval_on_selector("#upload-progress", "e => e.value") == 100
    assert page.wait_for_selector("#assets tr:has-text('Session-Recording.mp4') .badge.ready")
    link.click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#watch-video'); return v && v.currentTime > 1; }"
    )
    video = page.locator("#watch-video")
    first = video.screenshot()
    page.wait_for_function("() => document.querySelector('#watch-video').currentTime > 2.5")
    second = video.screenshot()
    shot = page.screenshot()
    (tmp_path / "watch.png").write_bytes(shot)
    cmp = page.evaluate(
        COMPARE, [base64.b64encode(first).decode(), base64.b64encode(second).decode()]
    )
    assert cmp["std"] > 20, "the watch page's video is blank"
    assert cmp["changedShare"] > 0.01, "the video does not move"
    assert page.inner_text("#watch-status") == "Playing."
    page.wait_for_function("() => document.querySelectorAll('#rendition option').length > 1")
    options = page.eval_on_selector_all("#rendition option", "os => os.map(o => o.value)")
    assert options == ["auto", "360p"]
    page.wait_for_selector("#stats [data-stat=mode]")
    assert "vod" in page.inner_text("#stats [data-stat=mode]")
    assert page.console_errors == []


@pytest.mark.e2e
def test_go_live_from_the_webcam_and_watch_with_latency_in_another_tab(
    page: Any, up_stack: dict[str, Any]
) -> None:
    _sign_in(page, up_stack)
    page.fill("#create-input input[name=name]", "Webcam")
    page.click("#create-input button")
    li = page.wait_for_selector("#inputs tr[data-id]:has-text('Webcam')").get_attribute("data-id")
    page.click(f"#inputs tr[data-id='{li}'] a:has-text('Go live')")
    page.click("#go-live")  # the fake camera of the harness
    page.wait_for_function(
        "() => document.querySelector('#publish-status').textContent === 'Live.'"
    )
    with page.context.expect_page() as opened:
        page.click("a:has-text('watch in a new tab')")
    watch = opened.value
    watch.wait_for_function(
        "() => { const v = document.querySelector('#watch-video'); return v && v.currentTime > 1; }",
        timeout=40_000,
    )
    first = watch.locator("#watch-video").screenshot()
    watch.wait_for_function("() => document.querySelector('#watch-video').currentTime > 2.5")
    second = watch.locator("#watch-video").screenshot()
    cmp = watch.evaluate(
        COMPARE, [base64.b64encode(first).decode(), base64.b64encode(second).decode()]
    )
    assert cmp["std"] > 10 and cmp["changedShare"] > 0.002, cmp
    assert watch.inner_text("#watch-status") == "Playing."
    watch.wait_for_selector("#stats [data-stat=latency]")
    latency = float(watch.inner_text("#stats [data-stat=latency] span:last-child"))
    assert 0 <= latency < 5
    page.click("button:has-text('Stop')")
    assert page.inner_text("#publish-status") == "Stopped."
    assert page.console_errors == []


def _app(tmp_path: Path, **settings: Any) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    install_web(app, ControlSettings(**settings), web_dir=tmp_path / "web")
    return TestClient(app)


def test_without_a_build_sdk_and_console_answer_503_problem(tmp_path: Path) -> None:
    client = _app(tmp_path)
    for path in ("/sdk/streams.js", "/console/"):
        r = client.get(path)
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"].startswith("SDK not built: run make install")


def test_the_demo_login_is_only_for_loopback_callers(tmp_path: Path) -> None:
    # TestClient's peer is "testclient", not a loopback address.
    assert _app(tmp_path, console_demo="org_abc:ck_x").get("/console/demo.json").status_code == 404
    assert _app(tmp_path).get("/console/demo.json").status_code == 404


def test_cors_allows_configured_origins_and_exposes_upload_headers(tmp_path: Path) -> None:
    client = _app(tmp_path, cors_origins=("http://localhost:*", "https://app.example"))
    pre = {
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "upload-offset",
    }
    for origin in ("http://localhost:5173", "http://localhost", "https://app.example"):
        r = client.options("/v1/uploads/up_x", headers={"Origin": origin, **pre})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
    for origin in ("http://localhost.evil:5173", "https://evil.example", "http://127.0.0.1:80"):
        assert (
            client.options("/v1/uploads/up_x", headers={"Origin": origin, **pre}).status_code == 400
        )
    r = client.get("/sdk/config.json", headers={"Origin": "http://localhost:5173"})
    exposed = r.headers["access-control-expose-headers"].lower()
    for header in ("upload-offset", "upload-length", "location", "tus-resumable", "upload-complete",
                   "upload-limit", "upload-expires"):  # fmt: skip
        assert header in exposed
