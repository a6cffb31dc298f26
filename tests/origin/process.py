"""``clutchcall origin`` as a real process for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["OriginProcess", "origin_process"]


@dataclass
class OriginProcess:
    proc: asyncio.subprocess.Process
    quic: str = ""
    http: str = ""
    rtmp: str = ""
    lines: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"moqt://{self.quic}"

    @property
    def rtmp_port(self) -> int:
        return int(self.rtmp.rsplit(":", 1)[1])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(f"http://{self.http}{path}")


async def _read(origin: OriginProcess, ready: asyncio.Event) -> None:
    assert origin.proc.stderr is not None
    while line := await origin.proc.stderr.readline():
        text = line.decode(errors="replace").strip()
        origin.raw.append(text)
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        origin.lines.append(record)
        if record.get("event") == "origin_ready":
            origin.quic, origin.http = record["quic"], record["http"]
            origin.rtmp = record.get("rtmp") or ""
            ready.set()
    ready.set()


@contextlib.asynccontextmanager
async def origin_process(
    *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[OriginProcess]:
    """Start ``python -m cli.origin ARGS``; yields once it logged ``origin_ready``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.origin", *args,
        cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    origin = OriginProcess(proc)
    ready = asyncio.Event()
    reader = asyncio.create_task(_read(origin, ready))
    try:
        async with asyncio.timeout(30):
            await ready.wait()
        if not origin.quic:
            raise RuntimeError("origin did not start:\n" + "\n".join(origin.raw[-20:]))
        yield origin
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
