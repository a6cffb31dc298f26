"""A two-tier mesh on one machine: origin -> regional POPs -> edge POPs -> a viewer swarm.

    python -m bench.mesh_scale --viewers 200 --regionals 2 --edges-per-regional 2 \\
        --bitrate 250e3 --fps 30 --per-process 100 --ramp 10 --window 15

Real processes on loopback, every node on picoquic (``--quic-stack``): Redis,
``clutchcall origin`` (region ``core``), ``--regionals`` regional POPs (regions
``r0``, ``r1``, ...), each the parent of ``--edges-per-regional`` edge POPs
(regions ``r0e0``, ``r0e1``, ...; ``--parent-regions r0``): an edge pulls from
its regional POP, which pulls from the origin (docs/relay-links.md). One
publisher (:mod:`bench._live`: stamped H.264 CMAF at ``--bitrate``, a new group
every ``--group-seconds``) uploads to the origin once. The viewers are
:mod:`bench.swarm` processes (``--per-process`` each, every process on one edge,
edges filled in turn) joining over ``--ramp`` seconds at the publisher's
current group, with playback tokens the POPs verify.

Once every viewer has joined, the harness samples every node's ``/metrics``
and CPU over ``--window`` seconds: per tier the payload egress
(``clutchcall_bytes_out``) against the origin's ingest (``clutchcall_bytes_in``):
the stream's own rate. Copies per child = a node's egress / (ingest x its
children), 1.00 when each tier sends one copy per child. Then the swarms are
told the last object counted (the one due a second later, ``tail``) and the run
waits for every viewer to have it; each viewer's delivered ratio counts every
object from the group it joined at to that one (:func:`bench.swarm.summarize`).

``viewers per core`` is the viewers divided by the cores the whole mesh (origin
and POPs, not the swarm, the publisher or Redis) used in the window: what the
serving side costs per viewer. The load generator's cores are reported too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from moqt.aio import QUIC_STACKS

from ._live import make_clip
from ._nodes import (
    NodeGroup,
    metric,
    origin_argv,
    pop_argv,
    publisher_argv,
    scrape,
    tree_cpu,
    tree_rss,
    wait_event,
)
from ._procs import Proc, free_port, python
from ._tokens import BenchTokens
from .swarm import SwarmSummary, summarize

__all__ = ["MeshResult", "main", "run_mesh"]

INPUT_ID = "lv_mesh"
NAMESPACE = f"stream/org_dev/{INPUT_ID}"


@dataclass
class Node:
    name: str
    tier: str  # origin | regional | edge
    proc: Proc
    http: str = ""
    children: int = 0  # downstream sessions it should feed (POPs, or viewers at an edge)


@dataclass
class TierFigures:
    tier: str
    nodes: int
    children: int
    egress_mbit_s: float
    copies_per_child: float  # egress / (stream rate x children); 1.00 = one copy each
    cpu_cores: float
    rss_mb: float


@dataclass
class MeshResult:
    viewers: int
    regionals: int
    edges: int
    bitrate_kbit_s: float
    fps: float
    processes: int
    swarm_nice: int = 0
    ingest_mbit_s: float = 0.0  # the origin's bytes_in rate: the encoder's one upload
    publisher_mbit_s: float = 0.0  # the publisher's payload rate (the clip's, prft included)
    tiers: list[TierFigures] = field(default_factory=list)
    mesh_cpu_cores: float = 0.0
    swarm_cpu_cores: float = 0.0
    viewers_per_core: float = 0.0  # viewers / mesh cores
    mesh_cpu_ms_per_join: float = math.nan  # origin + POPs, handshake to steady delivery
    drops: float = 0.0  # clutchcall_drops over every node, whole run
    upstream_stalls: int = 0  # POPs that took their upstream for dead (logs)
    # Redis commands (INFO commandstats): per second with no joins (heartbeats, renewals)
    # and per join, net of that rate, over the join ramp
    redis_calls_per_s: float = math.nan
    redis_calls_per_join: float = math.nan
    swarm: SwarmSummary = field(default_factory=SwarmSummary)
    uptime_before: str = ""
    uptime_after: str = ""
    notes: list[str] = field(default_factory=list)


def _uptime() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _start_nodes(
    mesh: NodeGroup, tokens: BenchTokens, *, regionals: int, per_regional: int, stack: str
) -> tuple[list[Node], str, str]:
    redis_url = mesh.start_redis()
    origin_port = free_port()
    stack_flag = ["--quic-stack", stack]
    nodes = [
        Node(
            "origin",
            "origin",
            mesh.start(
                "origin",
                origin_argv(
                    quic=f"127.0.0.1:{origin_port}",
                    http="127.0.0.1:0",
                    redis=redis_url,
                    region="core",
                    node_id="origin-core",
                    extra=stack_flag,
                ),
            ),
            children=regionals,
        )
    ]

    def pop(name: str, tier: str, region: str, extra: list[str], children: int) -> Node:
        argv = pop_argv(
            quic=f"127.0.0.1:{free_port()}", http="127.0.0.1:0", redis=redis_url, region=region,
            node_id=name, jwks=tokens.jwks_path, linger=30.0, extra=stack_flag + extra,
        )  # fmt: skip
        return Node(name, tier, mesh.start(name, argv), children=children)

    for r in range(regionals):
        nodes.append(pop(f"pop-r{r}", "regional", f"r{r}", [], per_regional))
    for r in range(regionals):
        for e in range(per_regional):
            region = f"r{r}e{e}"
            nodes.append(pop(f"pop-{region}", "edge", region, ["--parent-regions", f"r{r}"], 0))
    for node in nodes:
        event = "origin_ready" if node.tier == "origin" else "pop_ready"
        ready = wait_event(mesh.log(node.name), event, node.proc, timeout=90)[0]
        node.http = str(ready["http"])
    return nodes, f"127.0.0.1:{origin_port}", redis_url


def _quic_of(mesh: NodeGroup, node: Node) -> str:
    event = "origin_ready" if node.tier == "origin" else "pop_ready"
    return str(wait_event(mesh.log(node.name), event, node.proc)[0]["quic"])


def _assign(viewers: int, edges: int, per_process: int) -> list[tuple[int, int]]:
    """(edge, viewers) per swarm process: the viewers spread evenly over the edges, each
    edge's share in processes of at most ``per_process``."""
    out = []
    for edge in range(edges):
        share = viewers // edges + (edge < viewers % edges)
        while share > 0:
            out.append((edge, min(per_process, share)))
            share -= out[-1][1]
    return out


def _count_children(nodes: Sequence[Node]) -> None:
    """An upper tier's children are the POPs below it that serve viewers (the others
    subscribe to nothing): a regional's edges with viewers, the origin's regionals
    with such edges (or with viewers of their own when there is no edge tier)."""
    edges = [n for n in nodes if n.tier == "edge"]
    regionals = [n for n in nodes if n.tier == "regional"]
    if edges:
        for regional in regionals:
            region = regional.name.removeprefix("pop-")
            regional.children = sum(
                1 for e in edges if e.name.startswith(f"pop-{region}e") and e.children
            )
    nodes[0].children = sum(1 for r in regionals if r.children)


def _redis_calls(url: str) -> float:
    """Commands Redis has run so far (INFO commandstats, the INFO calls excluded)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return float(sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",)))


def _scrape(nodes: Sequence[Node]) -> dict[str, dict[str, float]]:
    return {n.name: scrape(n.http) for n in nodes}


def run_mesh(
    viewers: int,
    *,
    regionals: int = 2,
    per_regional: int = 2,
    bitrate: float = 250e3,
    fps: float = 2.0,
    group_seconds: float = 2.0,
    per_process: int = 250,
    ramp: float = 10.0,
    window: float = 15.0,
    stack: str = "picoquic",
    tail: float = 1.0,
    swarm_nice: int = 0,
    workdir: Path,
) -> MeshResult:
    """One run (see the module docstring); every process is stopped on return.
    ``per_regional`` 0: no edge tier, the viewers join the regional POPs. The publisher
    sends until the window is over; the last object counted is the one due ``tail``
    seconds after that, and the run waits for every viewer to have it. ``swarm_nice``: the swarm processes' nice value (> 0: the
    mesh gets the CPU first, as if the viewers were on other machines)."""
    edges = regionals * per_regional
    processes = max(1, math.ceil(viewers / per_process))
    result = MeshResult(viewers, regionals, edges, bitrate / 1e3, fps, processes, swarm_nice)
    result.uptime_before = _uptime()
    mesh = NodeGroup(workdir)
    tokens = BenchTokens(workdir)
    clip = make_clip(workdir / "clips", bitrate=bitrate, fps=fps, group_seconds=group_seconds)
    per_group = clip.per_group
    try:
        nodes, origin_quic, redis_url = _start_nodes(
            mesh, tokens, regionals=regionals, per_regional=per_regional, stack=stack
        )
        edge_nodes = [n for n in nodes if n.tier == "edge"] or [
            n for n in nodes if n.tier == "regional"
        ]
        edge_urls = [f"moqt://{_quic_of(mesh, n)}" for n in edge_nodes]
        # the swarms load (imports take seconds on a busy host) while the publisher starts;
        # they join on SIGUSR2
        last_file = workdir / "last-object.txt"
        swarms: list[tuple[Proc, Path]] = []
        for i, (edge, count) in enumerate(_assign(viewers, len(edge_nodes), per_process)):
            edge_nodes[edge].children += count
            token_file = workdir / f"swarm-{i}.tokens.json"
            tokens.write(token_file, INPUT_ID, count)
            report = workdir / f"swarm-{i}.json"
            proc = mesh.start(
                f"swarm-{i}",
                [
                    "nice", "-n", str(swarm_nice),
                    python(), "-m", "bench.swarm", "--url", edge_urls[edge],
                    "--namespace", NAMESPACE, "--tokens", str(token_file), "--report",
                    str(report), "--stack", stack, "--ramp", str(ramp), "--last-file", str(last_file),
                    "--timeout", str(ramp + window + 600), "--seed", str(i),
                    "--per-group", str(per_group), "--wait-go",
                ],
            )  # fmt: skip
            swarms.append((proc, report))
        publisher = mesh.start(
            "publisher",
            publisher_argv(
                f"moqt://{origin_quic}", NAMESPACE, workdir / "clips", bitrate=bitrate, fps=fps,
                group_seconds=group_seconds, prime_groups=1,
            ),
        )  # fmt: skip
        primed = json.loads(publisher.wait_line("{", timeout=60 + group_seconds))
        for proc, _ in swarms:
            proc.wait_line("armed", timeout=120)
        redis_a, redis_ta = _redis_calls(redis_url), time.monotonic()
        ramp_cpu0 = sum(tree_cpu(n.proc.pid) for n in nodes)
        for proc, _ in swarms:
            proc.signal(signal.SIGUSR2)
        _count_children(nodes)
        for proc, _ in swarms:
            line = proc.wait_line("ready", timeout=ramp + 120)
            joined = json.loads(line.split(" ", 1)[1])["joined"]
            if joined < 1:
                result.notes.append(f"{proc.name}: no viewer joined")
        redis_b, redis_tb = _redis_calls(redis_url), time.monotonic()
        ramp_cpu = sum(tree_cpu(n.proc.pid) for n in nodes) - ramp_cpu0
        time.sleep(group_seconds)  # the joining FETCHes are over: the measured window
        mesh_pids = [n.proc.pid for n in nodes]
        swarm_pids = [p.pid for p, _ in swarms]
        before = _scrape(nodes)
        cpu0 = {n.name: tree_cpu(n.proc.pid) for n in nodes}
        swarm_cpu0 = sum(tree_cpu(p) for p in swarm_pids)
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        # the last object counted: the one due ``tail`` s from now (it is not sent yet)
        last_seq = math.ceil((time.time() + tail - float(primed["t0"])) * fps)
        last_file.write_text(f"{last_seq // per_group}:{last_seq % per_group}")
        for proc, _ in swarms:
            proc.signal(signal.SIGUSR1)
        after = _scrape(nodes)
        redis_c = _redis_calls(redis_url)
        result.redis_calls_per_s = (redis_c - redis_b) / (time.monotonic() - redis_tb)
        idle_calls = result.redis_calls_per_s * (redis_tb - redis_ta)
        result.redis_calls_per_join = (redis_b - redis_a - idle_calls) / viewers
        cpu1 = {n.name: tree_cpu(n.proc.pid) for n in nodes}
        swarm_cpu1 = sum(tree_cpu(p) for p in swarm_pids)
        rss = {n.name: tree_rss(n.proc.pid) for n in nodes}
        del mesh_pids

        def rate(name: str, series: str) -> float:
            delta = metric(after[name], series) - metric(before[name], series)
            return delta * 8 / elapsed / 1e6

        ingest = rate("origin", "clutchcall_bytes_in_total")
        result.ingest_mbit_s = ingest
        for tier in ("origin", "regional", "edge"):
            members = [n for n in nodes if n.tier == tier]
            if not members:
                continue
            egress = sum(rate(n.name, "clutchcall_bytes_out_total") for n in members)
            children = sum(n.children for n in members)
            result.tiers.append(
                TierFigures(
                    tier,
                    len(members),
                    children,
                    egress,
                    egress / (ingest * children) if ingest and children else math.nan,
                    sum(cpu1[n.name] - cpu0[n.name] for n in members) / elapsed,
                    sum(rss[n.name] for n in members) / 2**20,
                )
            )
        result.mesh_cpu_cores = sum(t.cpu_cores for t in result.tiers)
        result.swarm_cpu_cores = (swarm_cpu1 - swarm_cpu0) / elapsed
        result.viewers_per_core = viewers / max(1e-9, result.mesh_cpu_cores)
        # the joins' CPU: the mesh's during the ramp beyond what serving took meanwhile
        # (the steady rate of the window, for on average half the viewers)
        serving = result.mesh_cpu_cores / 2 * (redis_tb - redis_ta)
        result.mesh_cpu_ms_per_join = max(0.0, ramp_cpu - serving) / viewers * 1000
        result.publisher_mbit_s = clip.bitrate / 1e6
        for proc, _ in swarms:
            try:
                proc.wait_line("complete", timeout=60)
            except (TimeoutError, RuntimeError) as exc:
                result.notes.append(f"{proc.name}: {exc}")
        end = _scrape(nodes)
        result.drops = sum(metric(end[n.name], "clutchcall_drops_total") for n in nodes)
        result.upstream_stalls = sum(
            mesh.log(n.name).read_text(errors="replace").count('"upstream_stalled"') for n in nodes
        )
        reports = []
        for proc, report in swarms:
            proc.signal(signal.SIGTERM)
            proc.wait_line("done", timeout=60)
            reports.append(json.loads(report.read_text()))
        result.swarm = summarize(reports, last_seq=last_seq, per_group=per_group)
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
        result.notes.append(f"failed: {exc}")
    finally:
        result.uptime_after = _uptime()
        mesh.stop()
    return result


def format_result(r: MeshResult) -> str:
    s = r.swarm
    lines = [
        f"viewers {r.viewers} ({s.joined} joined) of {r.bitrate_kbit_s:.0f} kbit/s x "
        f"{r.fps:g} objects/s on {r.edges} edge POPs under {r.regionals} regional POPs, "
        f"{r.processes} swarm processes (nice {r.swarm_nice}); load average {r.uptime_before} -> {r.uptime_after}",
        f"delivered {100 * s.delivered_ratio:.3f}% ({s.counted}/{s.expected} objects; worst "
        f"viewer {100 * s.worst_viewer_ratio:.2f}%, viewers under 99.9%: "
        f"{s.viewers_below_999}); relay drops {r.drops:.0f}; upstream stalls {r.upstream_stalls}",
        f"latency publisher -> viewer (after the joined group) p50/p99/max {s.latency_p50_ms:.1f}/"
        f"{s.latency_p99_ms:.1f}/{s.latency_max_ms:.1f} ms; join (connect -> first object) "
        f"p50/p99 {s.join_p50_ms:.0f}/{s.join_p99_ms:.0f} ms",
        f"ingest at the origin {r.ingest_mbit_s:.3f} Mbit/s (the publisher's clip "
        f"{r.publisher_mbit_s:.3f}); Redis {r.redis_calls_per_s:.1f} commands/s without joins, "
        f"{r.redis_calls_per_join:.2f} per join",
        "",
        "| tier | nodes | children | egress Mbit/s | copies per child | CPU (cores) | RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in r.tiers:
        lines.append(
            f"| {t.tier} | {t.nodes} | {t.children} | {t.egress_mbit_s:.2f} | "
            f"{t.copies_per_child:.3f} | {t.cpu_cores:.2f} | {t.rss_mb:.0f} |"
        )
    lines += [
        "",
        f"mesh CPU {r.mesh_cpu_cores:.2f} cores -> {r.viewers_per_core:.0f} viewers per core "
        f"({r.mesh_cpu_ms_per_join:.1f} CPU ms per join); "
        f"swarm CPU {r.swarm_cpu_cores:.2f} cores ({r.viewers / max(1e-9, r.swarm_cpu_cores):.0f} "
        f"viewers per core); swarm RSS up to {s.rss_mb_per_process:.0f} MB per process",
    ]
    lines += [f"note: {n}" for n in r.notes]
    lines += [f"viewer failed: {f}" for f in sorted(set(s.failed))[:5]]
    if s.missing_examples:
        lines.append(f"missing (group, object), first few: {s.missing_examples[:10]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mesh_scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--regionals", type=int, default=2)
    parser.add_argument(
        "--edges-per-regional", type=int, default=2, help="0: viewers on the regional POPs"
    )
    parser.add_argument("--bitrate", type=float, default=250e3)
    parser.add_argument(
        "--fps",
        type=float,
        default=2.0,
        help="objects per second (2: one per 0.5 s, the origin's RTMP chunk duration)",
    )
    parser.add_argument("--group-seconds", type=float, default=2.0)
    parser.add_argument("--per-process", type=int, default=250, help="viewers per swarm process")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds the joins spread over")
    parser.add_argument("--window", type=float, default=15.0, help="measured seconds")
    parser.add_argument("--quic-stack", choices=QUIC_STACKS, default="picoquic")
    parser.add_argument(
        "--swarm-nice",
        type=int,
        default=0,
        help="nice value of the swarm processes (> 0: the mesh nodes get the CPU first)",
    )

    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.viewers < 1 or args.regionals < 1 or args.edges_per_regional < 0:
        parser.error("--viewers and --regionals must be >= 1, --edges-per-regional >= 0")
    if args.per_process < 1 or args.window <= 0 or args.ramp < 0:
        parser.error("--per-process >= 1, --window > 0 and --ramp >= 0")
    workdir = Path(tempfile.mkdtemp(prefix="clutchcall-mesh-"))
    result = run_mesh(
        args.viewers,
        regionals=args.regionals,
        per_regional=args.edges_per_regional,
        bitrate=args.bitrate,
        fps=args.fps,
        group_seconds=args.group_seconds,
        per_process=args.per_process,
        ramp=args.ramp,
        window=args.window,
        stack=args.quic_stack,
        swarm_nice=args.swarm_nice,
        workdir=workdir,
    )
    print(format_result(result))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=2, default=str))
    print(f"logs: {workdir} (pid {os.getpid()})")
    return 0 if not result.notes else 1


if __name__ == "__main__":
    sys.exit(main())
