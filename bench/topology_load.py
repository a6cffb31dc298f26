"""Redis load of the topology heartbeat: commands per heartbeat per node, for N nodes.

``N`` simulated nodes (a :class:`mesh.topology.Topology` each, on its own Redis
connection, all in this process; every tenth one an origin hosting one namespace)
heartbeat against a redis-server this bench starts. Once every node sees all the
others, Redis's counters are reset (``CONFIG RESETSTAT``) and read again after the
window (``INFO commandstats``, commands run by scripts included, ``INFO`` excluded):
the figure is commands per heartbeat per node, with the top commands and the CPU
Redis spent. A scaling defect shows as a figure that grows with ``N``.

    .venv/bin/python -m bench.topology_load --nodes 5,20,50,100 --seconds 10

``tests/mesh/test_topology_load.py`` runs :func:`measure` at 5 and 50 nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench._procs import free_port
from mesh.bus import RedisBus
from mesh.topology import NodeInfo, NodeRole, Topology

__all__ = ["LoadResult", "measure", "redis_server"]


@dataclass
class LoadResult:
    nodes: int
    seconds: float
    heartbeats: int
    commands: int
    redis_cpu: float  # seconds of CPU (user + sys) Redis spent in the window
    min_seen: int  # fewest nodes one node saw at the end (< nodes: the host was overloaded)
    by_command: dict[str, int] = field(default_factory=dict)

    @property
    def per_heartbeat(self) -> float:
        """Redis commands per heartbeat per node."""
        return self.commands / self.heartbeats if self.heartbeats else float("nan")

    @property
    def per_second(self) -> float:
        return self.commands / self.seconds

    def line(self) -> str:
        top = sorted(self.by_command.items(), key=lambda kv: -kv[1])[:6]
        per_beat = ", ".join(f"{name} {n / self.heartbeats:.2f}" for name, n in top)
        return (
            f"{self.nodes:4d} nodes: {self.per_heartbeat:6.2f} commands/heartbeat/node, "
            f"{self.per_second:8.1f} commands/s, Redis CPU {self.redis_cpu / self.seconds:.3f} "
            f"cores, every node saw >= {self.min_seen} ({per_beat})"
        )


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free port; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed")
    port = free_port(socket.SOCK_STREAM)
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _cpu(info: dict[str, float]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(
    redis_url: str,
    nodes: int,
    *,
    seconds: float = 10.0,
    heartbeat_interval: float = 1.0,
    ttl: float = 3.0,
    settle_timeout: float = 60.0,
) -> LoadResult:
    """Run ``nodes`` topologies for ``seconds`` after they all see each other."""
    admin = aioredis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 10
    while True:  # the server may still be starting
        try:
            await admin.ping()
            break
        except (OSError, aioredis.ConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    buses = [RedisBus(redis_url) for _ in range(nodes)]
    topologies = []
    for i, bus in enumerate(buses):
        role = NodeRole.ORIGIN if i % 10 == 0 else NodeRole.POP
        info = NodeInfo(f"n{i:04d}", role, f"r{i % 3}", f"n{i}.bench:4433", f"n{i}.bench:9090")
        topologies.append(Topology(bus, info, heartbeat_interval=heartbeat_interval, ttl=ttl))
    try:
        async with contextlib.AsyncExitStack() as stack:
            for t in topologies:
                await stack.enter_async_context(t)
            for i, t in enumerate(topologies):
                await t.wait_ready()
                if t.node.role is NodeRole.ORIGIN:
                    await t.announce(f"stream/bench/lv_{i}")
            settle = time.monotonic() + settle_timeout
            while any(len(t.nodes()) < nodes for t in topologies):
                if time.monotonic() > settle:
                    break  # reported as min_seen: this host cannot carry them all
                await asyncio.sleep(0.1)
            await admin.config_resetstat()
            beats = [t.statistics().heartbeats for t in topologies]
            cpu, start = _cpu(await admin.info("cpu")), time.monotonic()
            await asyncio.sleep(seconds)
            stats = await admin.info("commandstats")
            cpu, took = _cpu(await admin.info("cpu")) - cpu, time.monotonic() - start
            beats = [t.statistics().heartbeats - b for t, b in zip(topologies, beats, strict=True)]
            min_seen = min(len(t.nodes()) for t in topologies)
    finally:
        for bus in buses:
            await bus.close()
        await admin.aclose()
    by_command = {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }
    return LoadResult(nodes, took, sum(beats), sum(by_command.values()), cpu, min_seen, by_command)


async def _main(args: argparse.Namespace) -> None:
    for n in args.nodes:
        with redis_server() as url:
            result = await measure(
                url, n, seconds=args.seconds, heartbeat_interval=args.heartbeat_interval
            )
        print(result.line(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.topology_load", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--nodes", type=lambda s: [int(x) for x in s.split(",")], default=[5, 20, 50, 100]
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
