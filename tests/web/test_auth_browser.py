"""Live playback in Chromium refuses bad playback tokens with ``auth_failed``.

A real ``clutchcall up`` and a live input fed by ``clutchcall publish ... testsrc``;
the SDK bundle plays it through the POP. A tampered token, an expired one (signed
with the control plane's own key two hours ago), a revoked one, and one revoked while
it plays each end in exactly one ``onError`` with ``reason === "auth_failed"`` (a
failure before playback starts also rejects ``play()`` with it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.service import ControlService
from control.settings import ControlSettings
from control.store import open_repository
from mesh.bus import MemoryBus
from tests.web.conftest import SDK_DIST, UpStack, _env, run_module, transpile_ts
from tests.web.test_live_browser import api, signed_url, wait_live, watch_site

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A ``clutchcall up`` (its database path known, for an expired token) with one live
    input published by ``clutchcall publish testsrc``."""
    if not SDK_DIST.exists():
        pytest.fail("the browser SDK is not built: run `make install`", pytrace=False)
    workdir = tmp_path_factory.mktemp("upauth")
    stack = UpStack(workdir)
    try:
        up = stack.wait_running()
        with api(up) as http:
            res = http.post("/v1/live_inputs", json={"name": "Auth", "ingest": "fmp4"})
            res.raise_for_status()
            body = res.json()
        li_id, input_id = body["input"]["id"], body["input"]["external_input_id"]
        publisher = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "publish", "testsrc",
             "--relay", up["publish_url"], "--namespace", body["input"]["namespace"],
             "--key", body["streamKey"], "--cafile", up["cafile"], "--seconds", "240",
             "--gop", "1"],
            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_live(up, li_id)
            yield {**up, "li_id": li_id, "input_id": input_id, "db": f"sqlite:///{workdir / 'up.db'}",
                   "workdir": workdir}  # fmt: skip
        finally:
            publisher.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                publisher.communicate(timeout=10)
            if publisher.poll() is None:
                publisher.kill()
                publisher.communicate()
    finally:
        stack.stop()


PLAY = """\
import { Streams } from "@clutchcall/sdk/streams";
globalThis.seen = [];
globalThis.viewer = new Streams({ apiBase: "", token: %(token)s }).viewer({
  onError: (e) => seen.push(e.reason),
  onStarted: () => seen.push("started"),
});
viewer.attach(document.querySelector("video"));
globalThis.rejected = null;
try {
  await viewer.play(%(id)s);
} catch (e) {
  rejected = e.reason;
}
"""


def open_page(
    page: Any, live: dict[str, Any], static_server: Callable[[Path], str], tmp: Path
) -> None:
    page.goto(static_server(watch_site(live, tmp)) + "/index.html")


def play(page: Any, live: dict[str, Any], token: str) -> dict[str, Any]:
    run_module(page, PLAY % {"token": json.dumps(token), "id": json.dumps(live["input_id"])})
    result: dict[str, Any] = page.evaluate("({rejected, seen})")
    return result


def settle(page: Any) -> dict[str, Any]:
    """The callbacks once nothing more is pending (a second onError would show here)."""
    page.wait_for_timeout(700)
    result: dict[str, Any] = page.evaluate("({rejected, seen})")
    return result


def expired_token(live: dict[str, Any]) -> str:
    """A playback token the control plane signed two hours ago (1 h TTL): expired."""

    async def mint() -> str:
        repo = open_repository(live["db"])
        try:
            settings = ControlSettings(db=live["db"], relay_url=live["relay_url"])
            past = ControlService(repo, MemoryBus(), settings, clock=lambda: time.time() - 7200)
            ticket = await past.mint_playback(live["org_id"], live["li_id"], 3600)
            return str(ticket.token)
        finally:
            repo.close()

    # Playwright's sync API runs an event loop in this thread: mint on another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, mint()).result(timeout=30)


def test_a_valid_token_plays(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    open_page(page, live, static_server, tmp_path)
    result = play(page, live, signed_url(live, live["li_id"])["token"])
    assert result["rejected"] is None
    page.wait_for_function("seen.includes('started')", timeout=20_000)
    stats = page.evaluate("viewer.stats()")
    assert stats["startupMs"] > 0


@pytest.mark.parametrize("kind", ["tampered", "expired", "revoked"])
def test_a_bad_token_is_auth_failed(
    kind: str,
    live: dict[str, Any],
    page: Any,
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    if kind == "expired":
        token = expired_token(live)
    else:
        ticket = signed_url(live, live["li_id"])
        token = ticket["token"]
        if kind == "tampered":
            head, claims, sig = token.split(".")
            token = ".".join((head, claims, ("A" if sig[0] != "A" else "B") + sig[1:]))
        else:
            with api(live) as http:
                http.post(f"/v1/playback_tokens/{ticket['jti']}/revoke").raise_for_status()
    open_page(page, live, static_server, tmp_path)
    play(page, live, token)
    result = settle(page)
    assert result["rejected"] == "auth_failed", result
    assert result["seen"] == ["auth_failed"], result  # onError exactly once, never started


def test_a_token_revoked_while_playing_ends_in_auth_failed(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    open_page(page, live, static_server, tmp_path)
    result = play(page, live, signed_url(live, live["li_id"])["token"])
    assert result["rejected"] is None, result
    page.wait_for_function("seen.includes('started')", timeout=20_000)
    with api(live) as http:
        http.post(f"/v1/live_inputs/{live['li_id']}/revoke_playback").raise_for_status()
    page.wait_for_function("seen.includes('auth_failed')", timeout=15_000)
    result = settle(page)
    assert result["seen"] == ["started", "auth_failed"], result
    assert page.evaluate("viewer.stats().state") in ("stopped", "")


def test_the_relay_certificate_hash_is_published(live: dict[str, Any]) -> None:
    body = httpx.get(live["base_url"] + "/v1/relay/certificate", timeout=10).json()
    assert body["relay_url"] == live["relay_url"]
    assert body["pinnable"] is True
    assert len(body["certificate_hashes"][0]["value"]) == 64


# Recipe 1, step 4 (verbatim but for the relay URL): no token in the code; the viewer's page
# was opened with ?token=<jwt> (how docs/web-sdk.md says a viewer gets its token).
RECIPE_1_STEP_4 = """\
const viewerStreams = new Streams({ apiBase: "", relayUrl: "https://relay.clutchcall.dev" });
const viewer = viewerStreams.viewer({
  onStarted: () => console.log("live"),
  onError:   (e) => console.error("playback error", e),
});
viewer.attach(document.querySelector("video")!);
await viewer.play(input.external_input_id);   // lv_… → live over MoQT
"""


def test_recipe_1_step_4_takes_the_token_from_the_page_url(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    token = signed_url(live, live["li_id"])["token"]
    logged: list[str] = []
    page.on("console", lambda msg: logged.append(f"{msg.type}:{msg.text}"))
    page.goto(static_server(watch_site(live, tmp_path)) + f"/index.html?token={token}")
    code = (
        'import { Streams } from "@clutchcall/sdk/streams";\n'
        f"const input = {{ external_input_id: {json.dumps(live['input_id'])} }};\n"
        + RECIPE_1_STEP_4.replace("https://relay.clutchcall.dev", live["relay_url"])
    )
    run_module(page, transpile_ts(code))
    deadline = time.monotonic() + 20
    while "log:live" not in logged and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert "log:live" in logged, logged
    assert not [m for m in logged if "playback error" in m], logged


def test_an_input_that_is_not_live_is_not_found(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    """A valid token for an input nobody publishes: SUBSCRIBE is refused (DOES_NOT_EXIST) and
    retried for the viewer's start timeout (20 s), then ``not_found``."""
    with api(live) as http:
        res = http.post("/v1/live_inputs", json={"name": "Idle", "ingest": "fmp4"})
        res.raise_for_status()
        idle = res.json()["input"]
    token = signed_url(live, idle["id"])["token"]
    open_page(page, live, static_server, tmp_path)
    started = time.monotonic()
    run_module(
        page, PLAY % {"token": json.dumps(token), "id": json.dumps(idle["external_input_id"])}
    )
    result = settle(page)
    assert result["rejected"] == "not_found", result
    assert result["seen"] == ["not_found"], result
    assert time.monotonic() - started >= 19


def test_an_unreachable_relay_is_network(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    """Nothing listens on the relay's port: ``network`` (once), not a hang."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = signed_url(live, live["li_id"])["token"]
    open_page(page, live, static_server, tmp_path)
    code = PLAY.replace('apiBase: ""', f'apiBase: "", relayUrl: "https://127.0.0.1:{port}"')
    run_module(page, code % {"token": json.dumps(token), "id": json.dumps(live["input_id"])})
    result = settle(page)
    assert result["rejected"] == "network", result
    assert result["seen"] == ["network"], result


def test_the_signed_url_itself_plays(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    """``viewer.play(url)`` with the control plane's signed URL
    (``<relay_url>/stream/<org>/<lv>?token=``): the relay and the token come from the URL."""
    url = signed_url(live, live["li_id"])["url"]
    assert url.startswith(live["relay_url"] + "/stream/") and "?token=" in url
    open_page(page, live, static_server, tmp_path)
    run_module(page, PLAY % {"token": "undefined", "id": json.dumps(url)})
    page.wait_for_function("seen.includes('started')", timeout=20_000)
    result = settle(page)
    assert result["rejected"] is None and result["seen"] == ["started"], result
    assert page.evaluate("viewer.stats().namespace").endswith(live["input_id"])


def test_after_a_pause_the_player_catches_up_with_the_live_edge(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    open_page(page, live, static_server, tmp_path)
    play(page, live, signed_url(live, live["li_id"])["token"])
    page.wait_for_function("seen.includes('started')", timeout=20_000)
    page.evaluate("document.querySelector('video').pause()")
    page.wait_for_timeout(5000)  # the user paused: the player leaves the position alone
    paused = page.evaluate("viewer.stats()")
    assert paused["latency"] > 4, paused
    jumps = paused["jumps"]
    page.evaluate("document.querySelector('video').play()")
    page.wait_for_function("viewer.stats().latency < 2.5", timeout=10_000)
    assert page.evaluate("viewer.stats().jumps") > jumps
