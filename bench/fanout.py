"""Fan-out benchmark: one publisher -> relay -> N subscribers in other processes.

    python -m bench.fanout run --subscribers 10,50,100,200 --duration 10 \
        --relays ours,ours-picoquic,aiomoqt [--client-stack picoquic]

The publisher sends 2.5 Mbit/s as 30 objects/s with a new group every 2 s; each
object carries its send time (CLOCK_MONOTONIC, shared by every process on the
machine). Subscribers are spread over several processes (never the relay's).
For each N it reports the delivered ratio, the added latency p50/p99 (publish
-> receive through the relay), the relay's CPU and egress, and - in the same
run - the raw aioquic ceiling (``bench.ceiling``) and the same scenario through
aiomoqt's ``moq_interop_relay``. ``ours`` is our relay on aioquic,
``ours-picoquic`` the same relay with ``--quic-stack picoquic`` (``ours-picoquic@bbr1``:
with that congestion controller instead of its default, bbr).

``--ceiling-stack picoquic`` measures the ceiling through aiopquic instead, with
its sender's CPU, and reports each relay's egress per core (egress over the
relay's CPU during the publisher's window) as a % of the sender's egress per core;
``--picoquic-bin`` adds picoquic's own C sender (picoquicdemo) as a second reference,
and, for each subscriber count, picoquicdemo serving the same fan-out (that many quicperf
media streams of the same bitrate, frame rate and groups, on BBR): a bulk sender is one
connection, this is what picoquic's own C server reaches with as many paced ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moqt.aio import QUIC_STACKS

from ._procs import CpuSample, HostCpu, Proc, free_port, percentile, python, rss_bytes
from .ceiling import (
    Bulk,
    add_reference_arguments,
    check_reference_arguments,
    measure_picoquic_fanout,
    measure_references,
    per_core,
    percent,
)

__all__ = ["FanoutResult", "main", "run_fanout"]

NAMESPACE = (b"bench", b"fanout")
TRACK = b"video"
_STAMP = struct.Struct(">Q")
#: The host's busy share from which a run's latency is flagged as the host's, not the
#: relay's alone: the load generator shares the machine (bench/RESULTS.md).
SATURATED = 0.9


# --- publisher role ------------------------------------------------------------------


async def _publisher(args: argparse.Namespace) -> int:
    from moqt.aio import connect
    from moqt.events import RequestRejected, SubscribeRequested, Unsubscribed

    object_size = max(_STAMP.size, int(args.bitrate / 8 / args.fps))
    per_group = max(1, round(args.group_seconds * args.fps))
    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    async with connect(args.url, verify=False) as conn:
        session = conn.session
        subscriptions: set[int] = set()

        def on_event(_conn: object, event: object) -> None:
            if isinstance(event, SubscribeRequested):
                if event.namespace == NAMESPACE and event.name == TRACK:
                    session.accept_subscribe(event.request_id)
                    subscriptions.add(event.request_id)
                else:
                    from moqt.errors import RequestErrorCode

                    session.reject_request(
                        event.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track"
                    )
            elif isinstance(event, Unsubscribed):
                subscriptions.discard(event.request_id)

        conn.set_event_handler(on_event)
        request_id = session.publish_namespace(NAMESPACE)
        answer = await conn.wait_response(request_id)
        if isinstance(answer, RequestRejected):
            print(f"error publish_namespace rejected: {answer.reason}", flush=True)
            return 1
        print("ready", flush=True)
        await go.wait()
        padding = bytes(object_size - _STAMP.size)
        interval = 1.0 / args.fps
        total = int(args.duration * args.fps)
        start = time.monotonic()
        handles: dict[int, Any] = {}
        sent = 0
        for seq in range(total):
            group, obj = divmod(seq, per_group)
            due = start + seq * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = _STAMP.pack(time.monotonic_ns()) + padding
            for sub in list(subscriptions):
                if obj == 0 or sub not in handles:
                    if sub in handles:
                        session.end_subgroup(handles[sub])
                    handles[sub] = session.open_subgroup(sub, group, 0, priority=128)
                session.write_object(handles[sub], obj, payload)
            sent += 1
        for handle in handles.values():
            session.end_subgroup(handle)
        print(f"sent {json.dumps({'objects': sent, 'object_size': object_size})}", flush=True)
        await asyncio.sleep(args.linger)
    return 0


# --- subscribers role ----------------------------------------------------------------


async def _subscribers(args: argparse.Namespace) -> int:
    from moqt.aio import connect
    from moqt.events import ObjectReceived, RequestRejected

    latencies: list[float] = []
    received = [0] * args.count
    expected = int(args.expect)
    complete = [0]
    all_complete = asyncio.Event()
    payload_bytes = [0]
    rejected: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        conns = await asyncio.gather(
            *(
                stack.enter_async_context(connect(args.url, verify=False, stack=args.stack))
                for _ in range(args.count)
            )
        )
        for i, conn in enumerate(conns):

            def on_event(_conn: object, event: object, i: int = i) -> None:
                if isinstance(event, ObjectReceived) and event.payload:
                    now = time.monotonic_ns()
                    received[i] += 1
                    if received[i] == expected:
                        complete[0] += 1
                        if complete[0] == args.count:
                            all_complete.set()
                    payload_bytes[0] += len(event.payload)
                    latencies.append((now - _STAMP.unpack_from(event.payload)[0]) / 1e6)

            request_id = conn.session.subscribe(NAMESPACE, TRACK)
            answer = await conn.wait_response(request_id)
            if isinstance(answer, RequestRejected):
                rejected.append(answer.reason)
            conn.set_event_handler(on_event)
        print("ready", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_complete.wait(), args.timeout)
        report = {
            "received": received,
            "latency_ms": latencies,
            "payload_bytes": payload_bytes[0],
            "rejected": rejected,
            "rss": rss_bytes(os.getpid()),
        }
        await asyncio.to_thread(Path(args.report).write_text, json.dumps(report))
        print("done", flush=True)
    return 0


# --- orchestration -------------------------------------------------------------------


@dataclass
class FanoutResult:
    relay: str
    subscribers: int
    sent: int = 0
    missing: int = 0  # objects sent x subscribers that never arrived
    delivered_ratio: float = 0.0
    latency_p50_ms: float = math.nan
    latency_p99_ms: float = math.nan
    relay_cpu_cores: float = 0.0
    # Of relay_cpu_cores: the event loop's thread; the rest is the QUIC stack's own
    # threads (picoquic's network thread: packets, encryption, pacing, ACKs).
    relay_loop_cores: float = 0.0
    relay_cpu_s: float = 0.0  # over the publisher's window
    egress_mbit_s: float = 0.0
    relay_rss_mb: float = 0.0
    # The relay's RSS with the publisher connected and no subscriber, then with every
    # subscriber subscribed before the publisher starts: the growth at the end over
    # relay_rss_base_mb, divided by N, is the memory per active viewer.
    relay_rss_base_mb: float = 0.0
    relay_rss_idle_mb: float = 0.0
    # Where the relay's resident memory is at the end (MiB): see smaps_summary.
    relay_memory: dict[str, float] = field(default_factory=dict)
    # The load generator over the same window: the subscriber processes' cores (all
    # their threads), and the share of the whole host's CPU that was busy. A host near
    # 100% makes the latency figures the viewers' wait for a core as much as the relay's.
    viewers_cpu_cores: float = 0.0
    host_busy: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def egress_per_core(self) -> float:
        """Mbit/s of egress per core of the relay: payload megabits per relay CPU-second."""
        return per_core(self.egress_mbit_s, self.relay_cpu_cores)

    @property
    def network_cores(self) -> float:
        """The relay's cores outside its event loop: the QUIC stack's thread(s)."""
        return max(0.0, self.relay_cpu_cores - self.relay_loop_cores)

    @property
    def network_egress_per_core(self) -> float:
        """Egress per core of the QUIC stack's thread alone: the bound a relay whose own
        (Python) work cost nothing would reach with this stack."""
        return per_core(self.egress_mbit_s, self.network_cores) if self.network_cores else math.nan

    @property
    def saturated(self) -> bool:
        """The host had no CPU to spare (>= SATURATED busy) while the objects flowed."""
        return self.host_busy >= SATURATED

    @property
    def per_viewer_kib(self) -> float:
        if not self.relay_rss_base_mb:
            return math.nan
        return (self.relay_rss_mb - self.relay_rss_base_mb) * 1024 / max(1, self.subscribers)


def smaps_summary(pid: int) -> dict[str, float]:
    """Resident MiB of a process by kind of mapping: ``heap`` (the main malloc arena, where
    the event loop's allocations go), ``arenas`` (64 MiB-aligned anonymous regions: other
    threads' malloc arenas, picoquic's thread), ``anon`` (other anonymous mappings: large
    mallocs, Python's arenas), ``files``."""
    totals = {"heap": 0.0, "arenas": 0.0, "anon": 0.0, "files": 0.0}
    kind = "anon"
    try:
        with open(f"/proc/{pid}/smaps") as lines:
            for line in lines:
                head = line.split()
                if not head:
                    continue
                if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    start, end = (int(x, 16) for x in head[0].split("-"))
                    name = head[5] if len(head) > 5 else ""
                    if name == "[heap]":
                        kind = "heap"
                    elif name:
                        kind = "files"
                    elif start % (64 << 20) == 0 and end - start <= 64 << 20:
                        kind = "arenas"
                    else:
                        kind = "anon"
                elif head[0] == "Rss:":
                    totals[kind] += int(head[1]) / 1024
    except OSError:
        pass
    return {k: round(v, 1) for k, v in totals.items()}


def _relay_command(
    kind: str, port: int, http_port: int, workdir: Path, extra: Sequence[str] = ()
) -> list[str]:
    kind, _, controller = kind.partition("@")
    if controller and kind != "ours-picoquic":
        raise ValueError(f"a congestion controller (@{controller}) goes with ours-picoquic")
    if kind in ("ours", "ours-picoquic"):
        # The relay's own default is picoquic: "ours" names aioquic explicitly.
        stack = ["--quic-stack", "picoquic" if kind == "ours-picoquic" else "aioquic"]
        if controller:
            stack += ["--quic-congestion-control", controller]
        return [
            python(),
            "-m",
            "cli.main",
            "relay",
            "--quic",
            f"127.0.0.1:{port}",
            "--http",
            f"127.0.0.1:{http_port}",
            "--log-level",
            "warning",
            *stack,
            *extra,
        ]
    if kind == "aiomoqt":
        from moqt.aio import write_self_signed

        cert, key = write_self_signed(workdir / "aiomoqt-cert", ["localhost"])
        return [
            python(),
            "-m",
            "aiomoqt.tools.moq_interop_relay",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--quic",
            "--cert",
            str(cert),
            "--key",
            str(key),
        ]
    raise ValueError(f"unknown relay {kind!r}")


def _wait_udp_listener(port: int, proc: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    needle = f":{port:04X}"
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise proc.exited()
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with contextlib.suppress(OSError):
                if needle in Path(table).read_text():
                    time.sleep(0.3)
                    return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} did not listen on UDP {port}")


def _start_relay(
    relay: str, subscribers: int, workdir: Path, relay_args: Sequence[str], attempts: int = 3
) -> tuple[Proc, int]:
    """Start the relay under test on free ports (UDP for QUIC, TCP for HTTP). A port found
    free can be taken by another process before the relay binds it: then new ports."""
    for attempt in range(attempts):
        port, http_port = free_port(), free_port(socket.SOCK_STREAM)
        log = workdir / f"relay-{relay}-{subscribers}.log"
        proc = Proc(
            _relay_command(relay, port, http_port, workdir, relay_args),
            name=f"relay-{relay}",
            stderr_path=log,
        )
        try:
            _wait_udp_listener(port, proc)
            return proc, port
        except RuntimeError:
            proc.stop()
            if attempt + 1 == attempts or "address already in use" not in log.read_text():
                raise
    raise AssertionError("unreachable")


def run_fanout(
    relay: str,
    subscribers: int,
    *,
    duration: float,
    bitrate: float,
    fps: float,
    group_seconds: float,
    per_process: int,
    workdir: Path,
    client_stack: str = "aioquic",
    relay_args: Sequence[str] = (),
) -> FanoutResult:
    result = FanoutResult(relay, subscribers)
    expected = int(duration * fps)
    procs: list[Proc] = []
    try:
        relay_proc, port = _start_relay(relay, subscribers, workdir, relay_args)
        procs.append(relay_proc)
        url = f"moqt://127.0.0.1:{port}"
        pub = Proc(
            [
                python(),
                "-m",
                "bench.fanout",
                "publisher",
                "--url",
                url,
                "--duration",
                str(duration),
                "--bitrate",
                str(bitrate),
                "--fps",
                str(fps),
                "--group-seconds",
                str(group_seconds),
            ],
            name="publisher",
            stderr_path=workdir / f"pub-{relay}-{subscribers}.log",
        )
        procs.append(pub)
        pub.wait_line("ready")
        result.relay_rss_base_mb = rss_bytes(relay_proc.pid) / 2**20
        reports: list[Path] = []
        subs: list[Proc] = []
        remaining, index = subscribers, 0
        while remaining > 0:
            count = min(per_process, remaining)
            report = workdir / f"subs-{relay}-{subscribers}-{index}.json"
            sub = Proc(
                [
                    python(),
                    "-m",
                    "bench.fanout",
                    "subscribers",
                    "--url",
                    url,
                    "--count",
                    str(count),
                    "--expect",
                    str(expected),
                    "--timeout",
                    str(duration + 15),
                    "--report",
                    str(report),
                    "--stack",
                    client_stack,
                ],
                name=f"subscribers-{index}",
                stderr_path=workdir / f"subs-{relay}-{subscribers}-{index}.log",
            )
            procs.append(sub)
            subs.append(sub)
            reports.append(report)
            remaining -= count
            index += 1
        for sub in subs:
            sub.wait_line("ready", timeout=60)
        result.relay_rss_idle_mb = rss_bytes(relay_proc.pid) / 2**20
        before = CpuSample.of(relay_proc.pid)
        viewers_before = [CpuSample.of(sub.pid) for sub in subs]
        host_before = HostCpu.sample()
        pub.signal(signal.SIGUSR1)
        sent_line = pub.wait_line("sent", timeout=duration + 30)
        after = CpuSample.of(relay_proc.pid)
        result.host_busy = HostCpu.sample().busy_since(host_before)
        result.viewers_cpu_cores = sum(
            CpuSample.of(sub.pid).utilisation_since(earlier)
            for sub, earlier in zip(subs, viewers_before, strict=True)
        )
        result.relay_rss_mb = rss_bytes(relay_proc.pid) / 2**20
        result.relay_memory = smaps_summary(relay_proc.pid)
        result.sent = json.loads(sent_line.split(" ", 1)[1])["objects"]
        for sub in subs:
            sub.wait_line("done", timeout=duration + 30)
        latencies: list[float] = []
        delivered = 0
        payload = 0
        for report in reports:
            data = json.loads(report.read_text())
            delivered += sum(min(n, result.sent) for n in data["received"])
            latencies.extend(data["latency_ms"])
            payload += data["payload_bytes"]
            result.notes.extend(f"rejected: {r}" for r in data["rejected"][:3])
        window = after.wall - before.wall
        result.missing = result.sent * subscribers - delivered
        result.delivered_ratio = delivered / max(1, result.sent * subscribers)
        result.latency_p50_ms = percentile(latencies, 50)
        result.latency_p99_ms = percentile(latencies, 99)
        result.relay_cpu_cores = after.utilisation_since(before)
        result.relay_loop_cores = after.main_utilisation_since(before)
        result.relay_cpu_s = after.cpu - before.cpu
        result.egress_mbit_s = payload * 8 / 1e6 / max(1e-9, window)
    except (RuntimeError, TimeoutError) as exc:
        result.notes.append(f"failed: {exc}")
    finally:
        for proc in reversed(procs):
            proc.stop()
    return result


def _format(
    results: list[FanoutResult],
    ceiling: float | None,
    per_core_refs: Sequence[Bulk] = (),
    fanout_refs: Mapping[int, Bulk] | None = None,
) -> str:
    """The table; with ``per_core_refs`` (picoquic bulk senders measured in the same run)
    the aioquic ratio gives way to the relay's egress per core against each sender's, and
    with ``fanout_refs`` (picoquicdemo serving the same fan-out, by subscriber count)
    against that too."""
    fanout_refs = fanout_refs or {}
    if per_core_refs:
        # The last reference is the strictest (picoquicdemo when given): the network
        # thread alone is set against it too, the bound of this QUIC stack's relay.
        ratio_heads = ["egress per core Mbit/s"] + [
            f"% of {ref.stack} per core" for ref in per_core_refs
        ] + [f"network thread alone, % of {per_core_refs[-1].stack} per core"]
        if fanout_refs:
            ratio_heads.append("% of picoquic-c fan-out (same N) per core")
    else:
        ratio_heads = ["% of aioquic ceiling"]
    heads = [
        "relay", "N", "delivered (missing)", "p50 ms", "p99 ms",
        "relay CPU (cores): loop + network", "egress Mbit/s", *ratio_heads,
        "relay RSS MB", "KiB per active viewer", "viewers' CPU (cores)", "host busy",
    ]  # fmt: skip
    lines = ["| " + " | ".join(heads) + " |", "|---|" + "---:|" * (len(heads) - 1)]
    for r in results:
        if per_core_refs:
            strictest = per_core_refs[-1].mbit_s_per_core
            ratios = [f"{r.egress_per_core:.1f}"] + [
                percent(r.egress_per_core, ref.mbit_s_per_core) for ref in per_core_refs
            ] + [percent(r.network_egress_per_core, strictest)]
            if fanout_refs:
                same = fanout_refs.get(r.subscribers)
                ratios.append(percent(r.egress_per_core, same.mbit_s_per_core if same else None))
        else:
            ratios = [percent(r.egress_mbit_s, ceiling)]
        cores = f"{r.relay_cpu_cores:.2f}: {r.relay_loop_cores:.2f} + {r.network_cores:.2f}"
        lines.append(
            f"| {r.relay} | {r.subscribers} | {100 * r.delivered_ratio:.2f}% ({r.missing}) | {r.latency_p50_ms:.1f} | "
            f"{r.latency_p99_ms:.1f} | {cores} | {r.egress_mbit_s:.1f} | {' | '.join(ratios)} | "
            f"{r.relay_rss_mb:.0f} | {r.per_viewer_kib:.0f} | {r.viewers_cpu_cores:.2f} | "
            f"{percent(r.host_busy, 1.0)} |"
        )
    for r in results:
        if r.relay_memory:
            lines.append(
                f"<!-- {r.relay} N={r.subscribers} RSS MiB base {r.relay_rss_base_mb:.0f}, "
                f"subscribed {r.relay_rss_idle_mb:.0f}, end {r.relay_rss_mb:.0f}: {r.relay_memory} -->"
            )
    notes = [f"- {r.relay} N={r.subscribers}: {n}" for r in results for n in r.notes]
    notes += [
        f"- {r.relay} N={r.subscribers}: the host was {percent(r.host_busy, 1.0)} busy "
        f"(the viewers {r.viewers_cpu_cores:.2f} cores, the relay {r.relay_cpu_cores:.2f}): "
        "its latency is the viewers' wait for a core as much as the relay's"
        for r in results
        if r.saturated
    ]
    return "\n".join(lines + (["", *notes] if notes else []))


def compare_with_peer(results: list[FanoutResult], peer: str = "aiomoqt") -> str:
    """Per N, each of our relays against ``peer`` by delivered objects (exact, not rounded)."""
    lines = []
    for r in results:
        theirs = next(
            (p for p in results if p.relay == peer and p.subscribers == r.subscribers), None
        )
        if r.relay == peer or theirs is None or r.notes or theirs.notes:
            continue
        verdict = ">= peer" if r.missing <= theirs.missing else "BELOW peer"
        lines.append(
            f"N={r.subscribers}: {r.relay} missed {r.missing}, {peer} missed {theirs.missing} "
            f"of {r.sent * r.subscribers}: {verdict}"
        )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.subscribers.split(",")]
    relays = args.relays.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="clutchcall-fanout-"))
    ceiling, refs = (
        (None, [])
        if args.no_ceiling
        else measure_references(args.ceiling_stack, args.ceiling_megabytes, args.picoquic_bin)
    )
    fanout_refs: dict[int, Bulk] = {}
    if args.picoquic_bin and not args.no_ceiling:
        for n in counts:
            ref = measure_picoquic_fanout(
                args.picoquic_bin,
                n,
                bitrate=args.bitrate,
                fps=args.fps,
                group_seconds=args.group_seconds,
                seconds=max(10.0, args.duration),
            )
            fanout_refs[n] = ref
            print(
                f"picoquic-c fan-out ({n} quicperf media streams of {args.bitrate / 1e6:g} "
                f"Mbit/s): {ref.mbit_s:.1f} Mbit/s with the server on {ref.sender_cores:.2f} "
                f"cores: {ref.mbit_s_per_core:.1f} Mbit/s per core",
                flush=True,
            )
    results: list[FanoutResult] = []
    for n in counts:
        for relay in relays:
            r = run_fanout(
                relay,
                n,
                duration=args.duration,
                bitrate=args.bitrate,
                fps=args.fps,
                group_seconds=args.group_seconds,
                per_process=args.per_process,
                workdir=workdir,
                client_stack=args.client_stack,
                relay_args=args.relay_arg,
            )
            results.append(r)
            row = _format([r], ceiling, refs, fanout_refs)
            # The row itself (lines 0 and 1 are the header; the RSS comment follows it).
            print(row.splitlines()[2] if not r.notes else row, flush=True)
    table = _format(results, ceiling, refs, fanout_refs)
    print("\n" + table)
    comparison = compare_with_peer(results)
    if comparison:
        print("\n" + comparison)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "ceiling_mbit_s": ceiling,
                    "ceilings": [ref.as_json() for ref in refs],
                    "fanout_references": {n: ref.as_json() for n, ref in fanout_refs.items()},
                    "results": [
                        {
                            **asdict(r),
                            "egress_per_core_mbit_s": r.egress_per_core,
                            "network_egress_per_core_mbit_s": r.network_egress_per_core,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    print(f"logs: {workdir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="role", required=True)
    run = sub.add_parser("run", help="the whole benchmark")
    run.add_argument("--subscribers", default="10,50,100,200")
    run.add_argument("--relays", default="ours,aiomoqt")
    run.add_argument("--duration", type=float, default=10.0)
    run.add_argument("--bitrate", type=float, default=2.5e6)
    run.add_argument("--fps", type=float, default=30.0)
    run.add_argument("--group-seconds", type=float, default=2.0)
    run.add_argument(
        "--per-process", type=int, default=25, help="subscriber connections per process"
    )
    run.add_argument(
        "--client-stack",
        choices=QUIC_STACKS,
        default="aioquic",
        help="QUIC stack of the subscriber processes (the load generator), for every relay",
    )
    run.add_argument("--no-ceiling", action="store_true")
    add_reference_arguments(run)
    run.add_argument(
        "--relay-arg",
        action="append",
        default=[],
        help="one more option for our relays (repeat; e.g. --relay-arg=--quic-stream-buffer=262144)",
    )
    run.add_argument("--json")
    pub = sub.add_parser("publisher")
    pub.add_argument("--url", required=True)
    pub.add_argument("--duration", type=float, default=10.0)
    pub.add_argument("--bitrate", type=float, default=2.5e6)
    pub.add_argument("--fps", type=float, default=30.0)
    pub.add_argument("--group-seconds", type=float, default=2.0)
    pub.add_argument("--linger", type=float, default=2.0)
    subs = sub.add_parser("subscribers")
    subs.add_argument("--url", required=True)
    subs.add_argument("--count", type=int, default=1)
    subs.add_argument("--expect", type=int, required=True)
    subs.add_argument("--timeout", type=float, default=30.0)
    subs.add_argument("--report", required=True)
    subs.add_argument("--stack", choices=QUIC_STACKS, default="aioquic")
    args = parser.parse_args(argv)
    if args.role == "run":
        check_reference_arguments(run, args)
        return _run(args)
    if args.role == "publisher":
        return asyncio.run(_publisher(args))
    return asyncio.run(_subscribers(args))


if __name__ == "__main__":
    sys.exit(main())
