"""TrackSequencer: objects back in (group, object) order, from a group start, bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clutchcall.streams._sequencer import Released, TrackSequencer


def ids(items: list[Released]) -> list[tuple[int, int]]:
    return [(r.group_id, r.object_id) for r in items]


def test_starts_at_a_group_start_and_drops_what_came_before() -> None:
    seq = TrackSequencer()
    assert seq.push(3, 2, b"x", 0.0) == []  # mid-group: cannot start here
    assert ids(seq.push(4, 0, b"k", 0.1)) == [(4, 0)]
    assert ids(seq.push(4, 1, b"a", 0.2)) == [(4, 1)]
    assert seq.push(3, 3, b"late", 0.3) == []  # older than the start: dropped
    assert seq.statistics().dropped == 2


def test_out_of_order_objects_wait_for_their_predecessor() -> None:
    seq = TrackSequencer()
    seq.push(0, 0, b"0", 0.0)
    assert seq.push(0, 2, b"2", 0.1) == []
    assert ids(seq.push(0, 1, b"1", 0.2)) == [(0, 1), (0, 2)]


def test_a_joining_fetch_is_awaited_before_choosing_the_start() -> None:
    seq = TrackSequencer()
    seq.expect_fetch()
    assert seq.push(5, 3, b"s3", 0.0) == []  # the subscription continues group 5...
    assert seq.push(5, 4, b"s4", 0.0) == []
    assert seq.push(5, 0, b"f0", 0.1) == []  # ...the fetch brings its start
    seq.push(5, 1, b"f1", 0.1)
    seq.push(5, 2, b"f2", 0.1)
    assert ids(seq.fetch_done(0.2)) == [(5, i) for i in range(5)]


def test_a_failed_fetch_starts_at_the_next_group() -> None:
    seq = TrackSequencer()
    seq.expect_fetch()
    seq.push(5, 3, b"s3", 0.0)
    assert seq.fetch_done(0.1) == []  # nothing of group 5's start came
    assert ids(seq.push(6, 0, b"k", 0.2)) == [(6, 0)]


def test_next_group_waits_for_the_end_of_the_current_one() -> None:
    seq = TrackSequencer(gap_wait=0.5)
    seq.push(0, 0, b"", 0.0)
    seq.push(0, 1, b"", 0.0)
    assert seq.push(1, 0, b"", 1.0) == []  # object 0/2 may still be on its way
    assert ids(seq.push(0, 2, b"", 1.1)) == [(0, 2)]
    assert ids(seq.group_ended(0, 1.2)) == [(1, 0)]  # FIN: move on at once


def test_a_group_that_never_ends_is_skipped_after_gap_wait() -> None:
    seq = TrackSequencer(gap_wait=0.5)
    seq.push(0, 0, b"", 0.0)
    seq.push(0, 2, b"", 0.0)  # 0/1 was lost
    assert seq.push(1, 0, b"", 1.0) == []
    assert seq.poll(1.4) == []
    assert ids(seq.poll(1.6)) == [(1, 0)]
    assert seq.statistics().skipped_groups == 1


def test_memory_is_bounded_by_skipping_ahead() -> None:
    seq = TrackSequencer(max_buffered=4, gap_wait=60)
    seq.push(0, 0, b"", 0.0)  # released; then object 0/1 never comes
    for obj in range(2, 5):
        seq.push(0, obj, b"", 0.0)
    seq.push(1, 0, b"", 0.0)
    out = seq.push(1, 1, b"", 0.0)  # 5 buffered > 4: jump to group 1
    assert ids(out) == [(1, 0), (1, 1)]
    assert seq.statistics().buffered == 0


def test_a_held_track_starts_where_it_is_told() -> None:
    seq = TrackSequencer(hold=True)
    for group in (3, 4):
        seq.push(group, 0, b"", 0.0)
        seq.push(group, 1, b"", 0.0)
    assert not seq.started
    assert ids(seq.start_at(4, 0.1)) == [(4, 0), (4, 1)]


def test_flush_releases_what_can_still_play_in_order() -> None:
    seq = TrackSequencer(gap_wait=60)
    seq.push(0, 0, b"", 0.0)
    seq.push(1, 0, b"", 0.0)
    seq.push(1, 1, b"", 0.0)
    seq.push(0, 3, b"", 0.0)  # after a gap: cannot play
    assert ids(seq.flush()) == [(1, 0), (1, 1)]


@given(
    groups=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    data=st.data(),
)
def test_any_arrival_order_of_complete_groups_plays_in_order(
    groups: list[int], data: st.DataObject
) -> None:
    objects = [(g, o) for g, n in enumerate(groups) for o in range(n)]
    events: list[tuple[str, int, int]] = [("obj", g, o) for g, o in objects]
    events += [("fin", g, 0) for g in range(len(groups))]
    pending = list(data.draw(st.permutations(events)))
    seq = TrackSequencer(gap_wait=1e9)
    out: list[Released] = []
    now = 0.0
    while pending:
        # A stream's FIN never overtakes its own objects; anything else may reorder.
        i = next(
            i
            for i, (kind, g, _) in enumerate(pending)
            if kind == "obj" or not any(e[0] == "obj" and e[1] == g for e in pending)
        )
        kind, g, o = pending.pop(i)
        now += 0.01
        out += seq.push(g, o, b"", now) if kind == "obj" else seq.group_ended(g, now)
    out += seq.flush()
    released = ids(out)
    assert released == sorted(released)
    first = released[0] if released else None
    assert first is not None and first[1] == 0
    # From the first group it started at, nothing is missing.
    assert released == [x for x in sorted(objects) if x >= first]
