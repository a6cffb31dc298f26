"""bench._cpu_budget: a cgroup CPU quota stands in for "a core per POP worker"."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from bench._cpu_budget import CpuBudget, CpuBudgetError
from bench._procs import cpu_seconds


def cgroups_usable() -> bool:
    try:
        CpuBudget(f"clutchcall-probe-{uuid.uuid4().hex[:8]}", 0.5).close()
    except CpuBudgetError:
        return False
    return True


def test_a_budget_outside_the_host_is_refused() -> None:
    for cores in (0, -1, 1e6):
        with pytest.raises(CpuBudgetError, match="CPU budget must be"):
            CpuBudget("x", cores)


def test_a_host_without_the_cpu_controller_says_so(tmp_path: Path) -> None:
    with pytest.raises(CpuBudgetError, match="no cgroup cpu controller"):
        CpuBudget("x", 0.5, root=tmp_path)


def test_a_read_only_hierarchy_says_it_needs_root(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    (tmp_path / "cpu" / "x").write_text("a file where the cgroup would go")
    with pytest.raises(CpuBudgetError, match="needs root"):
        CpuBudget("x", 0.5, root=tmp_path)


@pytest.mark.skipif(not cgroups_usable(), reason="needs root and the cgroup cpu controller")
def test_a_busy_process_gets_no_more_than_its_budget() -> None:
    budget = CpuBudget(f"clutchcall-test-{uuid.uuid4().hex[:8]}", 0.2)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        budget.add(spin.pid)
        time.sleep(0.2)
        before, start = cpu_seconds(spin.pid), time.monotonic()
        time.sleep(1.5)
        used = (cpu_seconds(spin.pid) - before) / (time.monotonic() - start)
        # Unconfined it would take a whole core; CFS grants 0.2 per 100 ms period.
        assert used < 0.4, used
        assert budget.throttled_seconds() > 0
        with pytest.raises(CpuBudgetError, match="cannot move pid"):
            budget.add(2**22 + 7)  # no such process
    finally:
        spin.kill()
        spin.wait()
        budget.close()
    assert not budget.path.exists()
