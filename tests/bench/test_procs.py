"""The benchmarks' child processes: a child that ends early is reported with its reason."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench._procs import Proc

REFUSES = "import sys; sys.stderr.write('starting\\n--quic-send-quantum is BBR\\'s\\n'); sys.exit(2)"


def test_a_child_that_exits_before_its_line_says_why(tmp_path: Path) -> None:
    proc = Proc([sys.executable, "-c", REFUSES], name="relay", stderr_path=tmp_path / "relay.log")
    try:
        with pytest.raises(RuntimeError) as failure:
            proc.wait_line("ready", timeout=30)
    finally:
        proc.stop()
    message = str(failure.value)
    assert message.startswith("relay exited with 2 before 'ready': ")
    assert message.endswith("starting | --quic-send-quantum is BBR's")


def test_without_a_stderr_file_the_status_alone() -> None:
    proc = Proc([sys.executable, "-c", "raise SystemExit(3)"], name="swarm")
    try:
        with pytest.raises(RuntimeError, match=r"^swarm exited with 3 before 'ready'$"):
            proc.wait_line("ready", timeout=30)
    finally:
        proc.stop()
