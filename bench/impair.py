"""A userspace UDP impairment proxy: delay, jitter and loss on one path.

This kernel has ``tc tbf``/``htb`` (rate limits) but no ``netem``, so delay,
jitter and loss between "regions" come from this proxy. It listens on one
address and relays every client's datagrams to a fixed upstream (one upstream
socket per client, so the upstream sees distinct 5-tuples), in both
directions, each datagram held for ``delay ± jitter`` and dropped with
probability ``loss``. Per direction, datagrams keep their order unless
``reorder`` is set (real paths mostly keep order; QUIC copes either way).

Run it alone: ``python -m bench.impair --listen 0.0.0.0:4443 --upstream 10.0.0.1:4443 --delay-ms 40``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
from dataclasses import dataclass, field

__all__ = ["Impairment", "ImpairmentProxy", "PathStats"]

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Impairment:
    """One direction's impairment. Times in seconds."""

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    reorder: bool = False
    # A bottleneck (like tc tbf): bit/s, 0 = none; datagrams are serialized at this rate
    # and tail-dropped once more than ``queue`` bytes wait for it.
    rate: float = 0.0
    queue: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter must be >= 0")
        if self.rate < 0 or self.queue <= 0:
            raise ValueError("rate must be >= 0 and queue > 0")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss must be in [0, 1)")


@dataclass(slots=True)
class PathStats:
    forwarded: int = 0
    dropped: int = 0
    bytes: int = 0


@dataclass(slots=True)
class _Direction:
    impairment: Impairment
    rng: random.Random
    stats: PathStats = field(default_factory=PathStats)
    last_due: float = 0.0
    link_free: float = 0.0  # when the bottleneck has sent what it holds

    def schedule(self, loop: asyncio.AbstractEventLoop, send: object, data: bytes) -> None:
        if self.impairment.loss and self.rng.random() < self.impairment.loss:
            self.stats.dropped += 1
            return
        imp = self.impairment
        now = loop.time()
        if imp.rate:
            start = max(now, self.link_free)
            if (start - now) * imp.rate / 8 > imp.queue:
                self.stats.dropped += 1  # tail drop: the bottleneck's queue is full
                return
            self.link_free = start + len(data) * 8 / imp.rate
            now = self.link_free
        hold = imp.delay + (self.rng.uniform(-imp.jitter, imp.jitter) if imp.jitter else 0.0)
        due = now + max(0.0, hold)
        if not imp.reorder:
            due = max(due, self.last_due)
            self.last_due = due
        self.stats.forwarded += 1
        self.stats.bytes += len(data)
        loop.call_at(due, send, data)  # type: ignore[arg-type]


class _Upstream(asyncio.DatagramProtocol):
    """The proxy's socket towards the upstream for one client."""

    def __init__(self, proxy: ImpairmentProxy, client: Address):
        self.proxy = proxy
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last_seen = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.last_seen = asyncio.get_running_loop().time()
        if self.proxy.blackhole:
            self.proxy._down.stats.dropped += 1
            return
        self.proxy._down.schedule(asyncio.get_running_loop(), self._to_client, data)

    def _to_client(self, data: bytes) -> None:
        if self.proxy._listener is not None:
            self.proxy._listener.sendto(data, self.client)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc.: keep going
        pass


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, proxy: ImpairmentProxy):
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.proxy._from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class ImpairmentProxy:
    """``async with ImpairmentProxy(listen, upstream, up=..., down=...) as proxy: proxy.address``."""

    def __init__(
        self,
        listen: Address,
        upstream: Address,
        *,
        up: Impairment | None = None,
        down: Impairment | None = None,
        seed: int | None = None,
        idle_timeout: float = 120.0,
        max_clients: int = 4096,
    ):
        rng = random.Random(seed)
        self._listen = listen
        self._upstream = upstream
        self._up = _Direction(up or Impairment(), random.Random(rng.random()))
        self._down = _Direction(down or up or Impairment(), random.Random(rng.random()))
        self._idle_timeout = idle_timeout
        self._max_clients = max_clients
        self._listener: asyncio.DatagramTransport | None = None
        self._clients: dict[Address, _Upstream] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._opening: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.address: Address = listen
        #: Drop every datagram both ways (a frozen peer or a dead path: nothing, not even an
        #: ICMP error, comes back), until set False again.
        self.blackhole = False

    @property
    def stats(self) -> dict[str, PathStats]:
        return {"up": self._up.stats, "down": self._down.stats}

    async def __aenter__(self) -> ImpairmentProxy:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self._listen[0] else socket.AF_INET
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=self._listen, family=family
        )
        self._listener = transport
        self.address = transport.get_extra_info("sockname")[:2]
        self._reaper = asyncio.create_task(self._reap_idle())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._opening):
            task.cancel()
        for client in self._clients.values():
            if client.transport is not None:
                client.transport.close()
        self._clients.clear()
        if self._listener is not None:
            self._listener.close()

    def _from_client(self, data: bytes, addr: Address) -> None:
        loop = asyncio.get_running_loop()
        if self.blackhole:
            self._up.stats.dropped += 1
            return
        client = self._clients.get(addr)
        if client is None:
            if addr in self._pending:
                self._pending[addr].append(data)
                return
            if len(self._clients) + len(self._pending) >= self._max_clients:
                self._up.stats.dropped += 1
                return
            self._pending[addr] = [data]
            task = loop.create_task(self._open_upstream(addr))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
            return
        client.last_seen = loop.time()
        self._up.schedule(loop, client.send, data)

    async def _open_upstream(self, addr: Address) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self._upstream[0] else socket.AF_INET
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _Upstream(self, addr), remote_addr=self._upstream, family=family
            )
        except OSError:
            self._up.stats.dropped += len(self._pending.pop(addr, []))
            return
        protocol.last_seen = loop.time()
        self._clients[addr] = protocol
        for data in self._pending.pop(addr, []):
            self._up.schedule(loop, protocol.send, data)

    async def _reap_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, self._idle_timeout / 2))
            now = loop.time()
            for addr, client in list(self._clients.items()):
                if now - client.last_seen > self._idle_timeout:
                    if client.transport is not None:
                        client.transport.close()
                    del self._clients[addr]


def _address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def _serve(args: argparse.Namespace) -> None:
    up = Impairment(args.delay_ms / 1000, args.jitter_ms / 1000, args.loss)
    async with ImpairmentProxy(args.listen, args.upstream, up=up, down=up, seed=args.seed) as proxy:
        print(
            f"impair: {proxy.address[0]}:{proxy.address[1]} -> {args.upstream[0]}:{args.upstream[1]} "
            f"delay={args.delay_ms}ms jitter={args.jitter_ms}ms loss={args.loss}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.impair", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--upstream", type=_address, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay, each direction")
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument(
        "--loss", type=float, default=0.0, help="drop probability per datagram, each direction"
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        Impairment(args.delay_ms / 1000, args.jitter_ms / 1000, args.loss)
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
