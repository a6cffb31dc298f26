"""The seed's Recipe 4 (headless capture in Python) against the real stack, as processes.

Redis, the control plane (``clutchcall control``), an origin (``clutchcall origin``)
and a POP (``clutchcall pop``) run as separate processes on free ports. The org
``org_abc`` and input ``li_xyz`` the recipe names are provisioned with
``clutchcall admin``; the SDK rotates the input's stream key and publishes a live
ffmpeg test source to the origin. Then the recipe's text, verbatim except
``base_url``, runs as a subprocess for ~10 s and is stopped with SIGINT (its
``KeyboardInterrupt`` branch): the file it wrote must play, with the duration that
was broadcast meanwhile. The viewer is then re-run with an expired token, a
revoked token, and a token revoked mid-session: each ends with ``auth_failed``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clutchcall.streams import AsyncBroadcastViewer, AsyncPublisher, AsyncStreams
from control.service import ControlService
from control.settings import ControlSettings
from control.store import open_repository
from media import split_fmp4
from media.fmp4 import Fragment
from mesh.bus import MemoryBus
from moqt.aio import write_self_signed
from tests.clutchcall.dataplane import decode
from tests.control.server import ControlServer, clutchcall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
SEED = Path("/work/shared/seed/000_b05b653bb5fd3d15.txt")
RUN_SECONDS = 10.0
GOP = 2.0


def recipe_4() -> str:
    """The Python code block of the seed's Recipe 4, exactly as printed."""
    text = SEED.read_text()
    section = text[text.index("## Recipe 4") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "Recipe 4 has no python block"
    return match.group(1)


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    ready: dict[str, object]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUTCHCALL_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


def _start(tmp: Path, name: str, args: list[str], ready_event: str) -> Node:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=_env(), stdout=out, stderr=out
        )
    node = Node(name, process, log, {})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == ready_event:
                node.ready = record
                return node
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    node.stop()
    raise RuntimeError(f"{name} not ready: {log.read_text()[-3000:]}")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    control: ControlServer
    origin: Node
    pop: Node
    db_url: str
    cafile: Path

    @property
    def publish_url(self) -> str:
        return f"moqt://{self.origin.ready['quic']}"


@pytest.fixture
def stack(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    cert, key = write_self_signed(tmp_path, ["localhost", "127.0.0.1"])
    tls = ["--cert", str(cert), "--key", str(key)]
    db_url = f"sqlite:///{tmp_path / 'control.db'}"
    nodes: list[Node] = []
    control: ControlServer | None = None
    pop_port = _free_udp_port()
    try:
        # The control plane first, as deployed: it publishes the JWKS the POP loads.
        control = ControlServer(db_url, "--relay-url", f"https://127.0.0.1:{pop_port}",
                                redis_url=redis_url)  # fmt: skip
        pop = _start(tmp_path, "pop", ["cli.pop", "--quic", f"127.0.0.1:{pop_port}", "--http",
                     "127.0.0.1:0", "--redis", redis_url, "--node-id", "pop-1", "--region", "eu",
                     "--jwks", "bus", *tls], "pop_ready")  # fmt: skip
        nodes.append(pop)
        origin = _start(tmp_path, "origin", ["cli.origin", "--quic", "127.0.0.1:0", "--http",
                        "127.0.0.1:0", "--rtmp", "", "--redis", redis_url, "--node-id",
                        "origin-1", "--region", "eu", *tls], "origin_ready")  # fmt: skip
        nodes.append(origin)
        yield Stack(control, origin, pop, db_url, cert)
    finally:
        for node in reversed(nodes):
            node.stop()
        if control is not None:
            control.close()


def _provision(stack: Stack, redis_url: str) -> str:
    """org_abc (and its API key) and li_xyz, the ids the recipe names."""
    org = json.loads(
        clutchcall("admin", "create-org", "Acme", "--org-id", "org_abc", "--json",
                   "--db", stack.db_url).stdout
    )  # fmt: skip
    clutchcall("admin", "create-live-input", "org_abc", "Live Demo", "--id", "li_xyz",
               "--redis", redis_url, "--json", "--db", stack.db_url)  # fmt: skip
    return str(org["api_key"])


def _media_seconds(path: Path) -> float:
    """Seconds of video the file holds, from its fragments' own durations."""
    items = split_fmp4(path.read_bytes())
    video = [i for i in items if isinstance(i, Fragment) and i.track_id == 1]
    return sum(f.duration_seconds for f in video)


def test_recipe_4_runs_as_printed_and_the_capture_plays(
    stack: Stack, redis_url: str, tmp_path: Path
) -> None:
    api_key = _provision(stack, redis_url)
    code = recipe_4()
    assert 'base_url="https://app.clutchcall.dev"' in code
    code = code.replace("https://app.clutchcall.dev", stack.control.base_url)

    async def publish_and_check() -> None:
        async with AsyncStreams(base_url=stack.control.base_url, api_key=api_key,
                                org_id="org_abc") as streams:  # fmt: skip
            inp = await streams.live_inputs.get(id="li_xyz")
            _, stream_key = await inp.rotate_stream_key()  # the SDK mints the key we publish with
            pub = AsyncPublisher(stack.publish_url, timeslice_ms=500, cafile=str(stack.cafile))
            await pub.publish(inp.external_input_id, stream_key, "testsrc", inp.namespace)
            try:
                await _run_recipe(code, api_key, stack, tmp_path)
                await _auth_failures(streams, inp, stack)
            finally:
                await pub.stop()

    asyncio.run(publish_and_check())


async def _run_recipe(code: str, api_key: str, stack: Stack, tmp_path: Path) -> None:
    workdir = tmp_path / "recipe"
    workdir.mkdir()
    (workdir / "recipe4.py").write_text(code)
    env = _env(CLUTCHCALL_CREDENTIALS=api_key, CLUTCHCALL_CAFILE=str(stack.cafile))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "recipe4.py", cwd=workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(RUN_SECONDS)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    stdout = out.decode()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "capture closed: closed" in stdout, (stdout, err.decode()[-3000:])
    capture = workdir / "broadcast.mp4"
    decoded = decode(capture)
    assert decoded.errors == ""
    seconds = _media_seconds(capture)
    # Everything the file holds decodes (30 fps), and it holds what was live during the
    # run: the capture starts at a group boundary, at most one GOP (+ startup) late.
    assert decoded.frames == round(seconds * 30)
    assert decoded.seconds == pytest.approx(seconds, abs=0.1)
    assert RUN_SECONDS - 2 * GOP - 1.5 <= seconds <= RUN_SECONDS + 0.5, seconds


async def _auth_failures(streams: AsyncStreams, inp: object, stack: Stack) -> None:
    cafile = str(stack.cafile)

    async def watch(url: str, seconds: float = 15.0) -> tuple[str, str]:
        viewer = await AsyncBroadcastViewer.open(url, cafile=cafile)
        return await asyncio.wait_for(viewer.wait_closed(), seconds)

    # An expired token: signed with the control plane's own key, two hours ago.
    repo = open_repository(stack.db_url)
    try:
        past = ControlService(repo, MemoryBus(), ControlSettings(
            db=stack.db_url, relay_url=f"https://{stack.pop.ready['quic']}"),
            clock=lambda: time.time() - 7200)  # fmt: skip
        expired = await past.mint_playback("org_abc", "li_xyz", 3600)
    finally:
        repo.close()
    assert (await watch(expired.url))[0] == "auth_failed"

    # A revoked token (by jti).
    ticket = await inp.signed_playback_url(ttl_seconds=600)  # type: ignore[attr-defined]
    await streams.playback_tokens.revoke(jti=ticket.jti)
    assert (await watch(ticket.url))[0] == "auth_failed"

    # A token revoked while it plays: every token of the input, mid-session.
    fresh = await inp.signed_playback_url(ttl_seconds=600)  # type: ignore[attr-defined]
    playing = asyncio.Event()
    viewer = await AsyncBroadcastViewer.open(
        fresh.url, cafile=cafile, on_chunk=lambda _i, _c: playing.set()
    )
    await asyncio.wait_for(playing.wait(), 15)  # the fresh token plays...
    await inp.revoke_playback()  # type: ignore[attr-defined]
    reason, _ = await asyncio.wait_for(viewer.wait_closed(), 10)
    assert reason == "auth_failed"  # ...until it is revoked
