"""Origin -> POP -> viewers fan-out on loopback (issue 3 "Performance").

    python -m bench.pop_fanout run --viewers 10,50,100,200 --duration 10 --scale-viewers 100

Real processes: Redis, ``clutchcall origin`` (``--publish-auth none``), one
``clutchcall pop`` (``--workers 1`` or ``2``), the publisher of
:mod:`bench._live` (stamped H.264 CMAF: 2.5 Mbit/s, 30 objects/s, 2 s groups),
a probe subscriber directly on the origin, and viewers with playback tokens
spread over several processes. Per N it reports:

* delivered ratio (objects sent after the start signal x viewers);
* added latency per hop, p50/p99: the *origin hop* is publish -> origin -> the
  probe; *viewer - probe* is, per object, a POP viewer's receive time minus the
  probe's (origin -> POP transit, the POP, POP -> viewer, and the viewer process's
  own work); from the POP's ``clutchcall_object_latency_seconds`` histogram, the
  time inside the POP from an object's arrival to its write into every viewer
  session; and *added by the POP*: the same N viewers, in the same processes, run
  once more subscribed directly at the origin (``direct``, no POP on the path),
  and the end-to-end p50/p99 through the POP minus those of that direct run.
  viewer - probe also counts what N viewers cost wherever they are served (the
  fan-out to N sessions, N client stacks sharing this machine's cores): the
  direct run shows it without any POP;
* POP egress (payload) and its ratio to the raw aioquic ceiling measured in the
  same run (:func:`bench.ceiling.measure_ceiling`), the POP's CPU; with
  ``--ceiling-stack picoquic`` instead the POP's egress per core (egress over the
  serving node's CPU) as a % of an aiopquic bulk sender's per core (and of
  picoquicdemo's with ``--picoquic-bin``), measured in the same run;
* memory per idle viewer: the POP's RSS growth (all workers) when N viewers are
  connected, admitted and subscribed while the stream is paused, divided by N;
* revocation latency: ``--revoke`` tokens revoked by jti through Redis while
  the viewers are connected, publish -> session closed (``auth_failed``) p50/p99.

``--scale-viewers M`` then runs M viewers at ``--scale-bitrate`` against one
and two POP workers and reports the delivered egress ratio (2 workers / 1),
which only means something when one worker is saturated and the viewer
processes are not: give them cores of their own (on a 2-core machine the
viewers saturate first; compare the serving node CPU column).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moqt.aio import QUIC_STACKS
from moqt.errors import SessionCloseCode

from ._cpu_budget import CpuBudget
from ._live import make_clip
from ._nodes import (
    NodeGroup,
    histogram_quantile,
    origin_argv,
    pop_argv,
    publisher_argv,
    scrape,
    tree_cpu,
    tree_rss,
    wait_event,
)
from ._procs import Proc, free_port, percentile, python
from ._tokens import BenchTokens
from .ceiling import (
    Bulk,
    add_reference_arguments,
    check_reference_arguments,
    measure_references,
    per_core,
    percent,
)

__all__ = ["PopFanoutResult", "main", "run_pop_fanout"]

INPUT_ID = "lv_fanout"
NAMESPACE = f"stream/org_dev/{INPUT_ID}"
PRIME_GROUPS = 1


@dataclass
class PopFanoutResult:
    viewers: int
    workers: int
    bitrate_mbit_s: float
    sent: int = 0
    delivered_ratio: float = 0.0
    origin_hop_p50_ms: float = math.nan
    origin_hop_p99_ms: float = math.nan
    pop_hop_p50_ms: float = math.nan
    pop_hop_p99_ms: float = math.nan
    pop_forwarding_p50_ms: float = math.nan  # inside the POP: arrival -> written to every viewer
    pop_forwarding_p99_ms: float = math.nan
    end_to_end_p50_ms: float = math.nan
    end_to_end_p99_ms: float = math.nan
    direct: bool = False  # the viewers subscribed at the origin: the no-POP baseline
    # end to end through the POP minus end to end of the direct run (same viewers)
    added_by_pop_p50_ms: float = math.nan
    added_by_pop_p99_ms: float = math.nan
    pop_cpu_cores: float = 0.0  # of the node serving the viewers (the origin when direct)
    viewers_cpu_cores: float = 0.0  # every viewer process together: the load generator
    worker_cpu_budget: float | None = None  # cores each POP worker was confined to
    pop_throttled_s: float = 0.0  # time the budget held the workers back (all together)
    pop_egress_mbit_s: float = 0.0
    idle_viewer_kib: float = math.nan
    revoked: int = 0
    revocation_p50_ms: float = math.nan
    revocation_p99_ms: float = math.nan
    notes: list[str] = field(default_factory=list)


def _viewers_argv(
    url: str,
    tokens: Path,
    report: Path,
    *,
    expect: int,
    timeout: float,
    hold: bool,
    stack: str = "aioquic",
    sink: bool = False,
) -> list[str]:
    argv = [
        python(), "-m", "bench._live", "viewers", "--url", url, "--namespace", NAMESPACE,
        "--tokens", str(tokens), "--report", str(report), "--from-group", str(PRIME_GROUPS),
        "--expect", str(expect), "--timeout", str(timeout), "--stack", stack,
    ]  # fmt: skip
    return argv + (["--hold", "60"] if hold else []) + (["--sink"] if sink else [])


def _scrape_all(endpoints: Sequence[str]) -> dict[str, float]:
    """Every worker's /metrics, summed by series."""
    merged: dict[str, float] = {}
    for http in endpoints:
        for key, value in scrape(http).items():
            merged[key] = merged.get(key, 0.0) + value
    return merged


async def _revoke(redis_url: str, tokens: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Revoke each token by jti (20 ms apart); returns jti -> publish time."""
    from mesh.bus import RedisBus
    from mesh.revocation import Revocation, publish_revocation

    bus = RedisBus(redis_url)
    published: dict[str, float] = {}
    try:
        for token in tokens:
            published[token["jti"]] = time.time()
            await publish_revocation(bus, Revocation("jti", token["jti"], float(token["exp"])))
            await asyncio.sleep(0.02)
    finally:
        await bus.close()
    return published


def run_pop_fanout(
    viewers: int,
    *,
    workers: int = 1,
    duration: float = 10.0,
    bitrate: float = 2.5e6,
    fps: float = 30.0,
    group_seconds: float = 2.0,
    per_process: int = 25,
    revoke: int = 20,
    workdir: Path,
    quic_stack: str = "aioquic",
    viewer_stack: str = "aioquic",
    sink: bool = False,
    worker_cpu: float | None = None,
    direct: bool = False,
) -> PopFanoutResult:
    """One fan-out run (see the module docstring); every process is stopped on return.

    ``worker_cpu``: confine each POP worker to that many cores (:mod:`bench._cpu_budget`).
    ``direct``: the viewers subscribe at the origin (the baseline without a POP on the
    path; the POP runs but serves nobody, and nothing is revoked).
    """
    result = PopFanoutResult(
        viewers, workers, bitrate / 1e6, worker_cpu_budget=worker_cpu, direct=direct
    )
    budgets: list[CpuBudget] = []
    tag = f"w{workers}-n{viewers}-{int(bitrate / 1e3)}k{'-direct' if direct else ''}"
    run = NodeGroup(workdir, prefix=f"{tag}-", stop_timeout=5)
    clip_dir = workdir / "clips"
    make_clip(clip_dir, bitrate=bitrate, fps=fps, group_seconds=group_seconds)
    tokens = BenchTokens(workdir)
    origin_port, pop_port = free_port(), free_port()
    expected = int(duration * fps)
    try:
        redis_url = run.start_redis()
        origin = run.start(
            "origin",
            origin_argv(
                quic=f"127.0.0.1:{origin_port}",
                http="127.0.0.1:0",
                redis=redis_url,
                region="local",
                node_id="origin-bench",
                extra=["--quic-stack", quic_stack],
            ),
        )
        pop = run.start(
            "pop",
            pop_argv(
                quic=f"127.0.0.1:{pop_port}",
                http="127.0.0.1:0",
                redis=redis_url,
                region="local",
                node_id="pop-bench",
                jwks=tokens.jwks_path,
                workers=workers,
                extra=["--quic-stack", quic_stack],
            ),
        )
        wait_event(run.log("origin"), "origin_ready", origin, timeout=60)
        ready = wait_event(run.log("pop"), "pop_ready", pop, timeout=60, count=workers)
        pop_http = [str(r["http"]) for r in ready]
        if worker_cpu is not None:
            for index, record in enumerate(ready):
                budget = CpuBudget(f"clutchcall-bench-{tag}-w{index}", worker_cpu)
                budgets.append(budget)
                budget.add(int(record["pid"]))
        publisher = run.start(
            "publisher",
            publisher_argv(
                f"moqt://127.0.0.1:{origin_port}", NAMESPACE, clip_dir, bitrate=bitrate, fps=fps,
                group_seconds=group_seconds, prime_groups=PRIME_GROUPS, duration=duration,
                wait_go=True,
            ),
        )  # fmt: skip
        publisher.wait_line("{", timeout=60 + PRIME_GROUPS * group_seconds)
        wait_event(run.log("origin"), "broadcast_started", origin, timeout=30)
        timeout = duration + 30
        # The probe (directly on the origin) and one warm viewer on the POP: the POP's
        # upstream subscription exists before the idle-viewer memory baseline.
        probe_report = workdir / f"{tag}-probe.json"
        tokens.write(workdir / f"{tag}-probe.tokens.json", INPUT_ID, 1)
        probe = run.start(
            "probe",
            _viewers_argv(
                f"moqt://127.0.0.1:{origin_port}",
                workdir / f"{tag}-probe.tokens.json",
                probe_report,
                expect=expected,
                timeout=timeout,
                hold=False,
                stack=viewer_stack,
            ),
        )
        probe.wait_line("ready", timeout=60)
        if not direct:
            warm_tokens = workdir / f"{tag}-warm.tokens.json"
            tokens.write(warm_tokens, INPUT_ID, 1)
            warm = run.start(
                "warm",
                _viewers_argv(
                    f"moqt://127.0.0.1:{pop_port}",
                    warm_tokens,
                    workdir / f"{tag}-warm.json",
                    expect=expected,
                    timeout=timeout,
                    hold=False,
                    stack=viewer_stack,
                ),
            )
            warm.wait_line("ready", timeout=60)
        time.sleep(1.0)
        rss_before = tree_rss(pop.pid)
        groups: list[tuple[Proc, Path]] = []
        minted: list[dict[str, Any]] = []
        remaining, index = viewers, 0
        while remaining > 0:
            count = min(per_process, remaining)
            token_file = workdir / f"{tag}-viewers-{index}.tokens.json"
            minted += tokens.write(token_file, INPUT_ID, count)
            report = workdir / f"{tag}-viewers-{index}.json"
            proc = run.start(
                f"viewers-{index}",
                _viewers_argv(
                    f"moqt://127.0.0.1:{origin_port if direct else pop_port}",
                    token_file,
                    report,
                    expect=expected,
                    timeout=timeout,
                    hold=True,
                    stack=viewer_stack,
                    sink=sink,
                ),
            )
            groups.append((proc, report))
            remaining -= count
            index += 1
        for proc, _ in groups:
            proc.wait_line("ready", timeout=120)
        time.sleep(1.0)
        # With N workers each one's first viewer also opens an upstream; direct: no POP viewers.
        if workers == 1 and not direct:
            result.idle_viewer_kib = (tree_rss(pop.pid) - rss_before) / 1024 / viewers
        viewer_pids = [proc.pid for proc, _ in groups]
        serving = origin if direct else pop  # the node the viewers are subscribed at
        cpu_before, wall_before = tree_cpu(serving.pid), time.monotonic()
        throttled_before = sum(b.throttled_seconds() for b in budgets)
        viewers_before = sum(tree_cpu(pid) for pid in viewer_pids)
        metrics_before = _scrape_all(pop_http)
        go_at = time.time()
        publisher.signal(signal.SIGUSR1)
        sent = json.loads(publisher.wait_line("sent", timeout=duration + 60).split(" ", 1)[1])
        cpu_after, wall_after = tree_cpu(serving.pid), time.monotonic()
        result.pop_throttled_s = sum(b.throttled_seconds() for b in budgets) - throttled_before
        viewers_after = sum(tree_cpu(pid) for pid in viewer_pids)
        sent_at = time.time()
        time.sleep(1.2)  # the POP folds its statistics into /metrics every second
        metrics_after = _scrape_all(pop_http)
        for q, attr in ((0.5, "pop_forwarding_p50_ms"), (0.99, "pop_forwarding_p99_ms")):
            seconds = histogram_quantile(
                metrics_before, metrics_after, "clutchcall_object_latency_seconds", q
            )
            setattr(result, attr, seconds * 1000)
        result.sent = sent["objects"]
        for proc, _ in groups:
            if not sink:  # sink viewers count bytes, never objects: they never complete
                proc.wait_line("complete", timeout=timeout + 10)
        probe.wait_line("done", timeout=timeout + 10)
        chosen = [] if direct else minted[: min(revoke, len(minted))]
        published = asyncio.run(_revoke(redis_url, chosen)) if chosen else {}
        time.sleep(1.0)
        reports = []
        for proc, report in groups:
            proc.signal(signal.SIGTERM)
            proc.wait_line("done", timeout=30)
            reports.append(json.loads(report.read_text()))
        probe_data = json.loads(probe_report.read_text())
        _figures(result, probe_data, reports, published, sent, (go_at, sent_at))
        result.pop_cpu_cores = (cpu_after - cpu_before) / max(1e-9, wall_after - wall_before)
        result.viewers_cpu_cores = (viewers_after - viewers_before) / max(
            1e-9, wall_after - wall_before
        )
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
        result.notes.append(f"failed: {exc}")
    finally:
        run.stop()
        for budget in budgets:
            budget.close()
    return result


def _figures(
    result: PopFanoutResult,
    probe: dict[str, Any],
    reports: list[dict[str, Any]],
    published: dict[str, float],
    sent: dict[str, Any],
    window: tuple[float, float],
) -> None:
    """``window``: wall-clock start signal and end of sending; egress counts what the
    viewers received inside it (a saturated POP still delivering later is not egress)."""
    at_probe = {(g, o): r for g, o, r, _ in probe["viewers"][0]["objects"] if g >= PRIME_GROUPS}
    result.origin_hop_p50_ms = percentile(
        [(r - s) * 1000 for g, _, r, s in probe["viewers"][0]["objects"] if g >= PRIME_GROUPS],
        50,
    )
    result.origin_hop_p99_ms = percentile(
        [(r - s) * 1000 for g, _, r, s in probe["viewers"][0]["objects"] if g >= PRIME_GROUPS],
        99,
    )
    pop_hop: list[float] = []
    end_to_end: list[float] = []
    delivered = 0
    in_window = 0
    sink_bytes = 0
    revocations: list[float] = []
    rejected: list[str] = []
    for report in reports:
        for viewer in report["viewers"]:
            if viewer["rejected"]:
                rejected.append(viewer["rejected"])
            delivered += min(viewer["counted"], result.sent)
            sink_bytes += sum(
                n for bucket, n in viewer.get("sink", ()) if window[0] <= bucket / 100 <= window[1]
            )
            for g, o, r, s in viewer["objects"]:
                if g < PRIME_GROUPS:
                    continue
                end_to_end.append((r - s) * 1000)
                in_window += window[0] <= r <= window[1]
                if (g, o) in at_probe:
                    pop_hop.append((r - at_probe[(g, o)]) * 1000)
            if viewer["jti"] in published:
                # picoquic carries no close reason text: the UNAUTHORIZED code says it.
                auth_failed = viewer["closed_reason"] == "auth_failed" or (
                    viewer.get("closed_code") == SessionCloseCode.UNAUTHORIZED
                )
                if viewer["closed_at"] is None or not auth_failed:
                    result.notes.append(
                        f"revoked {viewer['jti']} not closed with auth_failed: "
                        f"{viewer['closed_reason']!r} (code {viewer.get('closed_code')})"
                    )
                else:
                    revocations.append((viewer["closed_at"] - published[viewer["jti"]]) * 1000)
    result.notes += [f"rejected: {r}" for r in sorted(set(rejected))[:3]]
    result.delivered_ratio = delivered / max(1, result.sent * result.viewers)
    result.pop_hop_p50_ms = percentile(pop_hop, 50)
    result.pop_hop_p99_ms = percentile(pop_hop, 99)
    result.end_to_end_p50_ms = percentile(end_to_end, 50)
    result.end_to_end_p99_ms = percentile(end_to_end, 99)
    object_size = sent["bytes"] / max(1, sent["objects"])
    seconds = max(1e-9, window[1] - window[0])
    result.pop_egress_mbit_s = in_window * object_size * 8 / 1e6 / seconds
    if sink_bytes:  # sink viewers: bytes on data streams, headers included
        result.pop_egress_mbit_s = sink_bytes * 8 / 1e6 / seconds
        result.delivered_ratio = sink_bytes / max(1, sent["bytes"] * result.viewers)
    result.revoked = len(revocations)
    result.revocation_p50_ms = percentile(revocations, 50)
    result.revocation_p99_ms = percentile(revocations, 99)


def added_by_pop(via_pop: PopFanoutResult, direct: PopFanoutResult) -> None:
    """What the POP adds: end to end through it minus end to end of the same viewers
    subscribed at the origin (``direct``), at p50 and at p99."""
    via_pop.added_by_pop_p50_ms = via_pop.end_to_end_p50_ms - direct.end_to_end_p50_ms
    via_pop.added_by_pop_p99_ms = via_pop.end_to_end_p99_ms - direct.end_to_end_p99_ms


def format_results(
    results: list[PopFanoutResult], ceiling: float | None, per_core_refs: Sequence[Bulk] = ()
) -> str:
    """The table; with ``per_core_refs`` (picoquic bulk senders measured in the same run)
    the aioquic ratio gives way to the serving node's egress per core against each's."""
    if per_core_refs:
        ratio_head = "egress per core Mbit/s | " + "".join(
            f"% of {ref.stack} per core | " for ref in per_core_refs
        )
    else:
        ratio_head = "% of aioquic ceiling | "
    lines = [
        "| viewers on | workers | N | Mbit/s | delivered | origin hop p50/p99 ms | "
        "viewer - probe p50/p99 ms | in POP (histogram) p50/p99 ms | "
        "end-to-end p50/p99 ms | added by the POP p50/p99 ms | serving node CPU (cores) | "
        f"egress Mbit/s | {ratio_head}KiB per idle viewer | "
        "revocation p50/p99 ms (n) |",
    ]
    lines.append("|---|" + "---:|" * (lines[0].count("|") - 2))
    for r in results:
        if per_core_refs:
            egress_per_core = per_core(r.pop_egress_mbit_s, r.pop_cpu_cores)
            pct = " | ".join(
                [f"{egress_per_core:.1f}"]
                + [percent(egress_per_core, ref.mbit_s_per_core) for ref in per_core_refs]
            )
        else:
            pct = percent(r.pop_egress_mbit_s, ceiling)
        lines.append(
            f"| {'origin' if r.direct else 'POP'} | {r.workers} | {r.viewers} | "
            f"{r.bitrate_mbit_s:.1f} | {100 * r.delivered_ratio:.2f}% | "
            f"{r.origin_hop_p50_ms:.1f}/{r.origin_hop_p99_ms:.1f} | "
            f"{r.pop_hop_p50_ms:.1f}/{r.pop_hop_p99_ms:.1f} | "
            f"{r.pop_forwarding_p50_ms:.1f}/{r.pop_forwarding_p99_ms:.1f} | "
            f"{r.end_to_end_p50_ms:.1f}/{r.end_to_end_p99_ms:.1f} | "
            f"{r.added_by_pop_p50_ms:.1f}/{r.added_by_pop_p99_ms:.1f} | {r.pop_cpu_cores:.2f} | "
            f"{r.pop_egress_mbit_s:.1f} | {pct} | {r.idle_viewer_kib:.0f} | "
            f"{r.revocation_p50_ms:.0f}/{r.revocation_p99_ms:.0f} ({r.revoked}) |"
        )
    notes = [
        f"- w{r.workers} N={r.viewers}{' direct' if r.direct else ''}: {n}"
        for r in results
        for n in r.notes
    ]
    return "\n".join(lines + (["", *notes] if notes else []))


def _run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="clutchcall-pop-fanout-"))
    ceiling, refs = (
        (None, [])
        if args.no_ceiling
        else measure_references(args.ceiling_stack, args.ceiling_megabytes, args.picoquic_bin)
    )
    common = {
        "duration": args.duration,
        "fps": args.fps,
        "group_seconds": args.group_seconds,
        "per_process": args.per_process,
        "workdir": workdir,
        "viewer_stack": args.viewer_stack,
    }
    results: list[PopFanoutResult] = []
    for n in [int(x) for x in args.viewers.split(",") if x]:
        r = run_pop_fanout(
            n,
            workers=args.workers,
            bitrate=args.bitrate,
            revoke=args.revoke,
            quic_stack=args.quic_stack,
            **common,
        )
        runs = [r]
        if not args.no_direct:
            direct = run_pop_fanout(
                n, bitrate=args.bitrate, revoke=0, quic_stack=args.quic_stack, direct=True, **common
            )
            added_by_pop(r, direct)
            runs.append(direct)
        for each in runs:
            results.append(each)
            print(format_results([each], ceiling, refs).splitlines()[2], flush=True)
            for note in each.notes:
                print(f"  {note}", flush=True)
    scaling: list[PopFanoutResult] = []
    if args.scale_viewers:
        for workers in (1, 2):
            # Workers share one port with SO_REUSEPORT: aioquic (see mesh.settings).
            r = run_pop_fanout(
                args.scale_viewers,
                workers=workers,
                bitrate=args.scale_bitrate,
                revoke=0,
                quic_stack="aioquic",
                sink=args.scale_sink,
                worker_cpu=args.worker_cpu,
                **common,
            )
            scaling.append(r)
            print(format_results([r], ceiling, refs).splitlines()[2], flush=True)
    print("\n" + format_results(results + scaling, ceiling, refs))
    ratio = None
    if len(scaling) == 2 and scaling[0].pop_egress_mbit_s > 0:
        ratio = scaling[1].pop_egress_mbit_s / scaling[0].pop_egress_mbit_s
        print(
            f"\n--workers 2 vs 1 at {args.scale_viewers} viewers x "
            f"{args.scale_bitrate / 1e6:.1f} Mbit/s: delivered egress "
            f"{scaling[0].pop_egress_mbit_s:.1f} -> {scaling[1].pop_egress_mbit_s:.1f} Mbit/s "
            f"= {ratio:.2f}x (POP CPU {scaling[0].pop_cpu_cores:.2f} -> "
            f"{scaling[1].pop_cpu_cores:.2f} cores; viewers "
            f"{scaling[0].viewers_cpu_cores:.2f} -> {scaling[1].viewers_cpu_cores:.2f} cores)"
        )
        if args.worker_cpu is not None:
            print(
                f"each worker confined to {args.worker_cpu:.2f} cores; the budget held the "
                f"workers back {scaling[0].pop_throttled_s:.1f} s -> "
                f"{scaling[1].pop_throttled_s:.1f} s in all (saturated when > 0)"
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "ceiling_mbit_s": ceiling,
                    "ceilings": [ref.as_json() for ref in refs],
                    "results": [asdict(r) for r in results],
                    "scaling": [asdict(r) for r in scaling],
                    "workers_ratio": ratio,
                },
                indent=2,
            )
        )
    print(f"logs: {workdir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pop_fanout", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="the whole benchmark")
    run.add_argument("--viewers", default="10,50,100,200", help="viewers per POP, comma-separated")
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--duration", type=float, default=10.0)
    run.add_argument("--bitrate", type=float, default=2.5e6)
    run.add_argument("--fps", type=float, default=30.0)
    run.add_argument("--group-seconds", type=float, default=2.0)
    run.add_argument("--per-process", type=int, default=25, help="viewer connections per process")
    run.add_argument("--revoke", type=int, default=20, help="tokens revoked per run")
    run.add_argument("--scale-viewers", type=int, default=0, help="0: skip the workers scaling")
    run.add_argument("--scale-bitrate", type=float, default=8e6)
    run.add_argument(
        "--scale-sink",
        action="store_true",
        help="scaling viewers count data-stream bytes instead of parsing objects (less load "
        "generator CPU; egress and delivered ratio from bytes, no latency)",
    )
    run.add_argument(
        "--worker-cpu",
        type=float,
        default=None,
        metavar="CORES",
        help="in the workers scaling, confine each POP worker to this many cores (a cgroup "
        "CPU quota; needs root): a core per worker on a host too small to give it one",
    )
    run.add_argument(
        "--quic-stack",
        choices=QUIC_STACKS,
        default="aioquic",
        help="the origin's and POP's QUIC stack (the workers scaling always runs aioquic)",
    )
    run.add_argument(
        "--viewer-stack",
        choices=QUIC_STACKS,
        default="aioquic",
        help="the viewer processes' QUIC stack (the load generator)",
    )
    run.add_argument("--no-ceiling", action="store_true")
    add_reference_arguments(run)
    run.add_argument(
        "--no-direct",
        action="store_true",
        help="skip the baseline runs with the viewers subscribed at the origin (no "
        "'added by the POP' figure)",
    )
    run.add_argument("--json")
    args = parser.parse_args(argv)
    check_reference_arguments(run, args)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
