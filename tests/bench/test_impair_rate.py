"""bench.impair's bottleneck: datagrams leave at the rate, the excess over the queue is dropped."""

from __future__ import annotations

import asyncio

from bench.impair import Impairment, ImpairmentProxy


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.arrivals: list[float] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrivals.append(asyncio.get_running_loop().time())


async def test_a_rate_limited_path_serializes_and_tail_drops() -> None:
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    upstream = echo.get_extra_info("sockname")[:2]
    down = Impairment(rate=800_000, queue=20_000)  # 1000-byte datagrams: 10 ms each, 20 queued
    try:
        async with ImpairmentProxy(("127.0.0.1", 0), upstream, up=Impairment(), down=down) as proxy:
            client = _Client()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: client, remote_addr=proxy.address
            )
            try:
                sent_at = loop.time()
                for i in range(100):
                    transport.sendto(i.to_bytes(2, "big") * 500)
                deadline = loop.time() + 5
                while loop.time() < deadline:
                    await asyncio.sleep(0.05)
                    if client.arrivals and loop.time() - client.arrivals[-1] > 0.3:
                        break
            finally:
                transport.close()
            delivered = len(client.arrivals)
            assert 15 <= delivered <= 30, delivered  # the queue's worth (plus one on the wire)
            assert proxy.stats["down"].forwarded == delivered
            assert proxy.stats["down"].dropped >= 50  # tail drops (not loss of the socket)
            # Serialized at 800 kbit/s: the last one leaves ~10 ms per datagram after the first.
            assert client.arrivals[-1] - sent_at >= (delivered - 1) * 0.01 * 0.9
    finally:
        echo.close()
