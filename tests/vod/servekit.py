"""A real control plane under uvicorn in the test's event loop, and a proxy that cuts.

Independent clients (node, tuspy) talk HTTP to it; :class:`CutProxy` forwards their
connections and, once, closes one after a number of request bytes, so the first
upload request is cut in the middle of its body as a dropped network would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from control.app import create_app
from control.server import bind
from control.service import ControlService
from control.settings import ControlSettings
from mesh.bus import MemoryBus
from tests.vod.uploadkit import RecordingQueue

JS_DIR = Path(__file__).resolve().parent / "js"


@dataclass
class Served:
    base_url: str
    service: ControlService
    api_key: str
    queue: RecordingQueue
    client: httpx.AsyncClient

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def new_upload(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "clip.mp4")
        r = await self.client.post(
            f"{self.base_url}/v1/assets/uploads", json=body, headers=self.auth()
        )
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    async def asset(self, asset_id: str) -> dict[str, Any]:
        r = await self.client.get(f"{self.base_url}/v1/assets/{asset_id}", headers=self.auth())
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def wait_ready(self, asset_id: str, within: float = 120.0) -> dict[str, Any]:
        """Poll the asset (the API has no push to wait on) until packaging made it ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (got := await self.asset(asset_id))["status"] != "ready":
            assert got["status"] != "errored" and loop.time() < deadline, got
            await asyncio.sleep(0.1)
        return got


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def served(tmp_path: Path, *, record: bool = True, **settings: Any) -> AsyncIterator[Served]:
    """``record``: a RecordingQueue replaces the packaging queue (no ffmpeg)."""
    settings.setdefault("data_dir", str(tmp_path / "data"))
    settings.setdefault("upload_idle_seconds", 0.5)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(
        ControlSettings(db=f"sqlite:///{tmp_path / 'control.db'}", **settings), bus=MemoryBus()
    )
    service: ControlService = app.state.service
    _org, _key, secret = await service.create_org("acme")
    queue = RecordingQueue()
    if record:
        service.packaging = queue
    server = _Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(timeout=30) as client:
            yield Served(f"http://127.0.0.1:{port}", service, secret, queue, client)
    finally:
        server.should_exit = True
        await task
        sock.close()


class CutProxy:
    """TCP proxy to ``upstream``; the connection carrying request byte ``cut_after``
    (counted over all connections) is closed there (both ways), once."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cuts = 0
        self.sent = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> CutProxy:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def url(self, upstream_url: str) -> str:
        return upstream_url.replace(f":{self.upstream_port}/", f":{self.port}/", 1)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.cuts == 0 and self.sent + len(data) > self.cut_after:
                    part = data[: self.cut_after - self.sent]
                    up_writer.write(part)
                    await up_writer.drain()
                    self.cuts += 1
                    raise ConnectionAbortedError("cut")
                self.sent += len(data)
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.transport.abort()


async def run_node(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "node", *args, cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()
