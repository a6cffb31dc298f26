"""bench.regions' figures from viewer reports (pure; the mesh itself runs in tests/e2e)."""

from __future__ import annotations

from typing import Any

from bench._live import _Viewer
from bench.regions import IN_FLIGHT_LIMIT, JoinFigures, _drops, join_figures
from moqt.events import SubgroupStreamEnded, SubgroupStreamOpened, SubgroupStreamReset

T0 = 1_000.0
TIMING = {"t0": T0, "group_seconds": 1.0, "fps": 10.0}


def viewer(
    subscribed: float,
    objects: list[tuple[int, int]],
    *,
    delay: float = 0.02,
    fetch: str = "accepted",
) -> dict[str, Any]:
    rows = []
    for group, obj in objects:
        sent = T0 + group + obj / 10
        rows.append([group, obj, max(sent, subscribed) + delay, sent])
    largest = [int(subscribed - T0), 4]
    return {
        "rejected": None,
        "subscribed_at": subscribed,
        "answered_at": subscribed + delay,
        "largest": largest,
        "fetch": fetch,
        "objects": rows,
    }


def test_a_viewer_holding_its_group_from_object_0_started_at_the_group_start() -> None:
    joined_mid_group_3 = T0 + 3.45
    objects = [(3, o) for o in range(10)] + [(4, o) for o in range(3)]
    figures = join_figures({"viewers": [viewer(joined_mid_group_3, objects)]}, **TIMING)
    assert figures.started_at_group_start()
    assert figures.starts == [(3, 0)] and figures.joined_groups == figures.current_groups == [3]
    assert figures.gaps == 0 and figures.start_holes == 0
    assert figures.older == 0 and figures.rejected == 0
    # object 0 was sent 0.45 s before the subscription: that is its age at receipt
    assert abs(figures.start_age_ms[0] - 470) < 1
    assert abs(figures.steady_p50_ms - 20) < 1


def test_starting_at_the_live_edge_or_an_older_group_is_told_apart() -> None:
    live_edge = viewer(T0 + 3.45, [(3, o) for o in range(5, 10)])
    older = viewer(T0 + 3.45, [(2, 9)] + [(3, o) for o in range(10)])
    assert not join_figures({"viewers": [live_edge]}, **TIMING).started_at_group_start()
    figures = join_figures({"viewers": [older]}, **TIMING)
    assert figures.older == 1 and not figures.started_at_group_start()


def test_a_group_still_in_flight_at_the_boundary_is_the_current_group() -> None:
    # subscribed 5 ms into group 4 by the publisher's clock; the POP's largest is still 3/9
    late_by_a_hair = viewer(T0 + 4.005, [(3, o) for o in range(10)] + [(4, 0)])
    late_by_a_hair["largest"] = [3, 9]
    figures = join_figures({"viewers": [late_by_a_hair]}, **TIMING)
    assert figures.started_at_group_start() and figures.older == 0
    # but a POP whose current group lags the publisher by two groups is not live
    late_by_a_hair["largest"] = [2, 9]
    late_by_a_hair["objects"] = [[2, o, T0 + 4.01, T0 + 2 + o / 10] for o in range(10)]
    assert not join_figures({"viewers": [late_by_a_hair]}, **TIMING).started_at_group_start()


def test_holes_in_the_start_group_and_after_it_are_counted_apart() -> None:
    # a joining FETCH that delivered 3/0, 3/1, 3/3 only: 3/2 and 3/4..3/9 are missing
    partial_start = viewer(T0 + 3.2, [(3, 0), (3, 1), (3, 3), (4, 0), (4, 1)])
    # live objects lost after the start group: 4/2, 5/0
    live_loss = viewer(T0 + 3.2, [(3, o) for o in range(10)] + [(4, 0), (4, 1), (4, 3)]
                       + [(4, o) for o in range(4, 10)] + [(5, 1)])  # fmt: skip
    rejected = {"rejected": "auth_failed", "subscribed_at": T0, "answered_at": T0,
                "largest": None, "fetch": "none", "objects": []}  # fmt: skip
    figures = join_figures({"viewers": [partial_start]}, **TIMING)
    assert (figures.start_holes, figures.gaps) == (7, 0)
    figures = join_figures({"viewers": [live_loss, rejected]}, **TIMING)
    assert (figures.start_holes, figures.gaps) == (0, 2)
    assert figures.rejected == 1 and figures.viewers == 2


def test_a_group_begun_while_the_pop_subscribed_upstream_is_the_current_group() -> None:
    # a cold POP answers after a few round trips: the publisher moved on to group 3 meanwhile
    cold = viewer(T0 + 2.9, [(3, o) for o in range(10)])
    cold["answered_at"] = T0 + 3.05
    cold["largest"] = [3, 0]
    figures = join_figures({"viewers": [cold]}, **TIMING)
    assert figures.current_is_live(0) and figures.started_at_group_start()


def test_what_a_cold_join_queued_across_a_group_boundary_is_not_steady_latency() -> None:
    # Subscribed late in group 3; the cold POP answers 0.3 s into group 4 with group 3 as
    # its current group, and group 3 arrives whole by T0 + 4.5. Group 4's objects 0..4
    # were published meanwhile and arrive behind it (0.1-0.5 s old); from 4/5 on the
    # viewer is live, 20 ms behind the publisher.
    cold = viewer(T0 + 3.9, [])
    cold["answered_at"] = T0 + 4.3
    cold["largest"] = [3, 9]
    catch_up = [[3, o, T0 + 4.3 + o / 50, T0 + 3 + o / 10] for o in range(10)]
    behind = [[4, o, T0 + 4.5 + o / 100, T0 + 4 + o / 10] for o in range(5)]
    live = [[4, o, T0 + 4 + o / 10 + 0.02, T0 + 4 + o / 10] for o in range(5, 10)]
    cold["objects"] = catch_up + behind + live
    figures = join_figures({"viewers": [cold]}, **TIMING)
    assert figures.started_at_group_start() and figures.gaps == 0
    assert abs(figures.steady_p50_ms - 20) < 1 and abs(figures.steady_p99_ms - 20) < 1


def test_drops_come_from_the_node_counter_or_the_relay_statistics() -> None:
    scraped = {
        'clutchcall_drops_total{reason="stale_group"}': 0.0,
        'clutchcall_drops_total{reason="queue_full"}': 3.0,
        "clutchcall_origin_relay_drops_stale_group": 16.0,
        "clutchcall_origin_relay_drops_queue_full": 3.0,
        "clutchcall_origin_relay_drops_low_priority": 0.0,
        "clutchcall_pop_relay_streams_reset": 2.0,
        "clutchcall_pop_relay_discarded_cancelled": 4.0,
    }
    # An origin that does not fold its relay's drops into clutchcall_drops_total still
    # shows them; a POP that does is not counted twice; cancelled streams show too.
    assert _drops(scraped) == {"stale_group": 16.0, "queue_full": 3.0, "cancelled": 4.0}


def test_a_group_tail_still_on_its_way_at_the_stop_is_in_flight_not_a_hole() -> None:
    # Stopped at 5.3 s: group 5 began, 4/7..4/9 had not come (on a lossy path a group's
    # tail can still be in QUIC recovery while the next group arrives).
    objects = [(3, o) for o in range(10)] + [(4, o) for o in range(7)] + [(5, 0), (5, 1)]

    def figures(streams: list[list[Any]] | None, stopped: float = T0 + 5.3) -> JoinFigures:
        seen = viewer(T0 + 3.05, objects)
        if streams is not None:
            seen["streams"] = streams
        return join_figures({"stopped_at": stopped, "viewers": [seen]}, **TIMING)

    # The stream of group 4 was still open: nothing was lost.
    still_open = figures([[3, "fin"], [4, "open"], [5, "open"]])
    assert (still_open.start_holes, still_open.gaps, still_open.in_flight) == (0, 0, 3)
    # Ended (FIN) or reset short of its end, or no stream outcome in the report: lost.
    for streams in ([[3, "fin"], [4, "reset"], [5, "open"]], [[4, "fin"], [5, "open"]], None):
        lost = figures(streams)
        assert (lost.gaps, lost.in_flight) == (3, 0), streams
    # A stream stalled longer than IN_FLIGHT_LIMIT has lost its tail for the viewer.
    stalled = figures([[4, "open"], [5, "open"]], stopped=T0 + 4.7 + IN_FLIGHT_LIMIT + 0.5)
    assert (stalled.gaps, stalled.in_flight) == (3, 0)


def test_only_the_tail_behind_the_last_object_received_can_be_in_flight() -> None:
    # QUIC delivers a stream in order: 4/2 missing before 4/3 was lost, whatever the stream.
    objects = [(3, o) for o in range(10)] + [(4, 0), (4, 1), (4, 3), (4, 4), (5, 0)]
    seen = viewer(T0 + 3.05, objects)
    seen["streams"] = [[3, "fin"], [4, "open"], [5, "open"]]
    figures = join_figures({"stopped_at": T0 + 5.2, "viewers": [seen]}, **TIMING)
    assert (figures.gaps, figures.in_flight) == (1, 5)
    # the start group's tail too: 3/7..3/9 still coming on its open stream
    start = viewer(T0 + 3.05, [(3, o) for o in range(7)] + [(4, 0)])
    start["streams"] = [[3, "open"], [4, "open"]]
    figures = join_figures({"stopped_at": T0 + 4.2, "viewers": [start]}, **TIMING)
    assert (figures.start_holes, figures.gaps, figures.in_flight) == (0, 0, 3)


def test_the_viewer_report_says_how_each_live_stream_stood() -> None:
    seen = _Viewer(0, "jti", [], set())
    seen.on_stream(SubgroupStreamOpened(1, 3, 7, 0, 128, False))
    seen.on_stream(SubgroupStreamOpened(1, 7, 8, 0, 128, False))
    seen.on_stream(SubgroupStreamOpened(1, 11, 9, 0, 128, False))
    seen.on_stream(SubgroupStreamEnded(1, 3, 7, 0))
    seen.on_stream(SubgroupStreamReset(1, 7, 8, 0, 0x1))
    assert sorted(seen.streams.values()) == [[7, "fin"], [8, "reset"], [9, "open"]]
