"""Redis commands per heartbeat per node do not grow with the number of nodes (issue 15).

50 simulated nodes (1 s beats) against a real redis-server, counted with INFO commandstats
(:mod:`bench.topology_load`). Before the node and route indexes, every beat scanned
the keyspace and read every node record: 7.9 commands per beat per node at 5 nodes,
50.3 at 50 (bench/RESULTS.md).
"""

from __future__ import annotations

from bench.topology_load import measure


async def test_commands_per_heartbeat_do_not_grow_with_the_cluster(redis_url: str) -> None:
    small = await measure(redis_url, 5, seconds=4)
    large = await measure(redis_url, 50, seconds=4)
    print(f"\n{small.line()}\n{large.line()}")
    # (a node or two out of sight at the end: a loaded host delayed some beats)
    assert small.min_seen == 5 and large.min_seen >= 45, "the host could not carry the nodes"
    assert small.heartbeats >= 10 and large.heartbeats >= 100
    # Constant per beat (the full re-read every 30 beats and a late node's re-announcement
    # on a loaded host are all that varies); the old scan gave 50 at 50 nodes.
    assert large.per_heartbeat <= small.per_heartbeat * 1.25 + 1
    assert large.per_heartbeat < 16
    assert "scan" not in large.by_command and "keys" not in large.by_command
