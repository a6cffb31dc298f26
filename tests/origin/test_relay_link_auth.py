"""An origin schedules a session as a relay link only when it proves it is a node."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mesh.node_credential import mint_node_credential
from moqt.aio import SessionOptions, connect

from .conftest import running_origin

KEY = "origin-test-cluster-key-0123456789abcdef"


async def _relay_link(origin_url: str, node: object, options: SessionOptions) -> bool:
    before = set(node._downstream)  # type: ignore[attr-defined]
    async with connect(origin_url + "/relay?hops=pop-x", verify=False, options=options):
        for _ in range(100):
            downs = node._downstream  # type: ignore[attr-defined]
            peers = [d.peer for c, d in downs.items() if c not in before]
            if peers and peers[0].session.setup_complete:
                # The SETUP event is handled by the session's task: give it a second.
                for _ in range(50):
                    if peers[0].relay_link:
                        return True
                    await asyncio.sleep(0.02)
                return False
            await asyncio.sleep(0.02)
    raise AssertionError("no session")


async def test_hops_alone_is_not_a_relay_link(tmp_path: Path, redis_url: str) -> None:
    async with running_origin(tmp_path, redis_url, rtmp="", cluster_key=KEY) as origin:
        assert not await _relay_link(origin.url, origin.node, SessionOptions())
        forged = mint_node_credential("x" * 40, "pop-x").encode()
        assert not await _relay_link(origin.url, origin.node, SessionOptions(auth_token=forged))
        good = mint_node_credential(KEY, "pop-x").encode()
        assert await _relay_link(origin.url, origin.node, SessionOptions(auth_token=good))
