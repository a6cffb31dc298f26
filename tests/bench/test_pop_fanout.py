"""The origin -> POP -> viewers harness end to end at a small N (figures: bench/RESULTS.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.pop_fanout import added_by_pop, format_results, run_pop_fanout
from tests.bench.test_cpu_budget import cgroups_usable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_every_viewer_gets_every_object_and_revoked_viewers_are_closed(tmp_path: Path) -> None:
    result = run_pop_fanout(
        4,
        duration=2.0,
        bitrate=5e5,
        fps=30,
        group_seconds=0.5,
        per_process=2,
        revoke=2,
        workdir=tmp_path,
    )
    assert not result.notes, result.notes
    assert result.sent == 60
    assert result.delivered_ratio == 1.0
    assert 0 < result.origin_hop_p50_ms < 200 and 0 < result.pop_hop_p50_ms < 200
    assert result.end_to_end_p50_ms >= result.origin_hop_p50_ms
    assert result.revoked == 2 and result.revocation_p99_ms < 2000
    assert not math.isnan(result.idle_viewer_kib)
    assert 0.3 < result.pop_egress_mbit_s < 5


def test_two_workers_on_one_port_serve_every_viewer(tmp_path: Path) -> None:
    """Each worker in its own CPU budget (the scaling run's --worker-cpu) where the
    host allows cgroups; the load is small enough that the budget never binds."""
    budget = 0.5 if cgroups_usable() else None
    result = run_pop_fanout(
        4, workers=2, duration=2.0, bitrate=5e5, fps=30, group_seconds=0.5, per_process=2,
        revoke=2, workdir=tmp_path, worker_cpu=budget,
    )  # fmt: skip
    assert not result.notes, result.notes
    assert result.worker_cpu_budget == budget
    assert result.delivered_ratio == 1.0 and result.revoked == 2
    assert math.isnan(result.idle_viewer_kib)  # per-worker upstreams would skew it
    assert result.pop_cpu_cores > 0  # the workers' CPU is counted (children of the supervisor)


def test_picoquic_pop_and_viewers_deliver_and_revoke(tmp_path: Path) -> None:
    """Both QUIC stacks on picoquic: every object arrives; revoked viewers are recognised
    by the UNAUTHORIZED code (picoquic carries no close reason text)."""
    result = run_pop_fanout(
        4, duration=2.0, bitrate=5e5, fps=30, group_seconds=0.5, per_process=2, revoke=2,
        workdir=tmp_path, quic_stack="picoquic", viewer_stack="picoquic",
    )  # fmt: skip
    assert not result.notes, result.notes
    assert result.delivered_ratio == 1.0
    assert result.revoked == 2


def test_sink_viewers_measure_egress_from_bytes(tmp_path: Path) -> None:
    """--scale-sink viewers count data-stream bytes: egress and a byte delivered ratio."""
    result = run_pop_fanout(
        4, duration=2.0, bitrate=5e5, fps=30, group_seconds=0.5, per_process=2, revoke=0,
        workdir=tmp_path, viewer_stack="picoquic", sink=True,
    )  # fmt: skip
    assert not result.notes, result.notes
    # stream bytes include the object headers, so slightly above the payload sent
    assert 0.95 <= result.delivered_ratio < 1.2
    assert 1.5 < result.pop_egress_mbit_s < 3
    assert math.isnan(result.pop_hop_p50_ms)  # sink viewers report no objects


def test_direct_run_is_the_baseline_of_what_the_pop_adds(tmp_path: Path) -> None:
    """The same viewers subscribed at the origin: they get everything with no POP on the
    path, and the POP's added latency is end to end through it minus end to end direct."""
    common = {
        "duration": 2.0, "bitrate": 5e5, "fps": 30, "group_seconds": 0.5, "per_process": 2,
        "workdir": tmp_path, "quic_stack": "picoquic", "viewer_stack": "picoquic",
    }  # fmt: skip
    via_pop = run_pop_fanout(4, revoke=0, **common)  # type: ignore[arg-type]
    direct = run_pop_fanout(4, revoke=2, direct=True, **common)  # type: ignore[arg-type]
    assert not via_pop.notes and not direct.notes, (via_pop.notes, direct.notes)
    assert direct.direct and direct.delivered_ratio == 1.0
    assert direct.revoked == 0  # nothing is revoked at an origin
    assert math.isnan(direct.idle_viewer_kib) and math.isnan(direct.pop_forwarding_p50_ms)
    assert direct.pop_cpu_cores > 0  # the origin's CPU: it serves the viewers
    added_by_pop(via_pop, direct)
    assert via_pop.added_by_pop_p99_ms == pytest.approx(
        via_pop.end_to_end_p99_ms - direct.end_to_end_p99_ms
    )
    table = format_results([via_pop, direct], None)
    assert "| origin | 1 | 4 |" in table and "| POP | 1 | 4 |" in table
