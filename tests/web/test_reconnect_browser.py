"""The browser publisher and live viewer survive a relay restart and a GOAWAY (issue 12).

A real cluster on loopback: ``clutchcall up --redis`` (control plane, origin, its own POP)
plus ``clutchcall pop`` processes joining it through a private ``redis-server`` (same
cluster key, same certificate, JWKS from the bus). The SDK's publisher (Chromium's fake
webcam) and viewer run in real Chromium pages.

- POP restarted: the publisher and the viewer both go through POP A; POP A is SIGKILLed
  (a crash: no GOAWAY) and started again on the same port. Both reconnect with backoff;
  the viewer's ``totalVideoFrames`` rises again (the publisher's new session reaches it
  through the new POP), the states went ``reconnecting`` -> ``playing`` / ``live``.
- GOAWAY: publisher and viewer on POP B (``fallbackUrls``: the stack's own POP); POP B is
  drained (SIGTERM: GOAWAY to every session). Both move to the other POP while the old
  session still delivers (make before break); playback goes on.

Tests wait on page state (``wait_for_function``), never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RedisServer
from tests.web.conftest import ROOT, SDK_DIST, open_sdk_page, run_module, transpile_ts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CLUSTER_KEY = "web-reconnect-cluster-key-0123456789abcdef"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUTCHCALL_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", CLUTCHCALL_CLUSTER_KEY=CLUSTER_KEY,
               CLUTCHCALL_HEARTBEAT_INTERVAL="0.5", CLUTCHCALL_NODE_TTL="1.5")  # fmt: skip
    return env


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pop:
    """A ``clutchcall pop`` process on a fixed UDP port (so it can come back on it)."""

    name: str
    port: int
    cluster: Cluster
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        c = self.cluster
        log = (c.workdir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.pop", "--quic", f"127.0.0.1:{self.port}",
             "--http", "127.0.0.1:0", "--redis", c.redis.url, "--node-id", self.name,
             "--jwks", "bus", "--cert", str(c.cert), "--key", str(c.key),
             "--linger", "2", "--drain-timeout", "5", "--log-level", "info"],
            cwd=ROOT, env=_env(), stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = (c.workdir / f"{self.name}.log").read_text(errors="replace")
            if text.count('"pop_ready"') > self.starts:
                self.starts += 1
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{text[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready")

    starts: int = 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def drain(self) -> None:
        """SIGTERM: the POP sends GOAWAY to every session, then closes what is left."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)


@dataclass
class Cluster:
    workdir: Path
    redis: RedisServer
    info: dict[str, Any]
    cert: Path
    key: Path
    pops: list[Pop]

    def pop(self, name: str) -> Pop:
        p = Pop(name, _free_udp_port(), self)
        self.pops.append(p)
        p.start()
        return p


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not SDK_DIST.exists():
        pytest.fail("the browser SDK is not built (web/dist/streams.js): run `make install`")
    work = tmp_path_factory.mktemp("reconnect")
    redis = RedisServer(work)
    redis.start()
    info_file = work / "up.json"
    up_log = (work / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--http", "127.0.0.1:0", "--origin", "127.0.0.1:0",
         "--pop", "127.0.0.1:0", "--rtmp", "", "--db", f"sqlite:///{work / 'up.db'}",
         "--state-dir", str(work / "state"), "--redis", redis.url, "--org-id", "org_abc",
         "--info-file", str(info_file)],
        cwd=work, env=_env(), stdout=up_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    cluster = None
    try:
        deadline = time.monotonic() + 60
        while not info_file.exists() or "running;" not in (work / "up.log").read_text():
            if up.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"clutchcall up did not start:\n{(work / 'up.log').read_text()}"
                )
            time.sleep(0.05)
        info = json.loads(info_file.read_text())
        cert = Path(info["cafile"])
        cluster = Cluster(work, redis, info, cert, cert.with_name("key.pem"), [])
        yield cluster
    finally:
        for p in cluster.pops if cluster else []:
            p.kill()
        with contextlib.suppress(Exception):
            up.send_signal(signal.SIGINT)
            up.wait(20)
        if up.poll() is None:
            up.kill()
            up.wait()
        up_log.close()
        redis.stop()


CREATE = """\
import { Streams } from "@clutchcall/sdk/streams";
const streams = new Streams({ baseUrl: %(base)s, apiKey: %(key)s, orgId: "org_abc" });
const { input, streamKey } = await streams.liveInputs.create({ name: "Reconnect", ingest: "fmp4" });
const { token } = await input.signedPlaybackUrl({ ttlSeconds: 600 });
globalThis.__out = { id: input.external_input_id, streamKey, token };
"""

PUBLISH = """\
import { Streams } from "@clutchcall/sdk/streams";
globalThis.__pubStates = [];
globalThis.__pubAttempts = [];
const pub = new Streams({ relayUrl: %(relay)s }).publisher({
  timesliceMs: 500,
  fallbackUrls: %(fallbacks)s,
  reconnect: { windowMs: 30000, attempts: 30, maxDelayMs: 1000 },
  onStateChange: (s) => globalThis.__pubStates.push(s),
  onReconnecting: (info) => globalThis.__pubAttempts.push(info),
  onError: (e) => { globalThis.__pubError = `${e.reason}: ${e.message}`; },
});
const cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
await pub.publish(%(id)s, %(streamKey)s, cam, `stream/org_abc/${%(id)s}`);
globalThis.pub = pub;
"""

WATCH = """\
import { Streams } from "@clutchcall/sdk/streams";
globalThis.__states = [];
globalThis.__attempts = [];
const viewer = new Streams({ relayUrl: %(relay)s, token: %(token)s }).viewer({
  fallbackUrls: %(fallbacks)s,
  reconnect: { windowMs: 30000, attempts: 30, maxDelayMs: 1000 },
  onStateChange: (s) => globalThis.__states.push(s),
  onReconnecting: (info) => globalThis.__attempts.push(info),
  onError: (e) => { globalThis.__error = `${e.reason}: ${e.message}`; },
});
viewer.attach(document.querySelector("video"));
await viewer.play(%(id)s);
globalThis.viewer = viewer;
"""

FRAMES = "document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames"


def _start(
    browser: Any, page: Any, cluster: Cluster, static_server: Callable[[Path], str], tmp: Path,
    relay: str, fallbacks: list[str], publish_to: str | None = None,
) -> tuple[Any, Any]:  # fmt: skip
    """The publisher on ``page`` (to ``publish_to``, default ``relay``) and a viewer page
    (another context) on ``relay``."""
    base = cluster.info["base_url"]
    sdk = f"{base}/sdk/streams.js"
    (tmp / "pub").mkdir()
    open_sdk_page(page, static_server, tmp / "pub", sdk)
    out = run_module(page, transpile_ts(CREATE % {"base": json.dumps(base),
                                                  "key": json.dumps(cluster.info["api_key"])}),
                     "globalThis.__out")  # fmt: skip
    args = {"relay": json.dumps(relay), "fallbacks": json.dumps(fallbacks),
            "id": json.dumps(out["id"]), "streamKey": json.dumps(out["streamKey"]),
            "token": json.dumps(out["token"])}  # fmt: skip
    run_module(page, transpile_ts(PUBLISH % {**args, "relay": json.dumps(publish_to or relay)}))
    context = browser.new_context(ignore_https_errors=True)
    watch = context.new_page()
    watch.set_default_timeout(30_000)
    (tmp / "watch").mkdir()
    open_sdk_page(watch, static_server, tmp / "watch", sdk)
    run_module(watch, transpile_ts(WATCH % args))
    watch.wait_for_function(f"{FRAMES} > 20", timeout=30_000)
    return watch, context


def _diagnose(page: Any, watch: Any) -> str:
    return json.dumps({
        "viewer": watch.evaluate("({stats: viewer.stats(), states: __states, attempts: __attempts, error: globalThis.__error})"),
        "publisher": page.evaluate("({stats: pub.stats(), states: __pubStates, attempts: __pubAttempts, error: globalThis.__pubError})"),
    })  # fmt: skip


def test_publisher_and_viewer_resume_after_their_pop_restarts(
    browser: Any, page: Any, cluster: Cluster, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    pop = cluster.pop("pop-a")
    watch, context = _start(browser, page, cluster, static_server, tmp_path, pop.url, [])
    try:
        pop.kill()  # a crash: no GOAWAY, both sessions are simply lost
        watch.wait_for_function("__states.includes('reconnecting')", timeout=20_000)
        page.wait_for_function("__pubStates.includes('reconnecting')", timeout=20_000)
        frames = watch.evaluate(FRAMES)
        pop.start()  # the same port, the same certificate
        try:
            # The publisher's new session reaches the origin (it takes the input over from
            # its lost one) and the viewer's new session gets its media again.
            page.wait_for_function(
                "pub.stats().state === 'live' && pub.stats().sessions >= 2", timeout=30_000
            )
            watch.wait_for_function(
                f"viewer.stats().state === 'playing' && viewer.stats().reconnects >= 1 && {FRAMES} > {frames + 30}",
                timeout=30_000,
            )
        except Exception as exc:
            raise AssertionError(_diagnose(page, watch)) from exc
        stats = watch.evaluate("viewer.stats()")
        assert watch.evaluate("globalThis.__error") is None, _diagnose(page, watch)
        assert page.evaluate("globalThis.__pubError") is None, _diagnose(page, watch)
        assert "playing" in watch.evaluate("__states")[1:], _diagnose(page, watch)
        assert stats["sessions"] >= 2, stats
        # Backoff: every attempt says where and after how long; none waited past the cap.
        attempts = watch.evaluate("__attempts")
        assert attempts and all(
            a["url"].startswith(pop.url) and a["delayMs"] <= 1000 for a in attempts
        ), attempts
        page.evaluate("pub.stop()")
        watch.wait_for_function("__states.includes('ended')", timeout=20_000)
        assert watch.evaluate("globalThis.__error") is None  # a normal end is not an error
    finally:
        context.close()
        pop.kill()


def test_a_draining_pops_goaway_moves_publisher_and_viewer(
    browser: Any, page: Any, cluster: Cluster, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    pop = cluster.pop("pop-b")
    other = cluster.info["relay_url"]  # the stack's own POP
    watch, context = _start(browser, page, cluster, static_server, tmp_path, pop.url, [other])
    try:
        jumps = watch.evaluate("viewer.stats().jumps")
        pop.drain()
        try:
            watch.wait_for_function("__attempts.length >= 1", timeout=20_000)
            page.wait_for_function(
                "__pubAttempts.length >= 1 && pub.stats().state === 'live'", timeout=30_000
            )
            frames = watch.evaluate(FRAMES)
            watch.wait_for_function(
                f"viewer.stats().state === 'playing' && viewer.stats().reconnects >= 1 && {FRAMES} > {frames + 30}",
                timeout=30_000,
            )
        except Exception as exc:
            raise AssertionError(_diagnose(page, watch)) from exc
        attempts = watch.evaluate("__attempts")
        assert attempts[0]["cause"] == "goaway" and attempts[0]["delayMs"] == 0, attempts
        assert attempts[-1]["url"].startswith(other), attempts
        assert page.evaluate("__pubAttempts")[0]["cause"] == "goaway", _diagnose(page, watch)
        assert watch.evaluate("globalThis.__error") is None, _diagnose(page, watch)
        print("goaway move:", _diagnose(page, watch), "jumps before", jumps)
        page.evaluate("pub.stop()")
    finally:
        context.close()
        pop.kill()
