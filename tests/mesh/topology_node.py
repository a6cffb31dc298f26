"""A node process for the topology fault test: a Topology that reports what it sees.

``python -m tests.mesh.topology_node REDIS_URL NODE_ID ROLE REGION [NAMESPACE]``:
an origin announces NAMESPACE; every node prints one JSON line per topology
event ``{"event", "node", "namespace", "t"}`` and, for route events, what it
now resolves the namespace to (``"upstream"``: node id or null).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mesh.bus import RedisBus
from mesh.logging import configure_logging
from mesh.topology import NodeInfo, NodeRole, NoRoute, Topology, TopologyEvent


def report(**fields: object) -> None:
    sys.stdout.write(json.dumps({**fields, "t": time.time()}) + "\n")
    sys.stdout.flush()


async def main(url: str, node_id: str, role: str, region: str, namespace: str) -> None:
    configure_logging(node=node_id, role=role, level="warning", stream=sys.stderr)
    bus = RedisBus(url, retry_interval=0.1, timeout=0.5)
    info = NodeInfo(node_id, NodeRole(role), region, quic=f"{node_id}.test:4433")
    topology = Topology(bus, info)

    def on_event(event: TopologyEvent) -> None:
        try:
            upstream: str | None = topology.resolve(namespace).node_id
        except NoRoute:
            upstream = None
        report(event=event.event, node=event.node_id, namespace=event.namespace, upstream=upstream)

    topology.add_listener(on_event)
    async with topology:
        await topology.wait_ready()
        if info.role is NodeRole.ORIGIN:
            report(event="announcing", node=node_id, namespace=namespace, upstream=node_id)
            await topology.announce(namespace)
            report(event="announced", node=node_id, namespace=namespace, upstream=node_id)
        else:
            report(event="ready", node=node_id, namespace="", upstream=None)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        url, node_id, role, region = sys.argv[1:5]
        asyncio.run(main(url, node_id, role, region, sys.argv[5] if len(sys.argv) > 5 else ""))
    except KeyboardInterrupt:
        pass
