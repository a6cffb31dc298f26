"""The console's watch page shows the live viewer's reconnecting state (issue 12).

The reconnect cluster of tests/web/test_reconnect_browser.py (``clutchcall up --redis`` plus
a ``clutchcall pop`` on a fixed port). The SDK publisher (fake webcam) publishes to the POP;
the console's watch page (``/console/#/watch/lv_…?token=``) plays through the same POP
(its ``/sdk/config.json`` answered with that POP's URL). The POP is SIGKILLed: the status
line says "Reconnecting… (attempt n: …)" (``data-state="reconnecting"``); the POP comes
back on its port: "Playing." again, the stats show one reconnect. Waits on page state only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import open_sdk_page, run_module, transpile_ts
from tests.web.test_reconnect_browser import CREATE, PUBLISH, Cluster, cluster  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

STATUS = "document.querySelector('#watch-status')"


def test_the_watch_page_shows_reconnecting_then_playing(
    browser: Any,
    page: Any,
    cluster: Cluster,  # noqa: F811
    static_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    pop = cluster.pop("pop-console")
    base = cluster.info["base_url"]
    open_sdk_page(page, static_server, tmp_path, f"{base}/sdk/streams.js")
    out = run_module(
        page,
        transpile_ts(
            CREATE % {"base": json.dumps(base), "key": json.dumps(cluster.info["api_key"])}
        ),
        "globalThis.__out",
    )
    run_module(page, transpile_ts(PUBLISH % {
        "relay": json.dumps(pop.url), "fallbacks": "[]", "id": json.dumps(out["id"]),
        "streamKey": json.dumps(out["streamKey"]),
    }))  # fmt: skip
    config = httpx.get(f"{base}/sdk/config.json", timeout=10).json()
    context = browser.new_context(ignore_https_errors=True)
    try:
        console = context.new_page()
        errors: list[str] = []
        console.on("pageerror", lambda exc: errors.append(str(exc)))
        console.route(
            "**/sdk/config.json",
            lambda route: route.fulfill(json={**config, "relay_url": pop.url}),
        )
        console.goto(f"{base}/console/#/watch/{out['id']}?token={out['token']}")
        console.wait_for_function(f"{STATUS}.textContent === 'Playing.'", timeout=40_000)
        pop.kill()
        console.wait_for_function(f"{STATUS}.dataset.state === 'reconnecting'", timeout=20_000)
        text = console.inner_text("#watch-status")
        assert text.startswith("Reconnecting…"), text
        assert console.eval_on_selector("#watch-status", "e => e.className") == "reconnecting"
        pop.start()  # the same port and certificate
        console.wait_for_function(
            f"{STATUS}.textContent === 'Playing.' && {STATUS}.dataset.state === 'playing'",
            timeout=40_000,
        )
        # The stats panel is redrawn every 500 ms, and the viewer counts a reconnect once
        # its rejoin returned, which may be after the state is back to playing.
        console.wait_for_function(
            "Number(document.querySelector("
            "'#stats [data-stat=reconnects] span:last-child')?.textContent) >= 1",
            timeout=10_000,
        )
        assert errors == []
        page.evaluate("pub.stop()")
    finally:
        context.close()
        pop.kill()
