"""The control plane SIGKILLed in the middle of requests, real processes.

Redis, ``clutchcall control`` (SQLite), ``clutchcall origin`` (RTMP; stream keys from the
control plane through Redis), ``clutchcall pop`` (JWKS from the bus), an ffmpeg encoder
publishing with the key the SDK got, and an SDK viewer with a signed URL. While 16 API
calls are in flight the control plane is SIGKILLed: every call fails at once with the
SDK's typed ``ConnectionFailed`` (no hang, nothing half-made: each input that was
answered exists, none is listed twice), the viewer does not notice (the control plane is
not on the media path), and a restarted control plane serves the same database:
new signed URLs play. The ``FAULT`` line is the figure of docs/faults.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clutchcall.streams import AsyncStreams, ConnectionFailed
from tests.conftest import RedisServer
from tests.control.server import free_port
from tests.e2e.pop_procs import ROOT, Proc, _env, processes, start_pop

from ._stack import Watch, encoder, report, start_rtmp_origin

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

_CLI = [sys.executable, "-m", "cli.main"]


def _start_control(tmp: Path, port: int, db: str, redis: str, relay: str) -> Proc:
    log = tmp / "control.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*_CLI, "control", "--http", f"127.0.0.1:{port}", "--db", db, "--redis", redis,
             "--relay-url", relay],
            cwd=ROOT, env=_env(None), stdout=out, stderr=out,
        )  # fmt: skip
    proc = Proc("control", process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"control exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("control plane not healthy in 30 s")


async def test_control_plane_sigkill_mid_request(tmp_path: Path, redis_server: RedisServer) -> None:
    db = f"sqlite:///{tmp_path / 'control.db'}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with processes() as procs:
        pop = start_pop(tmp_path, "pop1", redis=redis_server.url, jwks=tmp_path / "unused",
                        extra=["--jwks", "bus"])  # fmt: skip
        procs.append(pop)
        relay = f"moqt://{pop.quic}"
        control = _start_control(tmp_path, port, db, redis_server.url, relay)
        procs.append(control)
        created = await asyncio.to_thread(
            subprocess.run,
            [*_CLI, "admin", "create-org", "Faults", "--org-id", "org_faults", "--json",
             "--db", db],
            cwd=ROOT, env=_env(None), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        api_key = json.loads(created.stdout)["api_key"]
        origin = start_rtmp_origin(tmp_path, "o1", redis=redis_server.url)
        procs.append(origin)
        async with AsyncStreams(base_url=base_url, api_key=api_key, org_id="org_faults") as api:
            inp, stream_key = await api.live_inputs.create(name="faults", ingest="rtmp")
            with encoder(origin, inp.external_input_id, stream_key):
                ticket = await inp.signed_playback_url(ttl_seconds=600)
                watch = await Watch.open(ticket.url)
                try:
                    await watch.wait_video(4, within=40)
                    calls = [
                        asyncio.create_task(api.live_inputs.create(name=f"burst-{i}"))
                        for i in range(16)
                    ]
                    await asyncio.sleep(0.05)  # on their way (some answered, some not)
                    killed = time.monotonic()
                    control.kill()
                    results = await asyncio.wait_for(
                        asyncio.gather(*calls, return_exceptions=True), 30
                    )
                    failed_within = time.monotonic() - killed
                    answered = [r.input.id for r in results if not isinstance(r, BaseException)]
                    errors = [r for r in results if isinstance(r, BaseException)]
                    assert all(isinstance(e, ConnectionFailed) for e in errors), errors
                    # The viewer plays on while the control plane is down.
                    await watch.wait_video(4, within=20)
                    restarted = time.monotonic()
                    # In a thread: the viewer's event loop must keep running meanwhile.
                    control = await asyncio.to_thread(
                        _start_control, tmp_path, port, db, redis_server.url, relay
                    )
                    procs.append(control)
                    back_in = time.monotonic() - restarted
                    listed = [i.id async for i in api.live_inputs.iter_all()]
                    gap = watch.gap(killed)
                    again = await inp.signed_playback_url(ttl_seconds=600)
                    late = await Watch.open(again.url)
                    try:
                        await late.wait_video(1, within=30)
                    finally:
                        await late.close()
                    report("control plane SIGKILL mid-request", calls_failed=len(errors),
                           calls_answered=len(answered), failed_within_s=failed_within,
                           viewer_gap_s=gap, restart_s=back_in,
                           committed_unanswered=len(listed) - 1 - len(answered),
                           sessions=watch.sessions)  # fmt: skip
                    assert errors, "no call was in flight when the control plane died"
                    assert failed_within < 10.0
                    assert set(answered) <= set(listed) and len(listed) == len(set(listed))
                    assert not watch.viewer.closed and watch.sessions == 1
                    assert gap < 3.0
                finally:
                    await watch.close()
