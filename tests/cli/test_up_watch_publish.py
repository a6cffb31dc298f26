"""``clutchcall up`` as a process, fed by ``clutchcall publish`` and read by ``clutchcall watch``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from clutchcall.streams import Streams
from tests.clutchcall.dataplane import decode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUTCHCALL_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


def _cli(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"cli.{module}", *args]


@contextlib.contextmanager
def running_up(tmp_path: Path, *extra: str) -> Iterator[dict[str, str]]:
    info_file = tmp_path / "up.json"
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        _cli("up", "--http", "127.0.0.1:0", "--origin", "127.0.0.1:0", "--pop", "127.0.0.1:0",
             "--rtmp", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'up.db'}",
             "--info-file", str(info_file), *extra),
        cwd=tmp_path, env=_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not info_file.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(0.1)
        info = json.loads(info_file.read_text())
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(20) == 0, (tmp_path / "up.log").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()


def publish_and_watch(
    up: dict[str, str], namespace: str, key: str, url: str, out: Path
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[bytes]]:
    """``clutchcall publish testsrc`` to ``namespace`` while ``clutchcall watch url`` records
    9 s into ``out``; the publisher is stopped with SIGINT once the viewer is done."""
    env = _env(CLUTCHCALL_STREAM_KEY=key, CLUTCHCALL_CAFILE=up["cafile"])
    argv = _cli("publish", "--relay", up["publish_url"], "--namespace", namespace,
                "--timeslice-ms", "500", "testsrc")  # fmt: skip
    publisher = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        watched = subprocess.run(
            _cli("watch", url, "--out", str(out), "--seconds", "9"),
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        publisher.send_signal(signal.SIGINT)
        pub_out, _ = publisher.communicate(timeout=30)
    return watched, subprocess.CompletedProcess(argv, publisher.returncode, pub_out)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[dict[str, str]]:
    with running_up(tmp_path) as info:
        yield info


def test_up_with_redis_registers_its_nodes_there(tmp_path: Path, redis_url: str) -> None:
    with running_up(tmp_path, "--redis", redis_url) as info:
        bus = redis.Redis.from_url(redis_url)
        try:
            nodes = sorted(
                k.decode() if isinstance(k, bytes) else str(k)
                for k in bus.keys("clutchcall:node:*")
            )
            assert nodes == ["clutchcall:node:origin-up", "clutchcall:node:pop-up"]
            assert bus.get("clutchcall:jwks") is not None  # the POP's keys, via Redis
            with Streams(base_url=info["base_url"], api_key=info["api_key"],
                         org_id=info["org_id"]) as streams:  # fmt: skip
                created, _ = streams.live_inputs.create(name="redis", ingest="rtmp")
            assert bus.get(f"clutchcall:streamkey:{created.external_input_id}") is not None
        finally:
            bus.close()


def test_up_serves_the_whole_path(up: dict[str, str], tmp_path: Path) -> None:
    assert set(up) >= {"base_url", "org_id", "api_key", "rtmp_url", "relay_url"}
    assert up["rtmp_url"].startswith("rtmp://127.0.0.1:") and up["rtmp_url"].endswith("/live")
    assert httpx.get(f"{up['base_url']}/healthz", timeout=5).status_code == 200
    with Streams(base_url=up["base_url"], api_key=up["api_key"], org_id=up["org_id"]) as streams:
        inp, key = streams.live_inputs.create(name="cli test", ingest="fmp4")
        assert inp.rtmp_url.startswith(up["rtmp_url"].replace("/live", ""))
        ticket = inp.signed_playback_url(ttl_seconds=600)
    assert ticket.url.startswith(up["relay_url"] + "/" + inp.namespace)
    out = tmp_path / "watched.mp4"
    watched, published = publish_and_watch(up, inp.namespace, key, ticket.url, out)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert f"watching {inp.namespace}" in watched.stdout
    assert "init segment (video)" in watched.stdout
    assert "closed: closed" in watched.stdout
    assert published.returncode == 0, published.stdout
    assert b"done: stopped" in published.stdout
    decoded = decode(out)
    assert decoded.errors == "" and decoded.frames >= 60  # at least one 2 s group


def test_watch_and_publish_report_refusals(up: dict[str, str], tmp_path: Path) -> None:
    env = _env(CLUTCHCALL_CAFILE=up["cafile"])
    # A stream key the control plane never issued: the origin refuses it.
    refused = subprocess.run(
        _cli("publish", "--relay", up["publish_url"], "--namespace",
             f"stream/{up['org_id']}/lv_nope", "--key", "sk_wrong", "testsrc"),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refused" in refused.stderr
    # A playback URL with a forged token: the POP refuses it.
    forged = f"{up['relay_url']}/stream/{up['org_id']}/lv_nope?token=not.a.jwt"
    watched = subprocess.run(
        _cli("watch", forged, "--seconds", "10"), env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert watched.returncode == 3, watched.stdout + watched.stderr
    assert "closed: auth_failed" in watched.stdout
    bad = subprocess.run(_cli("watch", "http://x/y"), env=env, capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert bad.returncode == 2 and "https://" in bad.stderr
