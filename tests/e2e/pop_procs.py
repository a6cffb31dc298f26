"""Start POP and origin processes for the end-to-end tests and find their ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Fast cluster timing for every process of a test (heartbeat 0.5 s, node TTL 1.5 s).
# The cluster key every node of a test shares (relay links authenticate with it).
FAST_ENV = {
    "CLUTCHCALL_HEARTBEAT_INTERVAL": "0.5",
    "CLUTCHCALL_NODE_TTL": "1.5",
    "CLUTCHCALL_CLUSTER_KEY": "e2e-cluster-key-0123456789abcdef0123456789",
}


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    quic: str = ""
    http: str = ""

    @property
    def port(self) -> int:
        return int(self.quic.rsplit(":", 1)[1])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def terminate(self, within: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(within)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return int(self.process.returncode)

    def lines(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUTCHCALL_")}
    env.update(FAST_ENV)
    env.update(extra or {})
    env["PYTHONPATH"] = str(ROOT)
    return env


def _wait_for(proc: Proc, event: str, within: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in proc.lines():
            if line.get("event") == event:
                return line
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{proc.name} not ready: {proc.log.read_text()[-3000:]}")


def start_pop(
    tmp: Path,
    node_id: str,
    *,
    redis: str,
    jwks: Path,
    region: str = "eu",
    quic: str = "127.0.0.1:0",
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    wait: str = "pop_ready",
) -> Proc:
    log = tmp / f"{node_id}.log"
    args = [
        sys.executable, "-m", "cli.pop", "--quic", quic, "--http", "127.0.0.1:0",
        "--redis", redis, "--region", region, "--node-id", node_id, "--jwks", str(jwks),
        "--linger", "2", "--drain-timeout", "3", *(extra or []),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=_env(env), stdout=out, stderr=out)
    proc = Proc(node_id, process, log)
    ready = _wait_for(proc, wait)
    proc.quic, proc.http = str(ready.get("quic", "")), str(ready.get("http", ""))
    return proc


def start_origin(
    tmp: Path,
    node_id: str,
    *,
    redis: str,
    subs: tuple[str, ...] = ("lv_a",),
    region: str = "eu",
    heartbeat: float = 0.5,
    ttl: float = 1.5,
) -> Proc:
    log = tmp / f"{node_id}.log"
    args = [sys.executable, "-m", "tests.e2e.pop_origin", "--redis", redis, "--node-id", node_id,
            "--region", region, "--heartbeat", str(heartbeat), "--ttl", str(ttl)]  # fmt: skip
    for sub in subs:
        args += ["--sub", sub]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=_env(None), stdout=out, stderr=out)
    proc = Proc(node_id, process, log)
    proc.quic = str(_wait_for(proc, "origin_ready")["quic"])
    return proc


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """Collects started processes and kills whatever is left at the end."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()
