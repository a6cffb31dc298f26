"""The raw QUIC ceiling on this machine: one process sending bulk stream data to one receiver.

    python -m bench.ceiling --megabytes 128
    python -m bench.ceiling --stack picoquic --megabytes 128 [--picoquic-bin PATH]

The server (the sender, like a relay's egress) answers a one-byte request on a
bidirectional stream with ``--megabytes`` of data; the client (another process)
measures the goodput from the first to the last byte. Relay egress figures are
reported as a ratio of this number measured in the same run.

``--stack aioquic`` (the default) is pure Python on both ends. ``--stack picoquic``
runs the same transfer through aiopquic, the binding our relay uses on picoquic
(the relay's stream ring size, ``--stream-buffer``, and its congestion control), and
also reports the sender process's CPU seconds (all its threads, picoquic's
included) from the first to the last byte: egress per core is the goodput divided
by the cores the sender used, the figure a relay's egress per core is compared with.
``--picoquic-bin`` adds picoquic's own C sender (``picoquicdemo``, built from the
upstream sources; see bench/RESULTS.md) over loopback as a second reference, its
CPU measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent, StreamDataReceived

from ._procs import Proc, cpu_seconds, free_port, python

__all__ = [
    "Bulk",
    "add_reference_arguments",
    "check_reference_arguments",
    "measure_bulk",
    "measure_ceiling",
    "measure_picoquic_bin",
    "measure_picoquic_fanout",
    "measure_references",
    "per_core",
    "percent",
]

ALPN = "clutchcall-bench"
STACKS = ("aioquic", "picoquic")


@dataclass
class Bulk:
    """One bulk transfer: goodput, and what it cost the sender."""

    stack: str
    megabytes: int
    mbit_s: float
    seconds: float = math.nan  # first to last byte at the receiver
    sender_cpu_s: float = math.nan  # the sender's user + system CPU over those seconds

    @property
    def sender_cores(self) -> float:
        return self.sender_cpu_s / self.seconds if self.seconds > 0 else math.nan

    @property
    def mbit_s_per_core(self) -> float:
        """Goodput per core of the sender: megabits sent per CPU-second it used."""
        return per_core(self.mbit_s, self.sender_cores)

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "mbit_s": round(self.mbit_s, 1),
            "seconds": round(self.seconds, 3),
            "sender_cpu_s": round(self.sender_cpu_s, 3),
            "sender_cores": round(self.sender_cores, 3),
            "mbit_s_per_core": round(self.mbit_s_per_core, 1),
        }


def per_core(mbit_s: float, cores: float) -> float:
    """Mbit/s divided by the cores that sent it (NaN without a CPU figure)."""
    if not cores or cores <= 0 or math.isnan(cores):
        return math.nan
    return mbit_s / cores


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
        self.count = _Count()
        self.done = self.count.done

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            self.count.data(len(event.data), event.end_stream)


class _Count:
    """The receiving end's clock (and the sender's CPU clock, when told its pid)."""

    sender_pid = 0

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.cpu_first = self.cpu_last = math.nan
        self.received = 0
        self.done = asyncio.Event()

    def _cpu(self) -> float:
        return cpu_seconds(self.sender_pid) if self.sender_pid else math.nan

    def data(self, size: int, end: bool) -> None:
        if self.first is None:
            self.first = time.monotonic()
            self.cpu_first = self._cpu()
        self.received += size
        if end:
            self.last = time.monotonic()
            self.cpu_last = self._cpu()
            self.done.set()

    def bulk(self, stack: str, megabytes: int) -> Bulk:
        assert self.first is not None
        seconds = max(1e-9, self.last - self.first)
        return Bulk(
            stack,
            megabytes,
            self.received * 8 / 1e6 / seconds,
            seconds,
            self.cpu_last - self.cpu_first,
        )


def _grow_buffers(transport: object, size: int = 4 << 20) -> None:
    """Socket buffers as large as net.core.[rw]mem_max allows: the default 208 KiB
    overflows at a few hundred Mbit/s and loss would measure the kernel, not aioquic."""
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


async def _receive(args: argparse.Namespace) -> _Count:
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
        return proto.count


# --- picoquic through aiopquic -------------------------------------------------------


def _picoquic_config(is_client: bool, cc: str | None, stream_buffer: int) -> Any:
    from aiopquic.quic.configuration import QuicConfiguration as PicoquicConfiguration

    from moqt.aio._picoquic import DEFAULT_CONGESTION_CONTROL

    config = PicoquicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        max_data=64 << 20,
        max_stream_data=32 << 20,
        socket_buffer_size=4 << 20,
        verify_mode=ssl.CERT_NONE if is_client else None,
    )
    config.congestion_control_algorithm = cc or DEFAULT_CONGESTION_CONTROL  # the relay's
    config.stream_ring_cap = stream_buffer
    return config


def _picoquic_sender(size: int, ring: int) -> Any:
    """A protocol that answers a request with ``size`` bytes, keeping the stream's ring full.

    The relay's way (moqt.aio._picoquic_rings): writes of a quarter of the ring until
    picoquic refuses one (``BufferError``), then a drain notice; each batch of events
    picoquic reports (the drain among them) writes again, with a 5 ms fallback.
    """
    from aiopquic.asyncio.protocol import QuicConnectionProtocol as PicoquicProtocol
    from aiopquic.quic.events import StreamDataReceived as PicoquicData

    from moqt.aio._picoquic_rings import ring_write_size

    piece = bytes(ring_write_size(ring))

    class Sender(PicoquicProtocol):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stream: int | None = None
            self.left = 0
            self.timer: asyncio.TimerHandle | None = None

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, PicoquicData) and event.end_stream and self.stream is None:
                self.stream, self.left = event.stream_id, size

        def _process_events(self) -> None:
            super()._process_events()
            self.pump()

        def pump(self) -> None:
            self.timer = None
            stream = self.stream
            if stream is None:
                return
            while self.left > 0:
                n = min(len(piece), self.left)
                try:
                    self._quic.send_stream_data(
                        stream, piece if n == len(piece) else piece[:n], self.left == n
                    )
                except BufferError:
                    self._quic.set_tx_data_drain_pending(stream)
                    if self.timer is None:
                        self.timer = asyncio.get_running_loop().call_later(0.005, self.pump)
                    return
                self.left -= n

    return Sender


async def _serve_picoquic(args: argparse.Namespace) -> None:
    from moqt.aio import write_self_signed
    from moqt.aio._picoquic import serve_raw_on_socket
    from moqt.aio._picoquic_socket import bind_server_socket

    cert, key = write_self_signed(Path(tempfile.mkdtemp(prefix="ceiling-")), ["localhost"])
    config = _picoquic_config(False, args.cc, args.stream_buffer)
    config.certificate_file, config.private_key_file = str(cert), str(key)
    config.ip_family = socket.AF_INET  # one socket, which becomes ours
    # On 127.0.0.1 only, as the relay (picoquic alone would listen on every address).
    sock = bind_server_socket("127.0.0.1", args.port, reuse_port=False)
    sender = _picoquic_sender(args.megabytes << 20, args.stream_buffer)
    server = await serve_raw_on_socket(sock, config, sender)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()


async def _receive_picoquic(args: argparse.Namespace) -> _Count:
    from aiopquic.asyncio.client import connect as picoquic_connect
    from aiopquic.asyncio.protocol import QuicConnectionProtocol as PicoquicProtocol
    from aiopquic.quic.events import StreamDataReceived as PicoquicData

    count = _Count()

    class Receiver(PicoquicProtocol):  # type: ignore[misc]
        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, PicoquicData):
                count.data(len(event.data), event.end_stream)

    config = _picoquic_config(True, args.cc, args.stream_buffer)
    async with picoquic_connect(
        "127.0.0.1", args.port, configuration=config, create_protocol=Receiver
    ) as proto:
        stream_id = proto._quic.get_next_available_stream_id()
        proto._quic.send_stream_data(stream_id, b"?", True)
        await asyncio.wait_for(count.done.wait(), timeout=300)
    return count


def measure_bulk(
    stack: str = "aioquic",
    megabytes: int = 96,
    *,
    cc: str | None = None,
    stream_buffer: int | None = None,
) -> Bulk:
    """One sender process -> one receiver (this process) over loopback on ``stack``;
    ``cc`` None is the stack's default here (reno on aioquic, the relay's on picoquic),
    ``stream_buffer`` None the relay's picoquic stream ring."""
    if stack not in STACKS:
        raise ValueError(f"stack must be one of {', '.join(STACKS)}, not {stack!r}")
    if stack == "aioquic" and cc is None:
        cc = "reno"
    if stream_buffer is None:
        from moqt.aio._picoquic import STREAM_BUFFER

        stream_buffer = STREAM_BUFFER
    port = free_port()
    argv = [python(), "-m", "bench.ceiling", "serve", "--stack", stack, "--port", str(port)]
    argv += ["--megabytes", str(megabytes), "--stream-buffer", str(stream_buffer)]
    argv += ["--cc", cc] if cc else []
    with Proc(argv, name=f"ceiling-sender-{stack}") as sender:
        sender.wait_line("ready")
        _Count.sender_pid = sender.pid
        ns = argparse.Namespace(port=port, cc=cc, stream_buffer=stream_buffer)
        try:
            receive = _receive_picoquic if stack == "picoquic" else _receive
            count = asyncio.run(receive(ns))
        finally:
            _Count.sender_pid = 0
    return count.bulk(stack, megabytes)


def measure_picoquic_bin(binary: str, megabytes: int = 96, cc: str = "bbr1") -> Bulk:
    """picoquic's own C sender: ``binary`` (picoquicdemo) serves the quicperf protocol
    (ALPN ``perf``) and a second ``binary`` asks it for ``megabytes`` on one stream over
    loopback. Goodput is the client's ``Download_bytes`` over ``Connection_duration_sec``
    (handshake included: a few ms of a transfer of a second or more); the server's CPU
    is sampled before the client starts and after it ends (the server idles otherwise).

    picoquicdemo has no option to bind one address: its server listens on every address
    of the host, on a free port, for the seconds of the transfer."""
    from moqt.aio import write_self_signed

    workdir = Path(tempfile.mkdtemp(prefix="ceiling-c-"))
    cert, key = write_self_signed(workdir, ["localhost"])
    port = free_port()
    server_argv = [binary, "-c", str(cert), "-k", str(key), "-p", str(port), "-G", cc]
    with Proc(server_argv, name="picoquicdemo-server", stderr_path=workdir / "server.log") as srv:
        _wait_bound(port, srv)
        before = cpu_seconds(srv.pid)
        # quicperf scenario: one stream, an 8-byte request, ``megabytes`` in answer.
        request = f"*1:8:{megabytes << 20};"
        client_argv = [binary, "-D", "-G", cc, "-a", "perf", "-n", "localhost", "-o", str(workdir)]
        client = subprocess.run(
            [*client_argv, "127.0.0.1", str(port), request],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=workdir,
        )
        after = cpu_seconds(srv.pid) if srv.popen.poll() is None else math.nan
    stats = parse_quicperf(client.stdout)
    if client.returncode != 0 or "Download_bytes" not in stats:
        tail = (client.stdout + client.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"{binary} client failed ({client.returncode}): {' | '.join(tail)}")
    seconds = stats["Connection_duration_sec"]
    mbit = stats["Download_bytes"] * 8 / 1e6 / max(1e-9, seconds)
    return Bulk("picoquic-c", megabytes, mbit, seconds, after - before)


def quicperf_media_scenario(
    bitrate: float, fps: float, group_seconds: float, seconds: float
) -> str:
    """The quicperf scenario of one viewer of a fan-out: one media stream of ``fps`` frames
    a second of ``bitrate / fps`` bits each, a group every ``group_seconds``, for
    ``seconds`` (picoquic's doc/quicperf.md)."""
    frame = max(1, round(bitrate / 8 / fps))
    frames = max(1, round(seconds * fps))
    group = max(1, round(group_seconds * fps))
    return f"=v1:s{fps:g}:n{frames}:{frame}:G{group};"


def parse_media_frames(output: str) -> tuple[int, int]:
    """Frames received and asked for, from a quicperf client's media stream report (0, 0
    when it printed none)."""
    found = re.search(r"received\s+(\d+)/\s*(\d+)\s+frames", output)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def measure_picoquic_fanout(
    binary: str,
    subscribers: int,
    *,
    bitrate: float = 2.5e6,
    fps: float = 30.0,
    group_seconds: float = 2.0,
    seconds: float = 20.0,
    cc: str = "bbr",
) -> Bulk:
    """picoquic's own C server fanning out what the relay fans out: ``binary``
    (picoquicdemo) serves ``subscribers`` quicperf clients (more ``binary`` processes,
    niced), each of which asks for one media stream (:func:`quicperf_media_scenario`).
    The bulk senders are one connection; this is the per-core reference of a server of
    that many paced connections on the same stack and controller (``cc``, the relay's
    default). The server's CPU is read over the middle half of the run, from 2 s after
    the last client started (the clients' own CPU is not counted, as the relay's
    subscribers' is not); goodput is the offered rate times the frames received."""
    from moqt.aio import write_self_signed

    workdir = Path(tempfile.mkdtemp(prefix="fanout-c-"))
    cert, key = write_self_signed(workdir, ["localhost"])
    port = free_port()
    scenario = quicperf_media_scenario(bitrate, fps, group_seconds, seconds)
    server_argv = [binary, "-c", str(cert), "-k", str(key), "-p", str(port), "-G", cc]
    client_argv = ["nice", "-n", "5", binary, "-D", "-G", cc, "-a", "perf", "-n", "localhost"]
    client_argv += ["-o", str(workdir), "127.0.0.1", str(port), scenario]
    with Proc(server_argv, name="picoquicdemo-server", stderr_path=workdir / "server.log") as srv:
        _wait_bound(port, srv)
        clients = []
        try:
            for _ in range(subscribers):
                clients.append(
                    subprocess.Popen(
                        client_argv,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                        cwd=workdir,
                    )
                )
            time.sleep(2.0 + seconds / 4)
            window = seconds / 2
            before = cpu_seconds(srv.pid)
            time.sleep(window)
            cpu = cpu_seconds(srv.pid) - before
            outputs = [client.communicate(timeout=seconds + 60)[0] for client in clients]
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
                    client.wait()
    counts = [parse_media_frames(out) for out in outputs]
    received, asked = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if not asked:
        tail = outputs[0].strip().splitlines()[-3:] if outputs else []
        raise RuntimeError(f"{binary} clients reported no media stream: {' | '.join(tail)}")
    mbit = subscribers * bitrate / 1e6 * received / asked
    return Bulk("picoquic-c fan-out", 0, mbit, window, cpu)


def parse_quicperf(output: str) -> dict[str, float]:
    """The ``Name: number`` statistics a picoquicdemo quicperf client prints at the end."""
    stats: dict[str, float] = {}
    for line in output.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            try:
                stats[name.strip()] = float(value.strip())
            except ValueError:
                continue
    return stats


def _wait_bound(port: int, proc: Proc, timeout: float = 20.0) -> None:
    needle = f":{port:04X} "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise proc.exited()
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                if needle in Path(table).read_text():
                    return
            except OSError:
                continue
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} did not listen on UDP {port}")


def measure_references(
    stack: str, megabytes: int = 96, picoquic_bin: str | None = None
) -> tuple[float | None, list[Bulk]]:
    """What a fan-out benchmark compares its egress with, measured now and printed: on
    ``aioquic`` the ceiling's goodput (Mbit/s); on ``picoquic`` the aiopquic sender (and
    ``picoquic_bin``'s) bulk runs, whose egress per core the relay's is compared with."""
    if stack == "aioquic":
        ceiling = measure_ceiling(megabytes)
        print(
            f"aioquic ceiling (one sender -> one receiver, bulk stream): {ceiling:.1f} Mbit/s",
            flush=True,
        )
        return ceiling, []
    refs = [measure_bulk("picoquic", megabytes)]
    if picoquic_bin:
        refs.append(measure_picoquic_bin(picoquic_bin, megabytes))
    for ref in refs:
        print(
            f"{ref.stack} ceiling (one sender -> one receiver, bulk stream): "
            f"{ref.mbit_s:.1f} Mbit/s with the sender on {ref.sender_cores:.2f} cores: "
            f"{ref.mbit_s_per_core:.1f} Mbit/s per core",
            flush=True,
        )
    return None, refs


def percent(value: float, reference: float | None) -> str:
    """``value`` as a whole % of ``reference`` ("-" without one)."""
    if not reference or math.isnan(reference) or math.isnan(value):
        return "-"
    return f"{100 * value / reference:.0f}%"


def add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ceiling-stack``, ``--ceiling-megabytes`` and ``--picoquic-bin`` of a fan-out bench."""
    parser.add_argument(
        "--ceiling-stack",
        choices=STACKS,
        default="aioquic",
        help="aioquic: egress as a %% of the aioquic sender's goodput; picoquic: egress per "
        "core as a %% of an aiopquic sender's (bench.ceiling --stack picoquic)",
    )
    parser.add_argument("--ceiling-megabytes", type=_positive, default=96)
    parser.add_argument(
        "--picoquic-bin",
        type=_executable,
        help="with --ceiling-stack picoquic: picoquic's own C sender (picoquicdemo) as a "
        "second per-core reference, and picoquicdemo serving the same fan-out (bench.fanout)",
    )


def check_reference_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.picoquic_bin and args.ceiling_stack != "picoquic":
        parser.error("--picoquic-bin goes with --ceiling-stack picoquic")


def measure_ceiling(megabytes: int = 96, seconds: float | None = None, cc: str = "reno") -> float:
    """Mbit/s from an aioquic sender process to a receiver process (this one) over loopback."""
    return measure_bulk("aioquic", megabytes, cc=cc).mbit_s


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="role")
    serve_p = sub.add_parser("serve")
    serve_p.add_argument("--port", type=int, required=True)
    serve_p.add_argument("--megabytes", type=int, default=96)
    serve_p.add_argument("--cc", default=None)
    serve_p.add_argument("--stack", choices=STACKS, default="aioquic")
    serve_p.add_argument("--stream-buffer", type=int, default=64 << 10)
    parser.add_argument("--megabytes", type=_positive, default=96)
    parser.add_argument(
        "--cc",
        default=None,
        help="congestion control (default: reno on aioquic, the relay's default on picoquic)",
    )
    parser.add_argument(
        "--stack",
        choices=STACKS,
        default="aioquic",
        help="aioquic (default; goodput only, as before) or picoquic through aiopquic "
        "(goodput and the sender's CPU: egress per core)",
    )
    parser.add_argument(
        "--stream-buffer",
        type=_stream_buffer,
        default=None,
        help="picoquic: the sender's per-stream ring in bytes (default: the relay's, "
        "quic_stream_buffer)",
    )
    parser.add_argument(
        "--picoquic-bin",
        type=_executable,
        help="with --stack picoquic: also measure this picoquicdemo (picoquic's own C "
        "sender) over loopback",
    )
    args = parser.parse_args(argv)
    if args.role == "serve":
        if args.stack == "picoquic":
            asyncio.run(_serve_picoquic(args))
        else:
            if args.cc is None:
                args.cc = "reno"
            asyncio.run(_serve(args))
        return 0
    if args.stack == "aioquic":
        if args.picoquic_bin or args.stream_buffer is not None:
            parser.error("--picoquic-bin and --stream-buffer go with --stack picoquic")
        mbit = measure_ceiling(args.megabytes, cc=args.cc or "reno")
        print(json.dumps({"aioquic_ceiling_mbit_s": round(mbit, 1), "megabytes": args.megabytes}))
        return 0
    report: dict[str, Any] = {
        "picoquic": measure_bulk(
            "picoquic", args.megabytes, cc=args.cc, stream_buffer=args.stream_buffer
        ).as_json()
    }
    if args.picoquic_bin:
        report["picoquic_c"] = measure_picoquic_bin(args.picoquic_bin, args.megabytes).as_json()
    print(json.dumps(report))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _stream_buffer(text: str) -> int:
    value = _positive(text)
    if value < 4096:
        raise argparse.ArgumentTypeError(f"must be at least 4096 bytes, not {value}")
    return value


def _executable(text: str) -> str:
    import os

    if not (os.path.isfile(text) and os.access(text, os.X_OK)):
        raise argparse.ArgumentTypeError(f"not an executable file: {text!r}")
    return text


if __name__ == "__main__":
    sys.exit(main())
