"""An in-process origin node on loopback ports, its redis bus, and a test-pattern source."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mesh.bus import Bus, connect_bus
from moqt.aio import write_self_signed
from origin.node import OriginNode
from origin.settings import OriginNodeSettings

from .helpers import write_key

ORG = "org_t"


def new_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


@dataclass
class Origin:
    node: OriginNode
    bus: Bus

    @property
    def url(self) -> str:
        host, port = self.node.quic_address
        return f"moqt://{host}:{port}"

    @property
    def rtmp_port(self) -> int:
        address = self.node.rtmp_address
        assert address is not None
        return address[1]

    async def new_input(self, input_id: str | None = None) -> tuple[str, str]:
        input_id = input_id or "lv_" + secrets.token_hex(6)
        key = new_key()
        await write_key(self.bus, input_id, key, ORG)
        return input_id, key


@contextlib.asynccontextmanager
async def running_origin(tmp_path: Path, redis_url: str, **overrides: Any) -> AsyncIterator[Origin]:
    cert, key = write_self_signed(tmp_path)
    values: dict[str, Any] = {
        "node_id": "origin-test",
        "region": "r1",
        "quic": "127.0.0.1:0",
        "http": "127.0.0.1:0",
        "rtmp": "127.0.0.1:0",
        "redis": redis_url,
        "ladder": ("360p:360:600000", "240p:240:300000"),
        "preset": "ultrafast",
    }
    values.update(overrides)
    settings = OriginNodeSettings(**values)
    bus = connect_bus(redis_url)
    node = OriginNode(settings, certificate=cert, private_key=key)
    await node.start()
    try:
        yield Origin(node, bus)
    finally:
        await node.stop()
        await bus.close()


@pytest.fixture
async def origin(tmp_path: Path, redis_url: str) -> AsyncIterator[Origin]:
    async with running_origin(tmp_path, redis_url) as o:
        yield o
