"""A short atheris run of every fuzz target: its committed corpus plus 2,000 new inputs.

Each target runs in its own process (atheris owns the process) and must end with
libFuzzer's "Done": any exception other than the target's typed errors is a crash
and fails the test with the traceback and the crashing input's path.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fuzz import CORPUS_ROOT, TARGETS

NEW_INPUTS = 2_000


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_target_short_run(target: str, tmp_path: Path) -> None:
    corpus = CORPUS_ROOT / target
    seeds = [p for p in corpus.iterdir() if p.is_file()]
    assert seeds, f"no committed corpus for {target}"
    runs = len(seeds) + NEW_INPUTS
    cmd = [sys.executable, "-m", "bench.fuzz", target, "--runs", str(runs)]
    cmd += ["--corpus", str(tmp_path / "new"), "--artifacts", str(tmp_path)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[2]
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    executed = re.search(r"stat::number_of_executed_units: (\d+)", out)
    assert executed is not None, out[-3000:]
    assert int(executed.group(1)) >= runs
    assert not list(tmp_path.glob("crash-*"))
