"""The relay's metrics through the shared operations port (mesh.metrics.OpsServer) over real TCP."""

from __future__ import annotations

import asyncio

from mesh.metrics import OpsServer
from mesh.relay import Relay
from mesh.relay._metrics import relay_registry


async def request(port: int, raw: bytes) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


async def test_endpoints() -> None:
    ready = False
    async with OpsServer(
        relay_registry(Relay()), "127.0.0.1", 0, ready={"relay": lambda: ready}
    ) as server:
        port = server.port
        status, body = await request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK" and body == b"ok\n"
        status, _ = await request(port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert status.startswith("HTTP/1.1 503")
        ready = True
        status, _ = await request(port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        status, body = await request(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        text = body.decode()
        assert "clutchcall_relay_sessions 0.0" in text
        assert "clutchcall_relay_objects_in_total 0.0" in text
        assert 'clutchcall_relay_dropped_objects_total{reason="stale_group"} 0.0' in text
        assert "clutchcall_relay_queued_bytes 0.0" in text
        names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
        assert names and all(n.startswith("clutchcall_") for n in names)
        status, _ = await request(port, b"GET /nope HTTP/1.1\r\n\r\n")
        assert status.startswith("HTTP/1.1 404")
        status, _ = await request(port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert status.startswith("HTTP/1.1 405")
        status, _ = await request(port, b"garbage\r\n\r\n")
        assert status.startswith("HTTP/1.1 400")
        status, _ = await request(port, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n")
        assert status.startswith("HTTP/1.1 400")
