"""Give processes a fixed CPU budget with the Linux cgroup ``cpu`` controller.

The workers-scaling benchmark asks whether a second POP worker doubles what the
POP can serve. That needs a core per worker that nothing else competes for; on a
small host the load generator takes the spare core first. Confining each worker
to the same budget (say 0.4 of a core, as CFS bandwidth: ``quota / period``)
stands in for "one core each" and leaves the rest of the machine to the viewers,
the origin and the publisher, so the ratio measures the POP, not the host.

Both cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us``) hierarchies work; it
needs root (or a delegated cgroup). :class:`CpuBudgetError` says why not.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

__all__ = ["CpuBudget", "CpuBudgetError"]

_ROOT = Path("/sys/fs/cgroup")
_PERIOD_US = 100_000


class CpuBudgetError(RuntimeError):
    """The cgroup could not be created or the process could not be moved into it."""


class CpuBudget:
    """One cgroup with a CPU quota of ``cores``; :meth:`add` moves a process in.

    All threads of an added process share the budget (picoquic's network thread
    included). :meth:`close` removes the cgroup once its processes have exited.
    """

    def __init__(self, name: str, cores: float, *, root: Path = _ROOT) -> None:
        if not 0 < cores <= (os.cpu_count() or 1):
            raise CpuBudgetError(
                f"a CPU budget must be in (0, {os.cpu_count()}] cores, not {cores}"
            )
        self.cores = cores
        quota = max(1000, round(cores * _PERIOD_US))
        if (root / "cgroup.controllers").exists():  # v2: one unified hierarchy
            self.path = root / name
            limits = {"cpu.max": f"{quota} {_PERIOD_US}"}
        elif (root / "cpu" / "cpu.cfs_quota_us").exists():  # v1: the cpu controller's own
            self.path = root / "cpu" / name
            limits = {"cpu.cfs_period_us": str(_PERIOD_US), "cpu.cfs_quota_us": str(quota)}
        else:
            raise CpuBudgetError(f"no cgroup cpu controller under {root}")
        try:
            self.path.mkdir(exist_ok=True)
            for file, value in limits.items():
                (self.path / file).write_text(value)
        except OSError as exc:
            raise CpuBudgetError(
                f"cannot set a CPU budget in {self.path} ({exc.strerror}); it needs root "
                "or a delegated cgroup with the cpu controller"
            ) from exc

    def add(self, pid: int) -> None:
        """Move process ``pid`` (every thread of it) into the budget."""
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            raise CpuBudgetError(f"cannot move pid {pid} into {self.path}: {exc.strerror}") from exc

    def throttled_seconds(self) -> float:
        """How long the quota held the processes back (both hierarchies report it)."""
        with contextlib.suppress(OSError):
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "throttled_usec":
                    return int(value) / 1e6
                if key == "throttled_time":  # v1, nanoseconds
                    return int(value) / 1e9
        return float("nan")

    def close(self, timeout: float = 5.0) -> None:
        """Remove the cgroup; waits up to ``timeout`` for its processes to exit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return  # still busy: left for the next run (mkdir exist_ok)
                time.sleep(0.1)
