"""The POP's operations port: the metric set of issue 3, /healthz, /readyz (drain takes it out)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mesh.bus import MemoryBus
from mesh.metrics import DropReason
from pop import PopNode
from tests.pop.conftest import MakePop
from tests.pop.lab import Origin, Tokens, Viewer, closed_session, namespace_name, namespace_of

NS = namespace_of("lv_a")
ROOT = Path(__file__).resolve().parents[2]


async def http_get(pop: PopNode, path: str) -> tuple[int, str]:
    host, port = pop.http_address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_health_and_readiness(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    origin = Origin(bus, "o1", "eu", certs[0], certs[1], (NS,), group_ms=200)
    async with origin.running():
        pop = await make_pop()
        assert pop.topology is not None
        topology = pop.topology
        assert (await http_get(pop, "/healthz"))[0] == 200
        for _ in range(100):  # ready once the JWKS is loaded and the route known
            if (await http_get(pop, "/readyz"))[0] == 200 and topology.route(
                namespace_name("lv_a")
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the POP never became ready")
        await closed_session(f"moqt://127.0.0.1:{pop.quic_address[1]}", subscribe_token="x.y.z")
        viewer = Viewer(f"moqt://127.0.0.1:{pop.quic_address[1]}", NS)
        task = asyncio.create_task(viewer.watch(subscribe_token=tokens.mint()))
        try:
            await asyncio.wait_for(viewer.got_object.wait(), 10)
            await asyncio.sleep(1.2)  # the node folds relay statistics in every second
            status, body = await http_get(pop, "/metrics")
            assert status == 200
            got = samples(body)
            assert got[("clutchcall_sessions", (("kind", "viewer"),))] == 1
            assert got[("clutchcall_subscriptions", ())] == 1
            assert got[("clutchcall_upstream_subscriptions", ())] == 1
            assert got[("clutchcall_objects_in_total", ())] > 0
            assert got[("clutchcall_objects_out_total", ())] > 0
            assert got[("clutchcall_bytes_out_total", ())] > 0
            assert got[("clutchcall_auth_failures_total", (("reason", "malformed"),))] == 1
            assert ("clutchcall_auth_failures_total", (("reason", "revoked"),)) in got
            assert ("clutchcall_drops_total", (("reason", "queue_full"),)) in got
            assert ("clutchcall_revocations_applied_total", ()) in got
            assert ("clutchcall_cache_hits_total", ()) in got
            assert ("clutchcall_queue_depth", (("queue", "viewer_events"),)) in got
            assert got[("clutchcall_object_latency_seconds_count", ())] > 0
            assert got[("clutchcall_bus_up", ())] == 1
            assert got[("clutchcall_pop_viewers", ())] == 1
            assert got[("clutchcall_pop_relay_upstream_subscribes", ())] == 1
            # Draining: out of the load balancer at once, still healthy.
            drain = asyncio.create_task(pop.drain(grace=0.5))
            await asyncio.sleep(0.1)
            status, body = await http_get(pop, "/readyz")
            assert status == 503 and "serving" in body
            assert (await http_get(pop, "/healthz"))[0] == 200
            await drain
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


_STOPPED_VIEWER = """
import asyncio, sys
from tests.pop.lab import Viewer, namespace_of
asyncio.run(Viewer(sys.argv[1], namespace_of("lv_a")).watch(subscribe_token=sys.argv[2]))
"""


async def test_objects_the_pop_did_not_deliver_are_counted_in_drops_total(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    """A viewer process that stops (SIGSTOP: no more ACKs) makes the POP skip stale groups
    for it; clutchcall_drops_total says so, by reason."""
    origin = Origin(bus, "o1", "eu", certs[0], certs[1], (NS,), group_ms=200, object_size=20_000)
    async with origin.running():
        pop = await make_pop()
        assert pop.topology is not None
        topology = pop.topology
        for _ in range(100):
            if topology.route(namespace_name("lv_a")):
                break
            await asyncio.sleep(0.05)
        viewer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _STOPPED_VIEWER,
            f"moqt://127.0.0.1:{pop.quic_address[1]}", tokens.mint(),
            cwd=ROOT,
        )  # fmt: skip
        try:
            for _ in range(200):
                if pop.relay.statistics()["objects_out"] > 4:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the viewer never got objects")
            viewer.send_signal(signal.SIGSTOP)

            def dropped() -> int:
                stats = pop.relay.statistics()
                return sum(stats[f"drops_{reason}"] for reason in DropReason.ALL)

            for _ in range(200):
                if dropped() > 0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the POP never dropped anything for the stopped viewer")
            await asyncio.sleep(1.2)  # the node folds relay statistics in every second
            expected = dropped()
            got = samples((await http_get(pop, "/metrics"))[1])
            total = sum(
                got[("clutchcall_drops_total", (("reason", reason),))] for reason in DropReason.ALL
            )
            assert 0 < total <= expected
        finally:
            viewer.kill()
            await viewer.wait()
