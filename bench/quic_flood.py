"""A flood of spoofed QUIC Initials against a POP (issue 13 item 2), on either QUIC stack.

    python -m bench.quic_flood --stack picoquic --kind handshake --count 10000 --rate 2000

Real processes: Redis, ``clutchcall origin`` and ``clutchcall pop`` on ``--stack``.
This process sends ``--count`` Initial-shaped 1200-byte datagrams with random
connection ids at ``--rate`` per second to the POP's QUIC port from one socket
(the answers, Retry or Handshake, are never read: the sender is "spoofed"), while an
honest viewer (playback token) on another thread

* keeps one session open and asks for a missing track every 100 ms (a SUBSCRIBE
  answered DOES_NOT_EXIST): the longest answer is the *session wait*;
* opens a new session every 0.5 s (handshake + SETUP): the longest is the
  *connect wait*.

``--kind random``: random bytes after the long header (no QUIC stack can decrypt
them; aioquic used to create a connection for each anyway). ``--kind handshake``:
real Initials with a TLS ClientHello, made beforehand with aioquic's client (one
new connection each), which a server must decrypt and may keep state for.

``--sources N`` sends from N sockets in turn (stand-ins for spoofed source
addresses; 1, the default, is one sender). ``--contend N`` pins the POP to one CPU
with N busy loops, all at nice 10 (a loaded host, reproducibly; other work on the
host is not slowed, but the POP's share then also shrinks with the host's own load).
``--profile FILE`` runs the POP under cProfile (wall-clock: under contention it
charges preemption to whatever ran).

The viewer watches ``--baseline`` seconds before the flood (the unflooded baseline of
the same run), the count/rate seconds of the flood and ``--after`` seconds more
(half-open handshakes time out then). Reported: both waits (baseline, and from the
flood's start on), the POP's CPU seconds during the flood and to the end, the load
average at the end, the POP's RSS before/peak/end, and the POP's
``clutchcall_pop_quic_*`` metrics: the highest value of each during the run (sampled
every 0.25 s) and the values at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from moqt.aio import QUIC_STACKS, SessionOptions, connect
from moqt.events import RequestRejected

from ._nodes import node_env, origin_argv, pop_argv, scrape, wait_event
from ._procs import Proc, cpu_seconds, free_port, rss_bytes
from ._tokens import BenchTokens

_DATAGRAM = 1200


def random_initial() -> bytes:
    """An Initial-shaped datagram (QUIC v1 long header, random ids, random payload)."""
    dcid, scid = os.urandom(8), os.urandom(8)
    head = b"\xc3" + (1).to_bytes(4, "big") + b"\x08" + dcid + b"\x08" + scid + b"\x00"
    rest = _DATAGRAM - len(head) - 2
    return head + bytes([0x40 | (rest >> 8), rest & 0xFF]) + os.urandom(rest)


def handshake_initials(count: int, port: int, token: bytes = b"") -> list[bytes]:
    """``count`` real client Initials, each a new connection: one ClientHello (made by
    aioquic's client), sealed again under the Initial keys of a random connection id;
    carrying ``token`` (as if answering a Retry) when given."""
    from aioquic.buffer import Buffer
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.crypto import CryptoPair
    from aioquic.quic.packet import QuicProtocolVersion, pull_quic_header

    version = QuicProtocolVersion.VERSION_1
    conn = QuicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=["moqt-16"])
    )
    now = time.monotonic()
    conn.connect(("127.0.0.1", port), now=now)
    first = conn.datagrams_to_send(now=now)[0][0]
    buf = Buffer(data=first)
    header = pull_quic_header(buf, host_cid_length=8)
    server = CryptoPair()
    server.setup_initial(header.destination_cid, is_client=False, version=version)
    offset = buf.tell()  # the packet number starts here (Initial: after the length)
    packet = first[: header.packet_length]
    plain_header, payload, number = server.decrypt_packet(packet, offset, 0)
    dcid_at = 6  # first byte, version, DCID length
    cid_len = len(header.destination_cid)
    if token:
        # The client's token field is one byte (length 0) after the SCID.
        token_at = dcid_at + cid_len + 1 + len(header.source_cid)
        assert plain_header[token_at] == 0 and len(token) < 64
        field = bytes((len(token),)) + token
        plain_header = plain_header[:token_at] + field + plain_header[token_at + 1 :]
    out: list[bytes] = []
    for _ in range(count):
        dcid = os.urandom(cid_len)
        sealed = plain_header[:dcid_at] + dcid + plain_header[dcid_at + cid_len :]
        client = CryptoPair()
        client.setup_initial(dcid, is_client=True, version=version)
        out.append(client.encrypt_packet(sealed, payload, number) + first[len(packet) :])
    return out


def flood(
    port: int, datagrams: list[bytes] | None, count: int, rate: float, sources: int = 1
) -> float:
    """Send the flood, paced to ``rate``, from ``sources`` sockets in turn (each its own
    source port: many sources stand for spoofed addresses); returns the seconds it took."""
    started = time.monotonic()
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sources)]
    try:
        for sock in socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i in range(count):
            data = datagrams[i] if datagrams is not None else random_initial()
            try:
                socks[i % sources].sendto(data, ("127.0.0.1", port))
            except (BlockingIOError, ConnectionRefusedError):
                pass
            ahead = started + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    finally:
        for sock in socks:
            sock.close()
    return time.monotonic() - started


class Viewer:
    """The honest viewer's two waits, measured on its own event loop."""

    def __init__(self, url: str, tokens: BenchTokens, stack: str) -> None:
        self.url, self.tokens, self.stack = url, tokens, stack
        # (when it started, how long it waited)
        self.session_waits: list[tuple[float, float]] = []
        self.connect_waits: list[tuple[float, float]] = []
        self.errors: list[str] = []

    def options(self) -> SessionOptions:
        return SessionOptions(auth_token=self.tokens.mint("flood-probe")["token"].encode())

    async def run(self, until: float) -> None:
        results = await asyncio.gather(
            self._session(until), self._connects(until), return_exceptions=True
        )
        self.errors += [repr(r) for r in results if isinstance(r, BaseException)]

    async def _session(self, until: float) -> None:
        async with connect(self.url, verify=False, options=self.options(), stack=self.stack) as c:
            n = 0
            while time.monotonic() < until:
                n += 1
                started = time.monotonic()
                rid = c.session.subscribe(
                    (b"stream", b"org_dev", b"flood-probe"), b"missing-%d" % n
                )
                answer = await asyncio.wait_for(c.wait_response(rid), 60)
                self.session_waits.append((started, time.monotonic() - started))
                if not isinstance(answer, RequestRejected):
                    self.errors.append(f"unexpected answer {answer!r}")
                await asyncio.sleep(0.1)

    async def _connects(self, until: float) -> None:
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                async with connect(
                    self.url, verify=False, options=self.options(), stack=self.stack
                ) as c:
                    assert c.session.setup_complete
                self.connect_waits.append((started, time.monotonic() - started))
            except Exception as exc:  # reported; the run goes on
                self.errors.append(repr(exc))
                self.connect_waits.append((started, time.monotonic() - started))
            await asyncio.sleep(0.5)


_BUSY = "import os\nos.nice(10)\nwhile True: pass"


def contend(pid: int, n: int) -> list[Proc]:
    """A reproducibly loaded host: the POP (``pid``) and ``n`` busy loops share one CPU,
    all at nice 10 (the POP gets ~1/(n+1) of it; other work on the host is not slowed)."""
    cpu = {max(os.sched_getaffinity(0))}
    os.sched_setaffinity(pid, cpu)
    os.setpriority(os.PRIO_PROCESS, pid, 10)
    busy = [Proc([sys.executable, "-c", _BUSY], name=f"busy{i}") for i in range(n)]
    for proc in busy:
        os.sched_setaffinity(proc.pid, cpu)
    return busy


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    tokens = BenchTokens(workdir)
    redis_port, origin_port, pop_port = free_port(socket.SOCK_STREAM), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    procs: list[Proc] = []

    def start(name: str, argv: list[str]) -> Proc:
        proc = Proc(argv, name=name, env=node_env(), stderr_path=workdir / f"{name}.log")
        procs.append(proc)
        return proc

    datagrams = handshake_initials(args.count, pop_port) if args.kind == "handshake" else None
    try:
        start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                        "--save", "", "--appendonly", "no", "--dir", str(workdir)])  # fmt: skip
        origin = start("origin", origin_argv(
            quic=f"127.0.0.1:{origin_port}", http="127.0.0.1:0", redis=redis_url,
            region="local", node_id="origin-flood", extra=["--quic-stack", args.stack],
        ))  # fmt: skip
        pop_extra = ["--quic-stack", args.stack, *args.pop_args]
        pop_cmd = pop_argv(
            quic=f"127.0.0.1:{pop_port}", http="127.0.0.1:0", redis=redis_url, region="local",
            node_id="pop-flood", jwks=tokens.jwks_path, extra=pop_extra,
        )  # fmt: skip
        if args.profile:
            pop_cmd[1:1] = ["-m", "cProfile", "-o", str(Path(args.profile).resolve())]
        pop = start("pop", pop_cmd)
        wait_event(workdir / "origin.log", "origin_ready", origin, timeout=60)
        http = str(wait_event(workdir / "pop.log", "pop_ready", pop, timeout=60)[0]["http"])
        if args.contend:
            procs.extend(contend(pop.pid, args.contend))
        viewer = Viewer(f"moqt://127.0.0.1:{pop_port}", tokens, args.viewer_stack)
        flood_seconds = args.count / args.rate
        warmup = args.baseline
        until = time.monotonic() + warmup + flood_seconds + args.after
        watcher = threading.Thread(target=lambda: asyncio.run(viewer.run(until)), daemon=True)
        cpu_start = cpu_seconds(pop.pid)
        watcher.start()
        time.sleep(warmup)
        cpu_baseline = cpu_seconds(pop.pid) - cpu_start
        rss_before = rss_bytes(pop.pid)
        peak = [rss_before]
        stop = threading.Event()

        gauges: dict[str, float] = {}

        def sample() -> None:
            while not stop.wait(0.25):
                peak[0] = max(peak[0], rss_bytes(pop.pid))
                for key, value in scrape(http).items():
                    if key.startswith("clutchcall_pop_quic"):
                        gauges[key] = max(gauges.get(key, 0.0), value)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        flood_started = time.monotonic()
        cpu_before = cpu_seconds(pop.pid)
        took = flood(pop_port, datagrams, args.count, args.rate, args.sources)
        cpu_flood = cpu_seconds(pop.pid) - cpu_before
        watcher.join(timeout=args.after + 120)
        stop.set()
        sampler.join()
        rss_end = rss_bytes(pop.pid)
        cpu_watch = cpu_seconds(pop.pid) - cpu_before
        quic = {k: v for k, v in scrape(http).items() if k.startswith("clutchcall_pop_quic")}
    finally:
        for proc in reversed(procs):
            proc.stop(timeout=5)
    mib = 1 << 20
    return {
        "stack": args.stack,
        "kind": args.kind,
        "contend": args.contend,
        "sources": args.sources,
        "count": args.count,
        "rate": round(args.count / took),
        **waits("session", viewer.session_waits, flood_started),
        **waits("connect", viewer.connect_waits, flood_started),
        "viewer_errors": viewer.errors[:5],
        # The POP's CPU seconds over the baseline, while the flood was sent, and from
        # the flood's start to the end.
        "pop_cpu_baseline_s": round(cpu_baseline, 2),
        "pop_cpu_flood_s": round(cpu_flood, 2),
        "pop_cpu_watch_s": round(cpu_watch, 2),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "rss_before_mib": round(rss_before / mib, 1),
        "rss_peak_growth_mib": round((peak[0] - rss_before) / mib, 1),
        "rss_end_growth_mib": round((rss_end - rss_before) / mib, 1),
        "metrics_peak": gauges,
        "metrics_end": quic,
    }


def waits(name: str, samples: list[tuple[float, float]], flood_started: float) -> dict[str, Any]:
    """The longest ``name`` wait before the flood (the unflooded baseline, same run) and
    from its start on, and how many there were."""
    before = [w for t, w in samples if t < flood_started]
    after = [w for t, w in samples if t >= flood_started]
    return {
        f"{name}_wait_max_baseline_s": round(max(before, default=float("nan")), 3),
        f"{name}_wait_max_s": round(max(after, default=float("nan")), 3),
        f"{name}_waits": [len(before), len(after)],
        # The three longest from the flood's start on: (seconds into the flood, wait).
        f"{name}_wait_top": sorted(
            ((round(t - flood_started, 2), round(w, 3)) for t, w in samples if t >= flood_started),
            key=lambda tw: -tw[1],
        )[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", choices=QUIC_STACKS, default="picoquic")
    parser.add_argument("--viewer-stack", choices=QUIC_STACKS, default="aioquic")
    parser.add_argument("--kind", choices=("random", "handshake"), default="handshake")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument(
        "--baseline", type=float, default=5.0, help="seconds watched before the flood"
    )
    parser.add_argument("--after", type=float, default=40.0, help="seconds watched after")
    parser.add_argument(
        "--contend", type=int, default=0,
        help="pin the POP to one CPU with this many niced busy loops (a loaded host)",
    )  # fmt: skip
    parser.add_argument(
        "--sources", type=int, default=1,
        help="send from this many sockets in turn (many: spoofed source addresses)",
    )  # fmt: skip
    parser.add_argument("--profile", help="write the POP's cProfile statistics to this file")
    parser.add_argument("--pop-args", nargs="*", default=[], help="more clutchcall pop options")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quic-flood-") as tmp:
        print(json.dumps(run(args, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
