"""A short viewer swarm through a real origin and POP (figures: bench/RESULTS.md, issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.mesh_scale import run_mesh
from bench.swarm import expected_objects, stamp_of, summarize

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_fifty_swarm_viewers_on_one_pop_get_their_objects(tmp_path: Path) -> None:
    """Origin -> one POP -> 50 light viewers in one process (picoquic), joining late at
    the current group: nearly every object arrives (the margin is wide: a loaded 2-core
    host), the origin sends one copy to the POP and the POP one per viewer."""
    result = run_mesh(
        50, regionals=1, per_regional=0, bitrate=250e3, fps=2, group_seconds=1.0,
        per_process=50, ramp=1.0, window=3.0, workdir=tmp_path,
    )  # fmt: skip
    assert not result.notes, result.notes
    swarm = result.swarm
    assert swarm.viewers == 50 and swarm.joined == 50, swarm.failed[:3]
    assert swarm.delivered_ratio >= 0.98, swarm
    assert swarm.latency_p50_ms < 1000
    assert swarm.unstamped == 0
    origin, pop = result.tiers
    assert (origin.tier, origin.children, pop.tier, pop.children) == ("origin", 1, "regional", 50)
    assert 0.2 < result.ingest_mbit_s < 0.4
    # One copy per child, not one per viewer (that would be 50 at the origin). The nodes
    # fold their counters into /metrics once a second: over a 3 s window that is coarse.
    assert 0.5 < origin.copies_per_child < 2 and 0.5 < pop.copies_per_child < 2


def test_summary_counts_from_each_viewers_start_group() -> None:
    # 10 objects per group, objects 0..59 published; one viewer from group 3, one failed
    report = {
        "rss": 0,
        "unstamped": 0,
        "latency_tenth_ms": [100, 200, 300],
        "viewers": [
            {"start_group": 3, "largest": [3, 4], "counted": 29, "join_ms": 50.0,
             "error": None, "missing": [[5, 9]]},
            {"start_group": None, "largest": None, "counted": 0, "join_ms": None,
             "error": "LookupError: catalog refused", "missing": []},
        ],
    }  # fmt: skip
    assert expected_objects(3, last_seq=59, per_group=10) == 30
    s = summarize([report], last_seq=59, per_group=10)
    assert (s.viewers, s.joined, s.expected, s.counted) == (2, 1, 30, 29)
    assert s.delivered_ratio == pytest.approx(29 / 60)  # the failed viewer counts as 0 of 30
    assert s.worst_viewer_ratio == 0.0 and s.viewers_below_999 == 1
    assert s.latency_p50_ms == pytest.approx(20.0)


def test_stamp_is_read_from_a_prft_box_near_the_head() -> None:
    from bench._live import _PRFT, _ntp

    box = _PRFT.pack(_PRFT.size, b"prft", 1 << 24, 1, _ntp(1_700_000_000.25), 0)
    assert stamp_of(box + b"moof...") == pytest.approx(1_700_000_000.25, abs=1e-6)
    assert stamp_of(b"\x00" * 8 + box) == pytest.approx(1_700_000_000.25, abs=1e-6)
    assert stamp_of(b"no stamp here" * 10) is None
