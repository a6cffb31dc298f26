"""Topology with real node processes: an origin killed with SIGKILL, the broadcast moving
to another origin, and the POP's re-route time (production timings: 1 s beat, 3 s TTL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.mesh.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
NS = "stream/org_1/lv_fault"


class NodeProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def saw(self, **match: Any) -> dict[str, Any] | None:
        for line in self.lines:
            if all(line.get(k) == v for k, v in match.items()):
                return line
        return None


@contextlib.asynccontextmanager
async def cluster(redis_url: str) -> AsyncIterator[Any]:
    nodes: list[NodeProcess] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with asyncio.TaskGroup() as tg:

        async def start(node_id: str, role: str, region: str) -> NodeProcess:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.mesh.topology_node", redis_url, node_id, role,
                region, NS, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            node = NodeProcess(proc)
            nodes.append(node)
            tg.create_task(node.read())
            return node

        try:
            yield start
        finally:
            for node in nodes:
                if node.proc.returncode is None:
                    node.proc.send_signal(signal.SIGINT)
            for node in nodes:
                try:
                    async with asyncio.timeout(5):
                        await node.proc.wait()
                except TimeoutError:
                    node.proc.kill()
                    await node.proc.wait()


async def test_origin_sigkill_and_reroute_to_the_new_origin(redis_url: str) -> None:
    async with cluster(redis_url) as start:
        pop = await start("pop-1", "pop", "eu")
        await wait_until(lambda: pop.saw(event="ready") is not None, within=10)
        origin_a = await start("origin-a", "origin", "eu")
        await wait_until(
            lambda: pop.saw(event="route_set", upstream="origin-a") is not None, within=10
        )
        origin_a.proc.send_signal(signal.SIGKILL)
        await origin_a.proc.wait()
        # Without a goodbye, the POP notices through the TTL (3 s) plus one scan (1 s).
        killed_at = asyncio.get_running_loop().time()
        await wait_until(lambda: pop.saw(event="node_down", node="origin-a") is not None, within=6)
        noticed = asyncio.get_running_loop().time() - killed_at
        assert noticed <= 3 + 1 + 1.0  # TTL + one scan, with slack for a busy CI
        # The publisher reconnects to another origin, which announces the namespace.
        origin_b = await start("origin-b", "origin", "eu")
        await wait_until(lambda: origin_b.saw(event="announced") is not None, within=10)
        await wait_until(
            lambda: pop.saw(event="route_set", upstream="origin-b") is not None, within=3
        )
        announced = origin_b.saw(event="announcing")
        rerouted = pop.saw(event="route_set", upstream="origin-b")
        assert announced is not None and rerouted is not None
        reroute = rerouted["t"] - announced["t"]
        print(
            f"origin killed: noticed in {noticed:.2f} s; re-routed {reroute * 1000:.0f} ms after the new announce"
        )
        assert reroute < 3.0
