"""GOP -> group, CMAF chunk -> object, on real ffmpeg fragments and on edge cases."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.fmp4 import Fragment, split_fmp4
from media.grouping import GroupAssembler, MediaObject


def fragments(data: bytes) -> list[Fragment]:
    return [i for i in split_fmp4(data) if isinstance(i, Fragment)]


def place(assembler: GroupAssembler, frags: list[Fragment]) -> list[MediaObject]:
    return [o for o in (assembler.push(f) for f in frags) if o is not None]


def test_each_gop_is_a_group_and_each_chunk_an_object(video_fmp4: bytes) -> None:
    objects = place(GroupAssembler(), fragments(video_fmp4))
    assert [(o.group_id, o.object_id) for o in objects] == [(0, i) for i in range(4)] + [
        (1, i) for i in range(4)
    ]
    assert all(o.keyframe == o.starts_group for o in objects)
    assert all(o.payload == o.fragment.data for o in objects)
    # every group is one 2 s GOP
    for gid in (0, 1):
        group = [o.fragment for o in objects if o.group_id == gid]
        assert sum(f.duration_seconds for f in group) == pytest.approx(2.0)


def test_first_group_id_and_monotonic_ids(video_fmp4: bytes) -> None:
    frags = fragments(video_fmp4)
    assembler = GroupAssembler(first_group_id=1_700_000_000_000)
    objects = place(assembler, frags + frags)  # a timeline that jumps back (encoder restart)
    ids = [o.group_id for o in objects if o.starts_group]
    assert ids == sorted(set(ids)) and ids[0] == 1_700_000_000_000 and len(ids) == 4
    assert assembler.statistics().groups == 4


def test_time_derived_ids_align_audio_with_video(video_fmp4: bytes, audio_fmp4: bytes) -> None:
    video = place(GroupAssembler(group_duration=2.0), fragments(video_fmp4))
    audio = place(GroupAssembler(group_duration=2.0), fragments(audio_fmp4))
    video_starts = {o.group_id: o.fragment.start_seconds for o in video if o.starts_group}
    audio_starts = {o.group_id: o.fragment.start_seconds for o in audio if o.starts_group}
    assert set(video_starts) == set(audio_starts) == {0, 1}
    for gid, t in video_starts.items():
        assert audio_starts[gid] == pytest.approx(t, abs=0.1)
    # audio chunks are all keyframes but only group starts open groups
    assert sum(o.starts_group for o in audio) == 2 < sum(o.keyframe for o in audio)


def test_fragments_before_first_keyframe_are_dropped(video_fmp4: bytes) -> None:
    frags = fragments(video_fmp4)
    assembler = GroupAssembler()
    objects = place(assembler, frags[1:])  # join mid-GOP
    assert objects[0].keyframe and objects[0].fragment.start_seconds == 2.0
    assert [(o.group_id, o.object_id) for o in objects] == [(0, i) for i in range(4)]
    assert assembler.statistics().dropped_before_keyframe == 3


def test_time_derived_ids_skip_lost_time_but_stay_monotonic(video_fmp4: bytes) -> None:
    frags = fragments(video_fmp4)
    shifted = [
        dataclasses.replace(f, base_media_decode_time=f.base_media_decode_time + 10 * f.timescale)
        for f in frags[4:]
    ]
    objects = place(GroupAssembler(group_duration=2.0), frags[:4] + shifted)
    assert [o.group_id for o in objects if o.starts_group] == [0, 6]  # 12 s / 2 s


def test_extra_keyframe_inside_a_slot_continues_the_group(video_fmp4: bytes) -> None:
    frags = fragments(video_fmp4)
    extra = dataclasses.replace(frags[1], keyframe=True)  # e.g. a scene-cut IDR at 0.5 s
    objects = place(GroupAssembler(group_duration=2.0), [frags[0], extra, *frags[2:]])
    assert [o.group_id for o in objects if o.starts_group] == [0, 1]
    assert objects[1].keyframe and not objects[1].starts_group


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        GroupAssembler(first_group_id=-1)
    with pytest.raises(ValueError):
        GroupAssembler(group_duration=0)


def synthetic(start: int, duration: int, keyframe: bool) -> Fragment:
    return Fragment(b"x", 1, 0, start, duration, 1, keyframe, 1000, start)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 3000), st.booleans()), min_size=1, max_size=40),
    st.one_of(st.none(), st.sampled_from([0.5, 1.0, 2.0])),
    st.integers(0, 10**12),
)
def test_group_invariants(
    chunks: list[tuple[int, bool]], group_duration: float | None, first: int
) -> None:
    assembler = GroupAssembler(first_group_id=first, group_duration=group_duration)
    t = 0
    placed: list[MediaObject] = []
    for duration, key in chunks:
        obj = assembler.push(synthetic(t, duration, key))
        t += duration
        if obj is not None:
            placed.append(obj)
    first_key = next((i for i, (_, k) in enumerate(chunks) if k), None)
    assert len(placed) == (
        0 if first_key is None else len(chunks) - first_key
    )  # nothing lost after a SAP
    previous_group = -1
    expected_object = 0
    for obj in placed:
        if obj.starts_group:
            assert obj.keyframe and obj.group_id > previous_group and obj.group_id >= first
            previous_group, expected_object = obj.group_id, 0
        assert obj.group_id == previous_group and obj.object_id == expected_object
        expected_object += 1
    stats = assembler.statistics()
    assert stats.objects == len(placed) and stats.dropped_before_keyframe == len(chunks) - len(
        placed
    )
