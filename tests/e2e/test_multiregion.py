"""Three regions on one machine (issue 3, "Multi-region on one machine"), with real processes.

An origin region (Redis, ``clutchcall origin``, a publisher of stamped H.264
CMAF: 1 Mbit/s, 30 objects/s, 1 s groups) and two POP regions (``clutchcall
pop`` and viewer processes), each behind our UDP impairment proxy: 30 ms RTT
to ``eu``, 80 ms RTT to ``ap``, 1 ms jitter each way (:mod:`bench.regions`).
Five viewers join each POP mid-group (the POP is cold: no upstream yet), then
two late joiners per POP join mid-group once the POP holds the track.

Measured here (loaded 2-core machine): origin egress 2.07 x the stream bitrate
for 2 POPs x 5 viewers; viewers start at (current group, 0), late joiners get
that whole group in ~10-30 ms from the POP cache, cold-POP viewers in 150-300 ms
(eu) / 330-550 ms (ap), the POP filling its cache by an upstream joining FETCH;
steady latency p50 ~22 ms (eu, one-way 15 ms) and ~48 ms (ap, one-way 40 ms);
a joiner's start object is at most one group + the path old. Every viewer,
cold POP or late joiner, holds its whole start group: on the 80 ms path the
origin often skips the live tail of a cold POP's start group (its answer to the
POP's joining FETCH fills the young connection, the group turns stale behind it)
and the POP fetches that tail again (pop._repair).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.netlab import netlab_available
from bench.regions import MeshResult, RegionResult, format_result, measure, three_region_mesh

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.netns,
    pytest.mark.latency,
    pytest.mark.timeout(90),
    pytest.mark.skipif(netlab_available() is not None, reason=str(netlab_available())),
]

VIEWERS_PER_POP = 5
GROUP_SECONDS = 1.0


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshResult]:
    workdir: Path = tmp_path_factory.mktemp("regions")
    with three_region_mesh(workdir, group_seconds=GROUP_SECONDS, bitrate=1e6) as mesh:
        outcome = measure(mesh, VIEWERS_PER_POP, window=6.0)
    print("\n" + format_result(outcome))
    yield outcome


def _regions(result: MeshResult) -> list[RegionResult]:
    assert [r.region for r in result.regions] == ["eu", "ap"]
    return result.regions


def test_every_viewer_was_admitted_and_missed_no_live_object(result: MeshResult) -> None:
    for r in _regions(result):
        for figures in (r.cold, r.late):
            assert figures.rejected == 0, (r.region, figures)
            assert figures.gaps == 0, (r.region, figures.gaps)


def test_late_joiners_start_at_object_0_of_the_current_group_from_the_pop_cache(
    result: MeshResult,
) -> None:
    for r in _regions(result):
        late = r.late
        assert late.started_at_group_start(), (r.region, late.starts, late.current_groups)
        assert late.older == 0, r.region
        assert late.start_holes == 0, (r.region, late.start_holes)  # the whole group
        assert set(late.fetches) == {"accepted"}, (r.region, late.fetches)
        # From the POP's cache: the group start arrives without a trip to the origin.
        assert max(late.start_wait_ms) < r.rtt_ms + 250, (r.region, late.start_wait_ms)


def test_cold_pop_viewers_start_at_object_0_of_the_current_group(result: MeshResult) -> None:
    for r in _regions(result):
        cold = r.cold
        assert cold.started_at_group_start(), (r.region, cold.starts, cold.current_groups)
        assert cold.older == 0, r.region
        # The whole start group, including its live tail (pop._repair).
        assert cold.start_holes == 0, (r.region, cold.start_holes)
        for (group, _), current in zip(cold.starts, cold.current_groups, strict=True):
            assert current <= group <= current + 1, (r.region, cold.starts, cold.current_groups)
        for i in range(len(cold.current_groups)):
            assert cold.current_is_live(i), (r.region, cold.joined_groups, cold.current_groups)
        # A cold POP must first reach the origin through the path: at least one RTT.
        assert min(cold.ttfo_ms) >= r.rtt_ms, (r.region, cold.ttfo_ms)
        assert max(cold.ttfo_ms) <= 4 * r.rtt_ms + 1500, (r.region, cold.ttfo_ms)


def test_latency_is_about_the_path_plus_at_most_one_group(result: MeshResult) -> None:
    for r in _regions(result):
        one_way = r.rtt_ms / 2
        for figures in (r.cold, r.late):
            # Steady state: the path's one-way delay plus a little relaying, at the median.
            assert one_way - 3 <= figures.steady_p50_ms <= one_way + 60, (r.region, figures)
            # The tail within one group: a relay that held a group back would break it; a
            # second's slowdown of the 80 ms path (the host taking a core: 0.5 s tails in
            # about 1 run in 5 on the 2-core VM, bench/RESULTS.md) does not.
            assert figures.steady_p99_ms <= one_way + GROUP_SECONDS * 1000, (r.region, figures)
        # A late joiner's first frame is at most one group (plus the path) behind live.
        assert max(r.late.start_age_ms) <= GROUP_SECONDS * 1000 + r.rtt_ms + 150, r.late
        assert not math.isnan(r.late.steady_p50_ms)


def test_origin_sends_each_group_once_per_pop_not_once_per_viewer(result: MeshResult) -> None:
    pops = len(result.regions)
    # Per viewer would be 2 x 5 = 10 x the bitrate; metrics tick every second, hence the slack.
    assert 0.75 * pops <= result.origin_egress_ratio <= 1.3 * pops, result.origin_egress_ratio
    assert result.origin_subscriptions == pops
    for r in _regions(result):
        assert r.pop_upstream_subscriptions == 1, r.region
        assert 0.75 * VIEWERS_PER_POP <= r.pop_egress_ratio <= 1.3 * VIEWERS_PER_POP, r
