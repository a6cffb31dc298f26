"""bench.regions' figures from viewer reports (pure; the mesh itself runs in tests/e2e)."""

from __future__ import annotations

from typing import Any

from bench.regions import join_figures

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
    return {"rejected": None, "subscribed_at": subscribed, "fetch": fetch, "objects": rows}


def test_a_viewer_holding_its_group_from_object_0_started_at_the_group_start() -> None:
    joined_mid_group_3 = T0 + 3.45
    objects = [(3, o) for o in range(10)] + [(4, o) for o in range(3)]
    figures = join_figures({"viewers": [viewer(joined_mid_group_3, objects)]}, **TIMING)
    assert figures.started_at_group_start()
    assert figures.starts == [(3, 0)] and figures.joined_groups == [3]
    assert figures.gaps == 0 and figures.older == 0 and figures.rejected == 0
    # object 0 was sent 0.45 s before the subscription: that is its age at receipt
    assert abs(figures.start_age_ms[0] - 470) < 1
    assert abs(figures.steady_p50_ms - 20) < 1


def test_starting_at_the_live_edge_or_an_older_group_is_told_apart() -> None:
    live_edge = viewer(T0 + 3.45, [(3, o) for o in range(5, 10)])
    older = viewer(T0 + 3.45, [(2, 9)] + [(3, o) for o in range(10)])
    assert not join_figures({"viewers": [live_edge]}, **TIMING).started_at_group_start()
    figures = join_figures({"viewers": [older]}, **TIMING)
    assert figures.older == 1 and not figures.started_at_group_start()


def test_missing_objects_and_rejected_viewers_are_counted() -> None:
    holes = viewer(T0 + 3.2, [(3, 0), (3, 1), (3, 3), (4, 0)])  # 3/2 and 3/4..3/9 missing
    rejected = {"rejected": "auth_failed", "subscribed_at": T0, "fetch": "none", "objects": []}
    figures = join_figures({"viewers": [holes, rejected]}, **TIMING)
    assert figures.gaps == 7
    assert figures.rejected == 1 and figures.viewers == 2
