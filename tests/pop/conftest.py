"""Fixtures of the POP tests: tokens + JWKS file, certificates, in-process POPs on a shared bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mesh.bus import Bus, MemoryBus
from mesh.settings import PopSettings
from moqt.aio import write_self_signed
from pop import PopNode
from tests.pop.lab import Tokens


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path)


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path]:
    return write_self_signed(tmp_path)


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


MakePop = Callable[..., Awaitable[PopNode]]

# The cluster key the test POPs share (their relay links authenticate with it).
CLUSTER_KEY = "test-cluster-key-0123456789abcdef0123456789"


@pytest.fixture
async def make_pop(tokens: Tokens, certs: tuple[Path, Path], bus: Bus) -> AsyncIterator[MakePop]:
    """Start in-process POPs (``await make_pop(node_id="p1", region="eu", linger=...)``)."""
    nodes: list[PopNode] = []

    async def make(
        *, node_bus: Bus | None = None, node_kwargs: dict[str, Any] | None = None, **fields: Any
    ) -> PopNode:
        values: dict[str, Any] = {
            "node_id": f"pop{len(nodes) + 1}",
            "region": "eu",
            "quic": "127.0.0.1:0",
            "http": "127.0.0.1:0",
            "jwks": str(tokens.jwks_path),
            "heartbeat_interval": 0.5,
            "node_ttl": 1.5,
            "drain_timeout": 2.0,
            "linger": 1.0,
            "cluster_key": CLUSTER_KEY,
        }
        values.update(fields)
        settings = PopSettings(**values)
        node = PopNode(
            settings,
            certificate=certs[0],
            private_key=certs[1],
            bus=node_bus or bus,
            **(node_kwargs or {}),
        )
        await node.start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.stop()
