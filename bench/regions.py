"""Three regions on one machine: an origin region and two POP regions, with real path delays.

    sudo python -m bench.regions up                  # build it, print addresses + a viewer command per region, wait
    sudo python -m bench.regions run --viewers 5     # build it, measure, print the figures

Each region is a network namespace (:mod:`bench.netlab`); the POP regions are
joined to the origin region by veth links. The origin region runs Redis, an
origin (``clutchcall origin``) and a publisher (:mod:`bench._live`: stamped
H.264 CMAF, one group per GOP); each POP region runs a POP (``clutchcall pop``)
and the viewer processes. This kernel has no netem, so every inter-region path
goes through an impairment proxy of ours (:mod:`bench.impair`) running in the
POP region: by default 30 ms RTT to ``eu`` and 80 ms RTT to ``ap``, each with a
little jitter, optional loss.

The origin advertises ``origin.lab:4443`` and every region resolves that name
through its own ``/etc/hosts`` (``ip netns exec`` mounts ``/etc/netns/<ns>/hosts``):
to the origin itself in the origin region, to the local end of the proxy in a
POP region, so a POP reaches the origin only through its path's impairment.
Redis (control plane, never media) is reached directly over the veth.

:func:`measure` shows what issue 3 asks of the mesh: late joiners start at
object 0 of the current group (never an older group), latency is about the
path plus at most one group, and the origin sends each group once per POP,
not once per viewer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moqt.aio import QUIC_STACKS

from ._live import make_clip
from ._nodes import metric, node_env, origin_argv, parse_metrics, pop_argv, wait_event
from ._procs import Proc, percentile, python
from ._tokens import BenchTokens
from .netlab import NetLab

__all__ = [
    "ORIGIN_REGION",
    "JoinFigures",
    "MeshResult",
    "PathSpec",
    "RegionMesh",
    "RegionResult",
    "ViewerGroup",
    "format_result",
    "join_figures",
    "measure",
    "three_region_mesh",
]

ORIGIN_REGION = "us"
ORIGIN_NAME = "origin.lab"
QUIC_PORT = 4443  # origin (and the proxies in front of it, one per POP region)
POP_PORT = 5443
HTTP_PORT = 9090
REDIS_PORT = 6379
INPUT_ID = "lv_regions"
NAMESPACE = f"stream/org_dev/{INPUT_ID}"


@dataclass(frozen=True, slots=True)
class PathSpec:
    """The path from a POP region to the origin region (the proxy splits the RTT evenly)."""

    region: str
    rtt_ms: float
    jitter_ms: float = 1.0
    loss: float = 0.0

    @property
    def one_way(self) -> float:
        return self.rtt_ms / 2000


DEFAULT_PATHS = (PathSpec("eu", 30.0, 1.0), PathSpec("ap", 80.0, 2.0))


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run this thread inside a network namespace (sockets opened here stay in it)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        os.setns(target, os.CLONE_NEWNET)
        try:
            yield
        finally:
            os.setns(own, os.CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(target)


@dataclass
class ViewerGroup:
    """One ``bench._live viewers`` process in a region."""

    region: str
    proc: Proc
    report: Path
    started: float

    def finish(self, timeout: float = 30.0) -> dict[str, Any]:
        self.proc.signal(signal.SIGTERM)
        self.proc.wait_line("done", timeout=timeout)
        self.proc.stop()
        data: dict[str, Any] = json.loads(self.report.read_text())
        return data


@dataclass
class RegionMesh:
    """What :func:`three_region_mesh` built; methods run things in a region."""

    lab: NetLab
    workdir: Path
    paths: tuple[PathSpec, ...]
    tokens: BenchTokens
    group_seconds: float
    bitrate: float
    fps: float
    t0: float = 0.0  # wall-clock due time of the publisher's object 0
    procs: list[Proc] = field(default_factory=list)
    _viewer_groups: int = 0

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(p.region for p in self.paths)

    def path(self, region: str) -> PathSpec:
        return next(p for p in self.paths if p.region == region)

    def start(self, region: str, name: str, argv: Sequence[str]) -> Proc:
        proc = Proc(
            self.lab.argv(region, argv),
            name=name,
            env=node_env(),
            stderr_path=self.workdir / f"{name}.log",
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def scrape(self, region: str) -> dict[str, float]:
        """``/metrics`` of the region's node (origin or POP), read inside its namespace."""
        import urllib.request

        with inside(self.lab.ns(region)):
            url = f"http://127.0.0.1:{HTTP_PORT}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                return parse_metrics(response.read().decode())

    def current_group(self, at: float | None = None) -> int:
        return int(((time.time() if at is None else at) - self.t0) // self.group_seconds)

    def wait_group_phase(self, phase: float) -> None:
        """Sleep until ``phase`` (0..1) of the way into a group."""
        into = ((time.time() - self.t0) / self.group_seconds) % 1.0
        time.sleep(((phase - into) % 1.0) * self.group_seconds)

    def viewers(self, region: str, count: int, *, timeout: float = 120.0) -> ViewerGroup:
        """Start ``count`` late-joining viewers on the region's POP; returns once subscribed."""
        self._viewer_groups += 1
        name = f"viewers-{region}-{self._viewer_groups}"
        tokens = self.workdir / f"{name}.tokens.json"
        self.tokens.write(tokens, INPUT_ID, count)
        report = self.workdir / f"{name}.json"
        started = time.time()
        proc = self.start(
            region,
            name,
            [
                python(), "-m", "bench._live", "viewers", "--url", f"moqt://127.0.0.1:{POP_PORT}",
                "--namespace", NAMESPACE, "--tokens", str(tokens), "--report", str(report),
                "--join", "--timeout", str(timeout),
            ],
        )  # fmt: skip
        proc.wait_line("ready", timeout=60)
        return ViewerGroup(region, proc, report, started)


@contextlib.contextmanager
def three_region_mesh(
    workdir: Path | None = None,
    *,
    paths: Sequence[PathSpec] = DEFAULT_PATHS,
    bitrate: float = 1e6,
    fps: float = 30.0,
    group_seconds: float = 1.0,
    seed: int = 1,
    quic_stack: str = "aioquic",
) -> Iterator[RegionMesh]:
    """Build the regions, start Redis, the origin, the proxies, the POPs and the publisher.

    Yields once the publisher is live at the origin and every POP serves; on exit
    every process is stopped and the namespaces are removed (also after a failure).
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="clutchcall-regions-"))
    regions = [p.region for p in paths]
    if ORIGIN_REGION in regions or len(set(regions)) != len(regions):
        raise ValueError(f"POP regions must be distinct and not {ORIGIN_REGION!r}")
    clip_dir = workdir / "clips"
    make_clip(clip_dir, bitrate=bitrate, fps=fps, group_seconds=group_seconds)
    lab = NetLab([ORIGIN_REGION, *regions], [(ORIGIN_REGION, r) for r in regions])
    with lab:
        hosts = {ORIGIN_REGION: {ORIGIN_NAME: "127.0.0.1"}}
        for region in regions:
            hosts[region] = {ORIGIN_NAME: lab.address(region, ORIGIN_REGION)}
        lab.set_hosts(hosts)
        mesh = RegionMesh(
            lab, workdir, tuple(paths), BenchTokens(workdir), group_seconds, bitrate, fps
        )
        try:
            _start_nodes(mesh, clip_dir, fps=fps, seed=seed, quic_stack=quic_stack)
            yield mesh
        finally:
            for proc in reversed(mesh.procs):
                proc.stop(timeout=5)


def _start_nodes(
    mesh: RegionMesh, clip_dir: Path, *, fps: float, seed: int, quic_stack: str = "aioquic"
) -> None:
    lab = mesh.lab
    redis = mesh.start(
        ORIGIN_REGION,
        "redis",
        ["redis-server", "--bind", "0.0.0.0", "--port", str(REDIS_PORT), "--save", "",
         "--appendonly", "no", "--protected-mode", "no", "--dir", str(mesh.workdir)],
    )  # fmt: skip
    origin = mesh.start(
        ORIGIN_REGION,
        "origin",
        origin_argv(
            quic=f"0.0.0.0:{QUIC_PORT}",
            http=f"127.0.0.1:{HTTP_PORT}",
            redis=f"redis://127.0.0.1:{REDIS_PORT}/0",
            region=ORIGIN_REGION,
            node_id="origin-us",
            advertise=f"{ORIGIN_NAME}:{QUIC_PORT}",
            extra=["--quic-stack", quic_stack],
        ),
    )
    pops: list[tuple[str, Proc]] = []
    for i, path in enumerate(mesh.paths):
        local = lab.address(path.region, ORIGIN_REGION)
        remote = lab.address(ORIGIN_REGION, path.region)
        proxy = mesh.start(
            path.region,
            f"proxy-{path.region}",
            [
                python(), "-m", "bench.impair", "--listen", f"{local}:{QUIC_PORT}",
                "--upstream", f"{remote}:{QUIC_PORT}", "--delay-ms", str(path.rtt_ms / 2),
                "--jitter-ms", str(path.jitter_ms), "--loss", str(path.loss),
                "--seed", str(seed + i),
            ],
        )  # fmt: skip
        proxy.wait_line("impair:", timeout=30)
        pop = mesh.start(
            path.region,
            f"pop-{path.region}",
            pop_argv(
                quic=f"0.0.0.0:{POP_PORT}",
                http=f"127.0.0.1:{HTTP_PORT}",
                redis=f"redis://{remote}:{REDIS_PORT}/0",
                region=path.region,
                node_id=f"pop-{path.region}",
                jwks=mesh.tokens.jwks_path,
                extra=["--advertise", f"{local}:{POP_PORT}", "--quic-stack", quic_stack],
            ),
        )
        pops.append((path.region, pop))
    del redis  # readiness shows through the nodes' bus_up
    wait_event(mesh.log("origin"), "origin_ready", origin, timeout=60)
    for region, pop in pops:
        wait_event(mesh.log(f"pop-{region}"), "pop_ready", pop, timeout=60)
    publisher = mesh.start(
        ORIGIN_REGION,
        "publisher",
        [
            python(), "-m", "bench._live", "publisher", "--url", f"moqt://127.0.0.1:{QUIC_PORT}",
            "--namespace", NAMESPACE, "--clip-dir", str(clip_dir), "--bitrate", str(mesh.bitrate),
            "--fps", str(fps), "--group-seconds", str(mesh.group_seconds), "--prime-groups", "0",
        ],
    )  # fmt: skip
    primed = json.loads(publisher.wait_line("{", timeout=60))
    mesh.t0 = float(primed["t0"])
    wait_event(mesh.log("origin"), "broadcast_started", origin, timeout=30)


# --- measurement ---------------------------------------------------------------------


@dataclass
class JoinFigures:
    """How the viewers of one process joined: where they started, how soon, how old."""

    viewers: int = 0
    rejected: int = 0
    joined_groups: list[int] = field(default_factory=list)  # publisher's group at subscribe
    answered_groups: list[int] = field(default_factory=list)  # ... when SUBSCRIBE_OK came
    current_groups: list[int] = field(default_factory=list)  # POP's largest group (SUBSCRIBE_OK)
    starts: list[tuple[int, int]] = field(default_factory=list)  # lowest (group, object) held
    older: int = 0  # objects of a group before the POP's current group at subscribe time
    fetches: list[str] = field(default_factory=list)  # joining FETCH outcome per viewer
    ttfo_ms: list[float] = field(default_factory=list)  # subscribe -> first object received
    start_wait_ms: list[float] = field(default_factory=list)  # subscribe -> start object received
    start_age_ms: list[float] = field(default_factory=list)  # start object: receive - send
    # receive - send of the objects after the start group published once the viewer was
    # live: answered, and holding what it received of its start group (see join_figures)
    steady_p50_ms: float = math.nan
    steady_p99_ms: float = math.nan
    start_holes: int = 0  # objects missing in the start group (after the start object)
    gaps: int = 0  # objects missing after the start group, up to each viewer's last object
    # Missing objects that were on their way when the viewer stopped (see _holes): on a
    # lossy path the tail of a group can still be in QUIC recovery while the next group
    # arrives. Neither start_holes nor gaps: nothing lost them.
    in_flight: int = 0

    def started_at_group_start(self) -> bool:
        """Every viewer's first object is object 0 of the POP's current group (the group of
        the Largest Location in its SUBSCRIBE_OK), which is the publisher's current group or,
        for the objects still in flight at a group boundary, the one before."""
        return bool(self.starts) and all(
            obj == 0 and group == current and self.current_is_live(i)
            for i, ((group, obj), current) in enumerate(
                zip(self.starts, self.current_groups, strict=True)
            )
        )

    def current_is_live(self, i: int) -> bool:
        """Viewer ``i``'s POP current group was the publisher's between its SUBSCRIBE (less
        one, for objects in flight at a boundary) and the SUBSCRIBE_OK."""
        return self.joined_groups[i] - 1 <= self.current_groups[i] <= self.answered_groups[i]


#: A missing object behind the last one received on a stream still open at the stop counts
#: as in flight only if the publisher sent it less than this long before the stop; a stream
#: stalled longer has lost it for the viewer (relay links skip groups 2 s stale).
IN_FLIGHT_LIMIT = 5.0


def _holes(
    objects: list[Any],
    streams: list[list[Any]] | None,
    per_group: int,
    young: Callable[[int, int], bool],
) -> tuple[int, int, int]:
    """One viewer's missing objects, sorted ``objects`` from its start object on:
    (in the start group, after it, in flight at the stop).

    Counted up to the viewer's last object: the start group to its end once a later group
    began, later groups whole, the last one up to its last object. QUIC delivers a stream
    in order, so an object missing *before* one received in its group is lost (a relay
    skipped or reset it). One missing *behind* the last object received is lost if the
    group's stream ended (FIN or reset, or none opened), but was in flight if the stream
    was still open when the viewer stopped and ``young(group, object)`` (see
    IN_FLIGHT_LIMIT). A report without ``streams`` counts every missing object as lost."""
    open_groups = {int(group) for group, outcome in streams or () if outcome == "open"}
    held: dict[int, set[int]] = {}
    for group, obj, _, _ in objects:
        held.setdefault(group, set()).add(obj)
    (start_group, start_object), (last_group, last_object) = objects[0][:2], objects[-1][:2]
    counts = [0, 0, 0]  # start group, after it, in flight
    for group in range(start_group, last_group + 1):
        have = held.get(group, set())
        first = start_object if group == start_group else 0
        end = per_group if group < last_group else last_object + 1
        top = max(have, default=first - 1)
        for obj in range(first, end):
            if obj in have:
                continue
            if obj > top and group in open_groups and young(group, obj):
                counts[2] += 1
            else:
                counts[0 if group == start_group else 1] += 1
    return counts[0], counts[1], counts[2]


def join_figures(
    report: dict[str, Any], *, t0: float, group_seconds: float, fps: float
) -> JoinFigures:
    """Figures of one ``bench._live viewers`` report; the publisher's object 0 was due at ``t0``.

    Holes are counted up to each viewer's last object; the tail of a group whose stream was
    still open at the stop (a report's ``streams``) is ``in_flight``, not a hole."""
    out = JoinFigures()
    per_group = max(1, round(group_seconds * fps))
    steady: list[float] = []
    stopped = report.get("stopped_at")

    def young(group: int, obj: int) -> bool:
        sent = t0 + (group * per_group + obj) / fps  # the publisher's schedule
        return stopped is None or sent >= stopped - IN_FLIGHT_LIMIT

    for viewer in report["viewers"]:
        out.viewers += 1
        if viewer["rejected"] is not None or not viewer["objects"]:
            out.rejected += 1
            continue
        subscribed = viewer["subscribed_at"]
        joined = int((subscribed - t0) // group_seconds)
        objects = sorted(viewer["objects"])  # by (group, object)
        first_arrival = min(o[2] for o in objects)
        group, obj, received, sent = objects[0]
        current = viewer["largest"][0] if viewer["largest"] else joined
        out.joined_groups.append(joined)
        out.answered_groups.append(int((viewer["answered_at"] - t0) // group_seconds))
        out.current_groups.append(current)
        out.starts.append((group, obj))
        out.fetches.append(viewer["fetch"])
        out.older += sum(1 for o in objects if o[0] < current)
        out.ttfo_ms.append((first_arrival - subscribed) * 1000)
        out.start_wait_ms.append((received - subscribed) * 1000)
        out.start_age_ms.append((received - sent) * 1000)
        # Steady state starts once the viewer has caught up: objects the publisher sent
        # before its SUBSCRIBE_OK, or while its start group was still arriving, queued
        # behind the join (a cold POP answering across a group boundary starts its viewers
        # in the group before: the next group's head is then catch-up, not live).
        live_from = max(viewer["answered_at"], max(r for g, _, r, _ in objects if g == group))
        steady += [(r - s) * 1000 for g, _, r, s in objects if g > group and s >= live_from]
        in_start, after, in_flight = _holes(objects, viewer.get("streams"), per_group, young)
        out.start_holes += in_start
        out.gaps += after
        out.in_flight += in_flight
    out.steady_p50_ms = percentile(steady, 50)
    out.steady_p99_ms = percentile(steady, 99)
    return out


@dataclass
class RegionResult:
    region: str
    rtt_ms: float
    viewers: int
    cold: JoinFigures
    late: JoinFigures
    pop_upstream_subscriptions: float
    pop_egress_ratio: float  # POP payload bytes out / stream bitrate
    pop_drops: dict[str, float] = field(default_factory=dict)  # clutchcall_drops_total by reason


@dataclass
class MeshResult:
    group_seconds: float
    bitrate_mbit_s: float
    viewers_per_pop: int
    origin_egress_ratio: float  # origin payload bytes out / stream bitrate (2 POPs -> ~2)
    origin_subscriptions: float
    regions: list[RegionResult]
    origin_drops: dict[str, float] = field(default_factory=dict)


def measure(mesh: RegionMesh, viewers: int = 5, window: float = 6.0) -> MeshResult:
    """Cold viewers on every POP, the origin's egress over ``window``, then late joiners."""
    cold_groups: dict[str, ViewerGroup] = {}
    # Viewers join a stream that has been running (not its very first group).
    time.sleep(max(0.0, mesh.t0 + 2 * mesh.group_seconds - time.time()))
    mesh.wait_group_phase(0.4)  # join mid-group: the current group's first objects are gone by
    for region in mesh.regions:
        cold_groups[region] = mesh.viewers(region, viewers)
    time.sleep(1.5 * mesh.group_seconds)
    before = {r: mesh.scrape(r) for r in (ORIGIN_REGION, *mesh.regions)}
    t_before = time.monotonic()
    time.sleep(window)
    after = {r: mesh.scrape(r) for r in (ORIGIN_REGION, *mesh.regions)}
    elapsed = time.monotonic() - t_before

    def rate(region: str) -> float:
        name = "clutchcall_bytes_out_total"
        delta = metric(after[region], name) - metric(before[region], name)
        return delta * 8 / elapsed / mesh.bitrate

    mesh.wait_group_phase(0.5)
    late_groups = {region: mesh.viewers(region, 2) for region in mesh.regions}
    time.sleep(1.5 * mesh.group_seconds)
    final = {r: mesh.scrape(r) for r in (ORIGIN_REGION, *mesh.regions)}
    results = []
    for path in mesh.paths:
        region = path.region
        timing = {"t0": mesh.t0, "group_seconds": mesh.group_seconds, "fps": mesh.fps}
        late = join_figures(late_groups[region].finish(), **timing)
        cold = join_figures(cold_groups[region].finish(), **timing)
        results.append(
            RegionResult(
                region,
                path.rtt_ms,
                viewers,
                cold,
                late,
                metric(after[region], "clutchcall_upstream_subscriptions"),
                rate(region),
                _drops(final[region]),
            )
        )
    return MeshResult(
        mesh.group_seconds,
        mesh.bitrate / 1e6,
        viewers,
        rate(ORIGIN_REGION),
        metric(after[ORIGIN_REGION], "clutchcall_subscriptions"),
        results,
        _drops(final[ORIGIN_REGION]),
    )


_RELAY_DROPS = re.compile(r"clutchcall_(?:origin|pop)_relay_(?:drops|discarded)_([a-z_]+)$")


def _drops(values: dict[str, float]) -> dict[str, float]:
    """Non-zero drops by reason: ``clutchcall_drops_total``, or the relay's own statistics
    (``clutchcall_<role>_relay_drops_<reason>``) where the node does not fold them into it,
    and the objects its schedulers discarded because a stream was cancelled (the upstream
    reset it, the viewer stopped it: ``..._relay_discarded_cancelled``, as ``cancelled``)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        reason = None
        if key.startswith("clutchcall_drops_total{"):
            reason = key.split('reason="', 1)[1].split('"', 1)[0]
        elif (match := _RELAY_DROPS.match(key)) is not None:
            reason = match.group(1)
        if reason is not None and value:
            out[reason] = max(out.get(reason, 0.0), value)
    return out


def format_result(result: MeshResult) -> str:
    lines = [
        f"stream {result.bitrate_mbit_s:.2f} Mbit/s, {result.group_seconds:.1f} s groups, "
        f"{result.viewers_per_pop} viewers per POP",
        f"origin egress {result.origin_egress_ratio:.2f} x stream bitrate "
        f"({len(result.regions)} POPs), origin subscriptions {result.origin_subscriptions:.0f}",
        f"drops: origin {result.origin_drops or 0}, "
        + ", ".join(f"{r.region} {r.pop_drops or 0}" for r in result.regions),
        "",
        "| region | RTT ms | joiners | start (group, obj), POP's current group | joining FETCH | "
        "first object ms | start object ms max | start object age ms max | "
        "steady latency ms p50/p99 | holes in start group / after | in flight at stop | "
        "POP upstream subs | POP egress x bitrate |",
        "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.regions:
        for label, f in (("cold", r.cold), ("late", r.late)):
            starts = sorted(set(zip(f.starts, f.current_groups, strict=True)))
            fetches = ",".join(sorted(set(f.fetches)))
            lines.append(
                f"| {r.region} | {r.rtt_ms:.0f} | {label} x{f.viewers} | {starts} | {fetches} | "
                f"{percentile(f.ttfo_ms, 50):.0f} | {max(f.start_wait_ms, default=math.nan):.0f} | "
                f"{max(f.start_age_ms, default=math.nan):.0f} | "
                f"{f.steady_p50_ms:.1f}/{f.steady_p99_ms:.1f} | {f.start_holes}/{f.gaps} | "
                f"{f.in_flight} | "
                f"{r.pop_upstream_subscriptions:.0f} | {r.pop_egress_ratio:.2f} |"
            )
    return "\n".join(lines)


def _paths(args: argparse.Namespace) -> tuple[PathSpec, ...]:
    return (
        PathSpec("eu", args.eu_rtt, args.jitter, args.loss),
        PathSpec("ap", args.ap_rtt, args.jitter, args.loss),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.regions", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("up", "run"):
        p = sub.add_parser(name)
        p.add_argument("--eu-rtt", type=float, default=30.0, help="ms")
        p.add_argument("--ap-rtt", type=float, default=80.0, help="ms")
        p.add_argument("--jitter", type=float, default=1.0, help="ms, each direction")
        p.add_argument("--loss", type=float, default=0.0, help="per datagram, each direction")
        p.add_argument("--bitrate", type=float, default=1e6)
        p.add_argument("--group-seconds", type=float, default=1.0)
        if name == "run":
            p.add_argument("--viewers", type=int, default=5, help="per POP")
            p.add_argument("--window", type=float, default=6.0)
            p.add_argument("--json")
        p.add_argument(
            "--quic-stack",
            choices=QUIC_STACKS,
            default="aioquic",
            help="the origin's and POPs' QUIC stack",
        )
    args = parser.parse_args(argv)
    from .netlab import netlab_available

    if (reason := netlab_available()) is not None:
        print(f"bench.regions: {reason}", file=sys.stderr)
        return 1
    with three_region_mesh(
        paths=_paths(args),
        bitrate=args.bitrate,
        group_seconds=args.group_seconds,
        quic_stack=args.quic_stack,
    ) as mesh:
        if args.cmd == "up":
            tokens = mesh.workdir / "viewers.tokens.json"
            mesh.tokens.write(tokens, INPUT_ID, 5)
            viewer = [
                python(), "-m", "bench._live", "viewers", "--url", f"moqt://127.0.0.1:{POP_PORT}",
                "--namespace", NAMESPACE, "--tokens", str(tokens), "--join", "--timeout", "10",
            ]  # fmt: skip
            watch = {
                region: " ".join(
                    mesh.lab.argv(region, [*viewer, "--report", f"/tmp/viewers-{region}.json"])
                )
                for region in mesh.regions
            }
            description = {"workdir": str(mesh.workdir), **mesh.lab.describe(), "watch": watch}
            print(json.dumps(description, indent=2))
            print("up; Ctrl-C tears it down", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return 0
        result = measure(mesh, args.viewers, args.window)
        print(format_result(result))
        if args.json:
            Path(args.json).write_text(json.dumps(asdict(result), indent=2))
        print(f"logs: {mesh.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
