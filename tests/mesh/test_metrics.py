"""Node metrics, the ops HTTP port over a real socket, and JSON logging."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from mesh.auth import AuthFailure
from mesh.bus import MemoryBus
from mesh.logging import bind_context, configure_logging
from mesh.metrics import DropReason, NodeMetrics, OpsServer
from mesh.topology import NodeInfo, NodeRole, Topology


def sample(metrics: NodeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def test_metric_set_names_and_zeroed_labels() -> None:
    m = NodeMetrics(node="pop-1", role="pop", region="eu")
    m.sessions.labels("viewer").inc(3)
    m.objects_out.inc(10)
    m.bytes_out.inc(1000)
    m.drops.labels(DropReason.STALE_GROUP).inc()
    m.auth_failures.labels(AuthFailure.EXPIRED.value).inc(2)
    m.revocations_applied.inc()
    m.queue_depth.labels("viewer_send").set(4)
    m.object_latency.observe(0.004)
    text = m.render().decode()
    for name in (
        "clutchcall_sessions",
        "clutchcall_subscriptions",
        "clutchcall_upstream_subscriptions",
        "clutchcall_objects_in_total",
        "clutchcall_objects_out_total",
        "clutchcall_bytes_in_total",
        "clutchcall_bytes_out_total",
        "clutchcall_drops_total",
        "clutchcall_cache_hits_total",
        "clutchcall_cache_misses_total",
        "clutchcall_auth_failures_total",
        "clutchcall_revocations_applied_total",
        "clutchcall_queue_depth",
        "clutchcall_object_latency_seconds_bucket",
    ):
        assert f"\n{name}" in text, name
    assert sample(m, "clutchcall_node_info", node="pop-1", role="pop", region="eu") == 1
    assert sample(m, "clutchcall_sessions", kind="viewer") == 3
    assert sample(m, "clutchcall_drops_total", reason="stale_group") == 1
    assert sample(m, "clutchcall_drops_total", reason="queue_full") == 0  # exists before use
    assert sample(m, "clutchcall_auth_failures_total", reason="expired") == 2
    assert sample(m, "clutchcall_auth_failures_total", reason="revoked") == 0
    assert sample(m, "clutchcall_object_latency_seconds_bucket", le="0.005") == 1
    assert sample(m, "clutchcall_object_latency_seconds_bucket", le="0.0025") == 0
    # A second node in the same process has its own registry.
    other = NodeMetrics(node="pop-2", role="pop")
    assert sample(other, "clutchcall_objects_out_total") == 0


async def test_statistics_are_exported_as_gauges() -> None:
    m = NodeMetrics(node="o1", role="origin")
    async with Topology(MemoryBus(), NodeInfo("o1", NodeRole.ORIGIN, "eu", "h:1")) as topology:
        await topology.wait_ready()
        await topology.announce("stream/org_1/lv_a")
        m.watch_statistics("topology", topology.statistics)
        assert sample(m, "clutchcall_topology_hosted") == 1
        assert sample(m, "clutchcall_topology_bus_up") == 1
    m.watch_statistics("custom", lambda: {"queued": 7, "name": "skipped"})
    assert sample(m, "clutchcall_custom_queued") == 7
    assert sample(m, "clutchcall_custom_name") is None


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    response = await reader.read()
    writer.close()
    return response


async def test_ops_server_endpoints() -> None:
    m = NodeMetrics(node="pop-1", role="pop")
    m.objects_in.inc(5)
    state = {"bus": False}

    async def bus_ready() -> bool:
        return state["bus"]

    def broken() -> bool:
        raise RuntimeError("check bug")

    async with OpsServer(m, "127.0.0.1", 0, ready={"bus": bus_ready}, read_timeout=0.3) as ops:
        base = f"http://127.0.0.1:{ops.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.get("/metrics")
            assert r.status_code == 200 and "text/plain" in r.headers["content-type"]
            assert "clutchcall_objects_in_total 5.0" in r.text
            assert (await client.get("/healthz")).text == "ok\n"
            r = await client.get("/readyz")
            assert (r.status_code, r.text) == (503, "not ready: bus\n")
            state["bus"] = True
            r = await client.get("/readyz?verbose=1")
            assert (r.status_code, r.text) == (200, "ready\n")
            ops.add_check("broken", broken)
            r = await client.get("/readyz")
            assert (r.status_code, r.text) == (503, "not ready: broken\n")
            r = await client.head("/metrics")
            assert r.status_code == 200 and r.content == b""
            assert (await client.post("/metrics")).status_code == 405
            assert (await client.get("/nope")).status_code == 404
        assert (await raw_request(ops.port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
        big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n"
        assert (await raw_request(ops.port, big)).startswith(b"HTTP/1.1 400")
        # A client that never finishes its request is answered 400 after the read timeout.
        started = asyncio.get_running_loop().time()
        assert (await raw_request(ops.port, b"GET /healthz HTTP/1.1\r\n")).startswith(
            b"HTTP/1.1 400"
        )
        assert asyncio.get_running_loop().time() - started < 2
    with pytest.raises(RuntimeError):
        _ = ops.port


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_logs_have_stable_keys(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging(node="pop-1", role="pop", region="eu", level="info", stream=out)
    log = structlog.get_logger("mesh.test")
    with bind_context(session="s1", track="video/high"):
        log.info("viewer_joined", viewers=3)
    log.debug("hidden")
    logging.getLogger("aioquic.test").warning("from stdlib %s", "too")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["viewer_joined", "from stdlib too", "failed"]
    first = lines[0]
    assert {
        k: first[k]
        for k in ("event", "level", "node", "role", "region", "session", "track", "viewers")
    } == {
        "event": "viewer_joined",
        "level": "info",
        "node": "pop-1",
        "role": "pop",
        "region": "eu",
        "session": "s1",
        "track": "video/high",
        "viewers": 3,
    }
    assert first["ts"].endswith("Z") and first["logger"] == "mesh.test"
    assert "session" not in lines[1] and lines[1]["node"] == "pop-1"
    assert "ValueError: boom" in lines[2]["exception"]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(node="n", role="pop", level="loud")
