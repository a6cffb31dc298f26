"""Live playback in Chromium from a POP on picoquic (``quic_stack = "picoquic"``, as
deploy/base/clutchcall.toml runs production) with a signed playback URL.

picoquic's HTTP/3 (h3zero) decodes each Huffman-coded header value into a 256-byte buffer
and refuses a longer one; Chromium Huffman-codes the WebTransport CONNECT ``:path``. A relay
URL carrying ``?token=<ES256 JWT>`` (the control plane's signed URL, 500+ bytes) therefore
never reached a picoquic POP. The SDK sends the token as CLIENT_SETUP's AUTHORIZATION TOKEN
and leaves it out of the URL it hands to WebTransport (web/src/moqt/session.ts).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import SDK_DIST, UpStack, _env, run_module
from tests.web.test_live_browser import api, signed_url, wait_live, watch_site

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``clutchcall up --quic-stack picoquic`` (origin and POP on picoquic) with one live
    input published by ``clutchcall publish testsrc``."""
    if not SDK_DIST.exists():
        pytest.fail("the browser SDK is not built: run `make install`", pytrace=False)
    stack = UpStack(tmp_path_factory.mktemp("uppico"), "org_abc", "--quic-stack", "picoquic")
    try:
        up = stack.wait_running()
        with api(up) as http:
            res = http.post("/v1/live_inputs", json={"name": "Pico", "ingest": "fmp4"})
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
            yield {**up, "li_id": li_id, "input_id": input_id, "stack": stack}
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
globalThis.viewer = new Streams({ apiBase: "", relayUrl: %(relay)s, token: %(token)s }).viewer({
  onError: (e) => seen.push(`${e.reason}: ${e.message}`),
  onStarted: () => seen.push("started"),
});
viewer.attach(document.querySelector("video"));
globalThis.rejected = null;
try {
  await viewer.play(%(id)s);
} catch (e) {
  rejected = `${e.reason}: ${e.message}`;
}
"""


def long_signed_url(live: dict[str, Any]) -> dict[str, Any]:
    """The control plane's signed playback URL, whose path + query is over h3zero's 256 bytes."""
    ticket = signed_url(live, live["li_id"])
    url = urllib.parse.urlsplit(ticket["url"])
    assert url.scheme == "https" and url.path.startswith("/stream/"), ticket["url"]
    assert len(f"{url.path}?{url.query}") > 256, ticket["url"]
    assert len(ticket["token"]) > 256
    return ticket


def plays(page: Any, live: dict[str, Any]) -> None:
    """Started, no error, and frames presented: the playhead moves 2 s on."""
    try:
        page.wait_for_function("seen.length > 0", timeout=30_000)
    except Exception as exc:
        raise AssertionError(
            f"{page.evaluate('({rejected, seen})')}\n{live['stack'].log()}"
        ) from exc
    result = page.evaluate("({rejected, seen})")
    assert result == {"rejected": None, "seen": ["started"]}, result
    at = page.evaluate("document.querySelector('video').currentTime")
    page.wait_for_function(
        f"document.querySelector('video').currentTime > {at + 2}", timeout=20_000
    )
    frames = page.evaluate(
        "document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames"
    )
    assert frames > 30, frames
    assert page.evaluate("viewer.stats().namespace").endswith(live["input_id"])


@pytest.mark.parametrize("token_too", [False, True], ids=["url-only", "url-and-option"])
def test_a_signed_relay_url_plays_from_a_picoquic_pop(
    token_too: bool,
    live: dict[str, Any],
    page: Any,
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    """The relay URL is the signed URL itself (``…/stream/<org>/<lv>?token=<jwt>``): its
    token is the only credential (``url-only``: it moves into CLIENT_SETUP) or also given
    as the ``token`` option (``url-and-option``)."""
    ticket = long_signed_url(live)
    page.goto(static_server(watch_site(live, tmp_path)) + "/index.html")
    token = json.dumps(ticket["token"]) if token_too else "undefined"
    run_module(page, PLAY % {"relay": json.dumps(ticket["url"]), "token": token,
                             "id": json.dumps(live["input_id"])})  # fmt: skip
    plays(page, live)


def test_a_page_url_with_a_fragment_token_plays_from_a_picoquic_pop(
    live: dict[str, Any], page: Any, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    """The relay URL carries the token as ``#token=`` (a fragment, which WebTransport
    refuses): it goes into CLIENT_SETUP, the fragment is left out."""
    ticket = long_signed_url(live)
    url = urllib.parse.urlsplit(ticket["url"])
    relay = f"{url.scheme}://{url.netloc}{url.path}#token={ticket['token']}"
    page.goto(static_server(watch_site(live, tmp_path)) + "/index.html")
    run_module(page, PLAY % {"relay": json.dumps(relay), "token": "undefined",
                             "id": json.dumps(live["input_id"])})  # fmt: skip
    plays(page, live)
