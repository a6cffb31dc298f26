"""``GET /v1/relay/certificate`` reads the live nodes from the topology's node index (one
MGET, no keyspace scan) and lists no draining relay (control/relay_cert.py)."""

from __future__ import annotations

import redis.asyncio as aioredis

from mesh.bus import Bus
from mesh.bus_contract import NODES_INDEX_KEY, NodeInfo, NodeRole, node_key
from tests.control.conftest import open_api

HASH_A, HASH_B, HASH_C = "aa" * 32, "bb" * 32, "cc" * 32


async def register(bus: Bus, info: NodeInfo) -> None:
    """What a node's heartbeat writes: its record and its entry in the node index."""
    await bus.set(node_key(info.node_id), info.to_record(), ttl=30)
    await bus.index_touch(NODES_INDEX_KEY, info.node_id, 30)


def pop(node_id: str, port: int, hashes: tuple[str, ...], *, draining: bool = False) -> NodeInfo:
    return NodeInfo(
        node_id,
        NodeRole.POP,
        "eu",
        f"{node_id}.test:{port}",
        certificate_hashes=hashes,
        indexed=True,
        draining=draining,
    )


async def test_relays_come_from_the_node_index_without_a_scan_and_skip_draining_nodes(
    sqlite_url: str, redis_bus: Bus, redis_client: aioredis.Redis
) -> None:
    await register(redis_bus, pop("pop1", 4433, (HASH_A,)))
    await register(redis_bus, pop("pop2", 4434, (HASH_B,), draining=True))
    # A record whose node is not in the index (expired from it, or a node of the
    # version before the indexes) is not read: only the index says who is live.
    await redis_bus.set(node_key("ghost"), pop("ghost", 4435, (HASH_C,)).to_record(), ttl=30)
    async with open_api(sqlite_url, redis_bus) as api:
        await redis_client.config_resetstat()
        res = await api.client.get("/v1/relay/certificate")
        assert res.status_code == 200, res.text
        body = res.json()
        # pop2 drains: not offered as a relay, but its hash is still answered (a browser
        # may reach it before it is out of its load balancer).
        assert [r["node"] for r in body["relays"]] == ["pop1"]
        assert {h["value"] for h in body["certificate_hashes"]} == {HASH_A, HASH_B}
        res = await api.client.get("/v1/relay/certificate?relay=https://pop2.test:4434")
        assert res.status_code == 200, res.text
        assert res.json()["certificate_hashes"] == [{"algorithm": "sha-256", "value": HASH_B}]
        res = await api.client.get("/v1/relay/certificate?relay=https://ghost.test:4435")
        assert res.status_code == 404
        assert res.json()["type"].endswith("unknown-relay")
        stats = await redis_client.info("commandstats")
        assert "cmdstat_scan" not in stats and "cmdstat_keys" not in stats, stats
        assert stats["cmdstat_mget"]["calls"] >= 1
