"""``clutchcall demo`` (what ``make demo`` runs): the stack, a live test pattern, a viewer."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_publishes_a_test_pattern_that_a_viewer_receives_through_the_pop() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--seconds", "12"],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    # It prints its endpoints and a ready command to watch the broadcast.
    assert re.search(r"^control plane\s+http://127\.0\.0\.1:\d+", out, re.M), out
    assert re.search(r"^viewers \(MoQT\)\s+https://127\.0\.0\.1:\d+", out, re.M), out
    assert re.search(r"^API key\s+ck_\S+", out, re.M), out
    watch = re.search(
        r"clutchcall watch '(https://\S+/stream/org_demo/lv_\w+\?token=[\w.-]+)'", out
    )
    assert watch is not None, out
    # The in-process viewer gets the init segment, then media at the publisher's rate.
    assert "viewer: init segment, rendition video" in out, out
    rates = [float(m) for m in re.findall(r"chunks/s\s+([\d.]+) Mbit/s", out)]
    assert rates and max(rates) > 1.0, out  # ~2.5 Mbit/s of test pattern
    assert "viewer: closed" in out


def test_cli_without_a_command_prints_help_and_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "relay" in result.stderr
