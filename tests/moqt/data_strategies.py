"""Hypothesis strategies for data-plane values, shared by the property and interop tests.

``interop=True`` restricts values to what aiomoqt 0.13.3 can represent: its
extensions are a dict (no repeated types) and it drops extensions from
non-Normal status objects.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from moqt.data import (
    Extensions,
    FetchEndOfRange,
    Object,
    ObjectDatagram,
    SubgroupHeader,
    SubgroupIdMode,
    SubgroupWriter,
    valid_statuses,
)
from moqt.types import ObjectStatus
from moqt.version import DRAFT_14, DRAFT_16

MAXV = (1 << 62) - 1
NORMAL = ObjectStatus.NORMAL
ENDING = (ObjectStatus.END_OF_GROUP, ObjectStatus.END_OF_TRACK)

ids = st.one_of(st.integers(0, 63), st.integers(0, 1 << 14), st.integers(0, MAXV))
priorities = st.integers(0, 255)
cut_lists = st.lists(st.integers(0, 1 << 16), max_size=24)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given (wrapped) positions."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _ext_pair(t: int) -> st.SearchStrategy[tuple[int, int | bytes]]:
    value: st.SearchStrategy[Any] = (
        st.binary(max_size=40) if t & 1 else st.one_of(st.integers(0, 63), st.integers(0, MAXV))
    )
    return st.tuples(st.just(t), value)


def extensions(version: int, *, interop: bool = False) -> st.SearchStrategy[Extensions]:
    types = st.one_of(st.integers(0, 80), st.integers(0, MAXV))
    pairs = st.lists(
        types.flatmap(_ext_pair), max_size=5, unique_by=(lambda e: e[0]) if interop else None
    ).map(tuple)
    if version == DRAFT_16:
        return pairs.map(lambda xs: tuple(sorted(xs, key=lambda e: e[0])))
    return pairs


def may_carry_extensions(version: int, status: ObjectStatus, *, interop: bool = False) -> bool:
    if status == NORMAL:
        return True
    return not interop and version == DRAFT_14 and status != ObjectStatus.DOES_NOT_EXIST


def statuses(version: int) -> st.SearchStrategy[ObjectStatus]:
    others = sorted(valid_statuses(version) - {NORMAL})
    return st.one_of(st.just(NORMAL), st.just(NORMAL), st.sampled_from(others))


@st.composite
def subgroup_streams(
    draw: st.DrawFn, version: int, *, interop: bool = False
) -> tuple[SubgroupHeader, list[Object]]:
    """A header and the objects a parser must report for it (subgroup ids resolved)."""
    mode = draw(st.sampled_from(list(SubgroupIdMode)))
    ext_present = draw(st.booleans())
    prio = draw(st.one_of(priorities, st.none()) if version == DRAFT_16 else priorities)
    group = draw(ids)
    sub: int | None = {
        SubgroupIdMode.ZERO: 0,
        SubgroupIdMode.EXPLICIT: draw(ids),
        SubgroupIdMode.FIRST_OBJECT: None,
    }[mode]
    header = SubgroupHeader(draw(ids), group, sub, prio, ext_present, draw(st.booleans()), mode)
    objects: list[Object] = []
    oid = draw(st.one_of(st.integers(0, 1000), ids))
    for i in range(draw(st.integers(0, 6))):
        if i:
            oid += 1 + draw(st.one_of(st.integers(0, 2), st.integers(0, 1 << 20)))
            if oid > MAXV:
                break
        status = draw(statuses(version))
        payload = draw(st.binary(max_size=300)) if status == NORMAL else b""
        exts: Extensions = ()
        if ext_present and may_carry_extensions(version, status, interop=interop):
            exts = draw(extensions(version, interop=interop))
        if mode == SubgroupIdMode.FIRST_OBJECT and sub is None:
            sub = oid
        objects.append(Object(group, sub, oid, prio, payload, exts, status))
        if status in ENDING:
            break
    return header, objects


def encode_subgroup(version: int, header: SubgroupHeader, objects: list[Object]) -> bytes:
    writer = SubgroupWriter(header, version)
    out = bytearray(writer.header_bytes())
    for obj in objects:
        out += writer.write_object(
            obj.object_id, obj.payload, extensions=obj.extensions, status=obj.status
        )
    return bytes(out)


@st.composite
def fetch_streams(
    draw: st.DrawFn, version: int, *, interop: bool = False
) -> list[Object | FetchEndOfRange]:
    """Fetch stream content after the header (draft-16 may include End of Range markers)."""
    items: list[Object | FetchEndOfRange] = []
    for _ in range(draw(st.integers(0, 8))):
        if version == DRAFT_16 and draw(st.integers(0, 4)) == 0:
            items.append(FetchEndOfRange(draw(ids), draw(ids), draw(st.booleans())))
            continue
        prev = next((o for o in reversed(items) if isinstance(o, Object)), None)
        # bias towards values that exercise the prior-reference flags
        group = draw(st.one_of(ids, st.just(prev.group_id if prev else 0)))
        object_id = draw(st.one_of(ids, st.just(min(MAXV, prev.object_id + 1) if prev else 0)))
        prev_sub = prev.subgroup_id if prev and prev.subgroup_id is not None else 0
        sub_choices: list[st.SearchStrategy[int | None]] = [
            ids,
            st.just(0),
            st.just(prev_sub),
            st.just(min(MAXV, prev_sub + 1)),
        ]
        if version == DRAFT_16:
            sub_choices.append(st.none())
        sub = draw(st.one_of(*sub_choices))
        prio = draw(st.one_of(priorities, st.just(prev.publisher_priority if prev else 0)))
        status = draw(statuses(version)) if version == DRAFT_14 else NORMAL
        payload = draw(st.binary(max_size=200)) if status == NORMAL else b""
        exts: Extensions = ()
        if may_carry_extensions(version, status, interop=interop):
            exts = draw(extensions(version, interop=interop))
        items.append(Object(group, sub, object_id, prio, payload, exts, status))
    return items


@st.composite
def datagrams(draw: st.DrawFn, version: int, *, interop: bool = False) -> ObjectDatagram:
    status = draw(statuses(version))
    prio = draw(st.one_of(priorities, st.none()) if version == DRAFT_16 else priorities)
    payload = draw(st.binary(max_size=300)) if status == NORMAL else b""
    exts: Extensions = ()
    if may_carry_extensions(version, status, interop=interop):
        exts = draw(extensions(version, interop=interop))
    object_id = draw(st.one_of(st.just(0), ids))
    obj = Object(draw(ids), None, object_id, prio, payload, exts, status)
    eog = draw(st.booleans()) if status == NORMAL else False
    return ObjectDatagram(draw(ids), obj, eog)


__all__ = [
    "DRAFT_14",
    "DRAFT_16",
    "MAXV",
    "chunked",
    "cut_lists",
    "datagrams",
    "encode_subgroup",
    "extensions",
    "fetch_streams",
    "ids",
    "may_carry_extensions",
    "priorities",
    "statuses",
    "subgroup_streams",
]
