"""The fan-out harness runs end to end (a smoke run; the figures live in bench/RESULTS.md).

Through our relay and through aiomoqt's moq_interop_relay, our publisher and
subscriber processes exchange every object: the latter is also our client
interoperating with an independent relay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fanout import FanoutResult, compare_with_peer, run_fanout

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("relay", ["ours", "ours-picoquic@cubic", "aiomoqt"])
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
    # The event loop's thread is part of the relay's CPU, never more than all of it.
    assert 0 < result.relay_loop_cores <= result.relay_cpu_cores + 0.02
    # The load generator's CPU and the host's are measured over the same window.
    assert result.viewers_cpu_cores > 0
    assert 0 < result.host_busy <= 1


def test_ours_is_the_relay_on_aioquic_and_a_controller_goes_with_picoquic(tmp_path: Path) -> None:
    from bench.fanout import _relay_command

    assert _relay_command("ours", 1, 2, tmp_path)[-2:] == ["--quic-stack", "aioquic"]
    picoquic = _relay_command("ours-picoquic@bbr1", 1, 2, tmp_path)
    assert picoquic[-4:] == ["--quic-stack", "picoquic", "--quic-congestion-control", "bbr1"]
    with pytest.raises(ValueError, match="goes with ours-picoquic"):
        _relay_command("ours@bbr1", 1, 2, tmp_path)


def test_the_peer_comparison_counts_objects_not_rounded_percentages() -> None:
    def result(relay: str, n: int, missing: int, *notes: str) -> FanoutResult:
        return FanoutResult(relay, n, sent=300, missing=missing, notes=list(notes))

    results = [
        result("ours", 200, 3),  # 99.995%: "100.00%" in the table, still below a peer with 0
        result("aiomoqt", 200, 0),
        result("ours-picoquic", 200, 0),
        result("ours", 10, 0),
        result("aiomoqt", 10, 0, "failed: relay did not start"),
    ]
    assert compare_with_peer(results).splitlines() == [
        "N=200: ours missed 3, aiomoqt missed 0 of 60000: BELOW peer",
        "N=200: ours-picoquic missed 0, aiomoqt missed 0 of 60000: >= peer",
    ]
