"""Origin and POP processes for benchmarks: command lines, a run's processes
(:class:`NodeGroup`), readiness, /metrics, process trees."""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._procs import Proc, cpu_seconds, free_port, python, rss_bytes

__all__ = [
    "ROOT",
    "NodeGroup",
    "histogram_quantile",
    "metric",
    "node_env",
    "origin_argv",
    "parse_metrics",
    "pop_argv",
    "publisher_argv",
    "scrape",
    "tree_cpu",
    "tree_pids",
    "tree_rss",
    "wait_event",
]

ROOT = Path(__file__).resolve().parents[1]
# Fast cluster timing for benches: heartbeat 0.5 s, node TTL 1.5 s.
_FAST = ["--heartbeat-interval", "0.5", "--node-ttl", "1.5", "--log-level", "info"]


# Every node a bench starts shares one cluster key: relay links authenticate with it
# (docs/relay-links.md); without one they would be taken for viewers.
_CLUSTER_KEY = secrets.token_urlsafe(32)


def node_env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "CLUTCHCALL_CLUSTER_KEY": _CLUSTER_KEY}


def origin_argv(
    *,
    quic: str,
    http: str,
    redis: str | None,
    region: str,
    node_id: str,
    advertise: str = "",
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [
        python(), "-m", "cli.origin", "--quic", quic, "--http", http, "--region", region,
        "--node-id", node_id, "--publish-auth", "none", "--rtmp", "", *_FAST, *extra,
    ]  # fmt: skip
    if redis:
        argv += ["--redis", redis]
    if advertise:
        argv += ["--advertise", advertise]
    return argv


def pop_argv(
    *,
    quic: str,
    http: str,
    redis: str,
    region: str,
    node_id: str,
    jwks: Path,
    workers: int = 1,
    linger: float = 5.0,
    extra: Sequence[str] = (),
) -> list[str]:
    return [
        python(), "-m", "cli.pop", "--quic", quic, "--http", http, "--redis", redis,
        "--region", region, "--node-id", node_id, "--jwks", str(jwks),
        "--workers", str(workers), "--linger", str(linger), "--drain-timeout", "2", *_FAST,
        *extra,
    ]  # fmt: skip


def publisher_argv(
    url: str,
    namespace: str,
    clip_dir: Path,
    *,
    bitrate: float,
    fps: float,
    group_seconds: float,
    prime_groups: int,
    duration: float = 0.0,
    wait_go: bool = False,
) -> list[str]:
    """The stamped-clip publisher of :mod:`bench._live` (``duration`` 0: until stopped;
    ``wait_go``: it waits for SIGUSR1 after priming)."""
    return [
        python(), "-m", "bench._live", "publisher", "--url", url, "--namespace", namespace,
        "--clip-dir", str(clip_dir), "--bitrate", str(bitrate), "--fps", str(fps),
        "--group-seconds", str(group_seconds), "--prime-groups", str(prime_groups),
        *(["--wait-go"] if wait_go else []), "--duration", str(duration),
    ]  # fmt: skip


class NodeGroup:
    """The processes of one bench run: each started with :func:`node_env`, its stderr in
    ``workdir/<prefix><name>.log``; :meth:`stop` ends them, the last started first."""

    def __init__(self, workdir: Path, *, prefix: str = "", stop_timeout: float = 10.0) -> None:
        self.workdir = workdir
        self.prefix = prefix
        self.stop_timeout = stop_timeout
        self.procs: list[Proc] = []

    def log(self, name: str) -> Path:
        return self.workdir / f"{self.prefix}{name}.log"

    def start(self, name: str, argv: Sequence[str]) -> Proc:
        proc = Proc(argv, name=name, env=node_env(), stderr_path=self.log(name))
        self.procs.append(proc)
        return proc

    def start_redis(self) -> str:
        """``redis-server`` on a free loopback port, without persistence; returns its URL."""
        port = free_port(socket.SOCK_STREAM)
        self.start(
            "redis",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
        )  # fmt: skip
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=self.stop_timeout)


def wait_event(
    log: Path, event: str, proc: Proc, *, timeout: float = 30.0, count: int = 1
) -> list[dict[str, Any]]:
    """Wait until ``proc``'s JSON log (its stderr file) has ``count`` lines with ``event``."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if f'"{event}"' not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == event:
                    found.append(record)
        if len(found) >= count:
            return found
        if proc.popen.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}: {tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.name}: no {event!r} in its log within {timeout}s")
        time.sleep(0.05)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> ``{"name{labels}": value}`` (comments skipped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values


def scrape(http: str, timeout: float = 5.0) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=timeout) as response:
        return parse_metrics(response.read().decode())


def metric(values: dict[str, float], name: str) -> float:
    """Sum of a metric over its label sets (0 when absent)."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def histogram_quantile(
    before: dict[str, float], after: dict[str, float], name: str, q: float
) -> float:
    """Quantile ``q`` (0..1) of a Prometheus histogram's observations between two scrapes,
    interpolated linearly inside a bucket (as PromQL's ``histogram_quantile``), summed over
    scrapes of several processes if the dicts merge them; NaN without observations."""
    buckets: dict[float, float] = {}
    prefix = name + "_bucket{"
    for key, value in after.items():
        if not key.startswith(prefix) or 'le="' not in key:
            continue
        le_text = key.split('le="', 1)[1].split('"', 1)[0]
        le = float("inf") if le_text == "+Inf" else float(le_text)
        buckets[le] = buckets.get(le, 0.0) + value - before.get(key, 0.0)
    if not buckets:
        return float("nan")
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if le == float("inf"):
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its live descendants (POP workers are children of the supervisor)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def tree_rss(pid: int) -> int:
    total = 0
    for p in tree_pids(pid):
        try:
            total += rss_bytes(p)
        except OSError:
            continue
    return total


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree_pids(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
    return total
