"""``clutchcall demo`` (what ``make demo`` runs) shows a stream flowing."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_prints_objects_flowing_through_the_relay() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--seconds", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rates = [int(m) for m in re.findall(r"^\s+(\d+) objects/s", out, re.MULTILINE)]
    assert len(rates) >= 2, out
    assert max(rates) >= 25, out  # 30 objects/s published
    assert "subscribed to demo/synthetic/video" in out


def test_cli_without_a_command_prints_help_and_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "relay" in result.stderr
