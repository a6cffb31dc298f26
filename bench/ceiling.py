"""The raw aioquic ceiling on this machine: one process sending bulk stream data to one receiver.

    python -m bench.ceiling --megabytes 128

The server (the sender, like a relay's egress) answers a one-byte request on a
bidirectional stream with ``--megabytes`` of data; the client (another process)
measures the goodput from the first to the last byte. Relay egress figures are
reported as a ratio of this number measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent, StreamDataReceived

from ._procs import Proc, python

__all__ = ["measure_ceiling"]

ALPN = "clutchcall-bench"


class _Sender(QuicConnectionProtocol):
    """Keeps about 1 MiB queued on the stream until ``size`` bytes are written.

    Writing everything at once would measure aioquic's buffer copying instead
    of its sending (its send buffer is trimmed from the front on every ACK).
    """

    size = 0
    _CHUNK = bytes(256 << 10)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.end_stream:
            asyncio.get_running_loop().create_task(self._pump(event.stream_id))

    async def _pump(self, stream_id: int) -> None:
        left = self.size
        stream = self._quic._streams[stream_id]
        while left > 0:
            while left > 0 and len(stream.sender._buffer) < (1 << 20):
                n = min(len(self._CHUNK), left)
                left -= n
                self._quic.send_stream_data(stream_id, self._CHUNK[:n], end_stream=left == 0)
            self.transmit()
            await asyncio.sleep(0.0005)


class _Receiver(QuicConnectionProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.first: float | None = None
        self.received = 0
        self.done = asyncio.Event()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            if self.first is None:
                self.first = time.monotonic()
            self.received += len(event.data)
            if event.end_stream:
                self.last = time.monotonic()
                self.done.set()


def _grow_buffers(transport: object, size: int = 4 << 20) -> None:
    """Socket buffers as large as net.core.[rw]mem_max allows: the default 208 KiB
    overflows at a few hundred Mbit/s and loss would measure the kernel, not aioquic."""
    import socket

    sock = transport.get_extra_info("socket")  # type: ignore[attr-defined]
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, size)


async def _serve(args: argparse.Namespace) -> None:
    from moqt.aio import write_self_signed

    cert, key = write_self_signed(Path(tempfile.mkdtemp(prefix="ceiling-")), ["localhost"])
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN],
        max_data=64 << 20,
        max_stream_data=32 << 20,
        congestion_control_algorithm=args.cc,
    )
    config.load_cert_chain(str(cert), str(key))
    _Sender.size = args.megabytes << 20
    server = await serve("127.0.0.1", args.port, configuration=config, create_protocol=_Sender)
    _grow_buffers(server._transport)  # type: ignore[attr-defined]
    print("ready", flush=True)
    await asyncio.Event().wait()


async def _receive(args: argparse.Namespace) -> float:
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        max_data=64 << 20,
        max_stream_data=32 << 20,
        verify_mode=ssl.CERT_NONE,
    )
    async with connect(
        "127.0.0.1", args.port, configuration=config, create_protocol=_Receiver
    ) as proto:
        assert isinstance(proto, _Receiver)
        _grow_buffers(proto._transport)
        stream_id = proto._quic.get_next_available_stream_id()
        proto._quic.send_stream_data(stream_id, b"?", end_stream=True)
        proto.transmit()
        await asyncio.wait_for(proto.done.wait(), timeout=300)
        assert proto.first is not None
        return proto.received * 8 / 1e6 / max(1e-9, proto.last - proto.first)


def measure_ceiling(megabytes: int = 96, seconds: float | None = None, cc: str = "reno") -> float:
    """Mbit/s from a sender process to a receiver process (this one) over loopback."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Proc(
        [
            python(),
            "-m",
            "bench.ceiling",
            "serve",
            "--port",
            str(port),
            "--megabytes",
            str(megabytes),
            "--cc",
            cc,
        ],
        name="ceiling-sender",
    ) as sender:
        sender.wait_line("ready")
        ns = argparse.Namespace(port=port)
        return asyncio.run(_receive(ns))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="role")
    serve_p = sub.add_parser("serve")
    serve_p.add_argument("--port", type=int, required=True)
    serve_p.add_argument("--megabytes", type=int, default=96)
    serve_p.add_argument("--cc", default="reno")
    parser.add_argument("--megabytes", type=int, default=96)
    parser.add_argument("--cc", default="reno")
    args = parser.parse_args(argv)
    if args.role == "serve":
        asyncio.run(_serve(args))
        return 0
    mbit = measure_ceiling(args.megabytes, cc=args.cc)
    print(json.dumps({"aioquic_ceiling_mbit_s": round(mbit, 1), "megabytes": args.megabytes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
