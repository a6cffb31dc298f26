"""The fan-out harness runs end to end (a smoke run; the figures live in bench/RESULTS.md).

Through our relay and through aiomoqt's moq_interop_relay, our publisher and
subscriber processes exchange every object: the latter is also our client
interoperating with an independent relay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fanout import run_fanout

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("relay", ["ours", "aiomoqt"])
def test_fanout_delivers_every_object(relay: str, tmp_path: Path) -> None:
    result = run_fanout(
        relay,
        3,
        duration=2.0,
        bitrate=1e6,
        fps=30,
        group_seconds=0.5,
        per_process=2,
        workdir=tmp_path,
    )
    assert not result.notes, result.notes
    assert result.sent == 60
    assert result.delivered_ratio == 1.0
    assert 0 < result.latency_p50_ms < 500
