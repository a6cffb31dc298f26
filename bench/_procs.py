"""Process helpers for benchmarks: start, wait for a ready line, read CPU and memory."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CpuSample",
    "HostCpu",
    "Proc",
    "cpu_seconds",
    "free_port",
    "percentile",
    "rss_bytes",
]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of a process (and its reaped children), or of one of its
    threads (``thread``: its id; the process id names the main thread)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``th percentile (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port nothing on 127.0.0.1 uses right now (UDP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class CpuSample:
    wall: float
    cpu: float
    #: The main thread's share of ``cpu``: a Python node's event loop, where the rest is
    #: its QUIC stack's own threads (picoquic's network thread), if any.
    main: float = 0.0

    @classmethod
    def of(cls, pid: int) -> CpuSample:
        return cls(time.monotonic(), cpu_seconds(pid), cpu_seconds(pid, pid))

    def utilisation_since(self, earlier: CpuSample) -> float:
        """CPU cores used on average between two samples (1.0 = one core)."""
        return (self.cpu - earlier.cpu) / max(1e-9, self.wall - earlier.wall)

    def main_utilisation_since(self, earlier: CpuSample) -> float:
        """The main thread's cores between two samples."""
        return (self.main - earlier.main) / max(1e-9, self.wall - earlier.wall)


@dataclass(frozen=True)
class HostCpu:
    """The whole host's CPU time so far (every CPU, every process), from ``/proc/stat``."""

    busy: float  # seconds not idle (iowait counts as idle)
    total: float

    @classmethod
    def sample(cls, stat: str | None = None) -> HostCpu:
        """``stat``: the text of ``/proc/stat`` (read now when None)."""
        text = Path("/proc/stat").read_text() if stat is None else stat
        # cpu  user nice system idle iowait irq softirq steal guest guest_nice (ticks);
        # guest time is already counted in user and nice.
        ticks = [int(x) for x in text.splitlines()[0].split()[1:9]]
        idle = ticks[3] + ticks[4]
        return cls((sum(ticks) - idle) / _TICKS, sum(ticks) / _TICKS)

    def busy_since(self, earlier: HostCpu) -> float:
        """The share of the host's CPU time that was busy between two samples (0..1)."""
        total = self.total - earlier.total
        return (self.busy - earlier.busy) / total if total > 0 else math.nan


class Proc:
    """A child process whose stdout lines we read; killed on exit whatever happens."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: dict[str, str] | None = None,
        stderr_path: Path | None = None,
    ):
        self.name = name
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        self.popen = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_line(self, prefix: str, timeout: float = 30.0) -> str:
        """Block until a stdout line starting with ``prefix`` (raises if the process ends)."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.popen.stdout.fileno(), True)
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.popen.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no {prefix!r} line within {timeout}s")
                if not sel.select(left):
                    continue
                line = self.popen.stdout.readline()
                if not line:
                    self.popen.wait()
                    raise self.exited(f"before {prefix!r}")
                if line.startswith(prefix):
                    return line.strip()

    def exited(self, when: str = "") -> RuntimeError:
        """The error for a child that ended when it should not have: its exit status and
        the last lines of its stderr, where it said why (a refused argument, a port in use)."""
        said = ""
        if self.stderr_path is not None:
            try:
                lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
            except OSError:
                lines = []
            said = " | ".join(lines[-3:])[-600:]
        status = " ".join(filter(None, (f"{self.name} exited with {self.popen.returncode}", when)))
        return RuntimeError(f"{status}: {said}" if said else status)

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()  # type: ignore[union-attr]
        return self.popen.returncode

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def python() -> str:
    return sys.executable
