"""Data-plane interop with aiomoqt 0.13.3 (an independent implementation), both drafts,
both directions: what we encode aiomoqt decodes to the same values, and what aiomoqt
encodes we decode to the same values (under random chunking)."""

from __future__ import annotations

from typing import Any

import pytest
from aiomoqt.context import profile_for
from aiomoqt.messages.data import FetchHeader as AioFetchHeader
from aiomoqt.messages.data import FetchObject as AioFetchObject
from aiomoqt.messages.data import ObjectDatagram as AioDatagram
from aiomoqt.messages.data import ObjectDatagramStatus as AioDatagramStatus
from aiomoqt.messages.data import ObjectHeader as AioObjectHeader
from aiomoqt.messages.data import SubgroupHeader as AioSubgroupHeader
from aiomoqt.types import ObjectStatus as AioStatus
from aiopquic.buffer import Buffer as AioBuffer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqt.data import (
    Extensions,
    FetchEndOfRange,
    FetchHeader,
    FetchWriter,
    Object,
    ObjectDatagram,
    SubgroupHeader,
    SubgroupIdMode,
    UniStreamParser,
    decode_datagram,
    encode_datagram,
)
from moqt.types import ObjectStatus
from moqt.version import DRAFT_14, DRAFT_16

from .data_strategies import (
    chunked,
    cut_lists,
    datagrams,
    encode_subgroup,
    fetch_streams,
    ids,
    subgroup_streams,
)

pytestmark = pytest.mark.interop

BOTH = pytest.mark.parametrize("version", [DRAFT_14, DRAFT_16], ids=["d14", "d16"])
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AIO_DEFAULT_PRIORITY = 128


def prof(version: int) -> Any:
    return profile_for(version & 0xFF)


def to_aio_exts(exts: Extensions) -> Any:  # aiomoqt's hints say dict[int, bytes]
    return dict(exts) if exts else None


def from_aio_exts(exts: Any, version: int) -> Extensions:
    if not exts:
        return ()
    items = tuple(exts.items())
    return tuple(sorted(items, key=lambda e: e[0])) if version == DRAFT_16 else items


def parse_ours(version: int, wire: bytes, cuts: list[int]) -> list[Any]:
    parser = UniStreamParser(version)
    events: list[Any] = []
    for chunk in chunked(wire, cuts):
        events += parser.feed(chunk)
    parser.finish()
    return events


# ---- subgroup streams ---------------------------------------------------------------------


@BOTH
@SETTINGS
@given(data=st.data())
def test_subgroup_ours_to_aiomoqt(version: int, data: st.DataObject) -> None:
    header, objects = data.draw(subgroup_streams(version, interop=True))
    wire = encode_subgroup(version, header, objects)
    buf = AioBuffer(data=wire)
    aio = AioSubgroupHeader.deserialize(buf, buf.pull_uint_var(), prof=prof(version))
    assert (aio.track_alias, aio.group_id) == (header.track_alias, header.group_id)
    assert aio.subgroup_id_mode == header.subgroup_id_mode
    assert aio.subgroup_id == header.subgroup_id
    assert aio.extensions_present == header.extensions_present
    assert aio.end_of_group == header.end_of_group
    assert aio.default_priority == (header.publisher_priority is None)
    if header.publisher_priority is not None:
        assert aio.publisher_priority == header.publisher_priority
    got = []
    prev = None
    while buf.tell() < len(wire):
        obj = AioObjectHeader(object_id=0)
        obj.deserialize_into(
            buf,
            len(wire),
            extensions_present=aio.extensions_present,
            prev_object_id=prev,
            kvp_delta=version == DRAFT_16,
        )
        prev = obj.object_id
        assert obj.status is not None
        got.append(
            (
                obj.object_id,
                bytes(obj.payload),
                from_aio_exts(obj.extensions, version),
                int(obj.status),
            )
        )
    assert got == [(o.object_id, o.payload, o.extensions, int(o.status)) for o in objects]


@BOTH
@SETTINGS
@given(data=st.data())
def test_subgroup_aiomoqt_to_ours(version: int, data: st.DataObject) -> None:
    header, objects = data.draw(subgroup_streams(version, interop=True))
    first = header.subgroup_id_mode == SubgroupIdMode.FIRST_OBJECT
    aio = AioSubgroupHeader(
        track_alias=header.track_alias,
        group_id=header.group_id,
        subgroup_id=None if first else header.subgroup_id,
        publisher_priority=header.publisher_priority
        if header.publisher_priority is not None
        else AIO_DEFAULT_PRIORITY,
        extensions_present=header.extensions_present,
        end_of_group=header.end_of_group,
        subgroup_id_mode=int(header.subgroup_id_mode),
        default_priority=header.publisher_priority is None,
        prof=prof(version),
    )
    wire = aio.serialize().data
    for obj in objects:
        wire += aio.next_object(
            obj.payload,
            extensions=to_aio_exts(obj.extensions),
            status=AioStatus(int(obj.status)),
            object_id=obj.object_id,
        ).data
    assert parse_ours(version, wire, data.draw(cut_lists)) == [header, *objects]


# ---- datagrams ----------------------------------------------------------------------------


def aio_decode_datagram(wire: bytes, version: int) -> tuple[Any, ...]:
    buf = AioBuffer(data=wire)
    dtype = buf.pull_uint_var()
    if version == DRAFT_14 and dtype >= 0x20:
        s = AioDatagramStatus.deserialize(buf, dtype, prof=prof(version))
        return (
            s.track_alias,
            s.group_id,
            s.object_id,
            s.publisher_priority,
            s.extensions,
            b"",
            False,
            s.status,
        )
    d = AioDatagram.deserialize(buf, len(wire), dtype, prof=prof(version))
    return (
        d.track_alias,
        d.group_id,
        d.object_id,
        d.publisher_priority,
        d.extensions,
        bytes(d.payload),
        d.end_of_group,
        d.status,
    )


@BOTH
@SETTINGS
@given(data=st.data())
def test_datagram_ours_to_aiomoqt(version: int, data: st.DataObject) -> None:
    dg = data.draw(datagrams(version, interop=True))
    obj = dg.object
    alias, group, oid, prio, exts, payload, eog, status = aio_decode_datagram(
        encode_datagram(dg, version), version
    )
    assert (alias, group, oid) == (dg.track_alias, obj.group_id, obj.object_id)
    # aiomoqt reports an inherited (DEFAULT_PRIORITY) priority as its default, 128
    assert prio == (
        AIO_DEFAULT_PRIORITY if obj.publisher_priority is None else obj.publisher_priority
    )
    assert from_aio_exts(exts, version) == obj.extensions
    assert (payload, eog, int(status)) == (obj.payload, dg.end_of_group, int(obj.status))


@BOTH
@SETTINGS
@given(data=st.data())
def test_datagram_aiomoqt_to_ours(version: int, data: st.DataObject) -> None:
    dg = data.draw(datagrams(version, interop=True))
    obj = dg.object
    prio = AIO_DEFAULT_PRIORITY if obj.publisher_priority is None else obj.publisher_priority
    fields: dict[str, Any] = {
        "track_alias": dg.track_alias,
        "group_id": obj.group_id,
        "object_id": obj.object_id,
        "publisher_priority": prio,
        "extensions": to_aio_exts(obj.extensions),
        "status": AioStatus(int(obj.status)),
    }
    if version == DRAFT_14 and obj.status != ObjectStatus.NORMAL:
        wire = AioDatagramStatus(**fields).serialize(prof=prof(version)).data
    else:
        aio = AioDatagram(payload=obj.payload, end_of_group=dg.end_of_group, **fields)
        wire = aio.serialize(prof=prof(version)).data
    expected = ObjectDatagram(
        dg.track_alias,
        Object(obj.group_id, None, obj.object_id, prio, obj.payload, obj.extensions, obj.status),
        dg.end_of_group,
    )
    assert decode_datagram(wire, version) == expected


# ---- fetch streams ------------------------------------------------------------------------


@BOTH
@SETTINGS
@given(data=st.data())
def test_fetch_ours_to_aiomoqt(version: int, data: st.DataObject) -> None:
    request_id = data.draw(ids)
    items = data.draw(fetch_streams(version, interop=True))
    writer = FetchWriter(request_id, version)
    wire = writer.header_bytes()
    for item in items:
        if isinstance(item, FetchEndOfRange):
            wire += writer.end_of_range(item.group_id, item.object_id, unknown=item.unknown)
        else:
            wire += writer.write_object(item)
    buf = AioBuffer(data=wire)
    assert buf.pull_uint_var() == 0x05
    assert AioFetchHeader.deserialize(buf).request_id == request_id
    got: list[Object | FetchEndOfRange] = []
    prior = None
    while buf.tell() < len(wire):
        fo = AioFetchObject.deserialize(buf, prior, prof=prof(version))
        prior = fo
        if fo.end_of_range is not None:
            got.append(FetchEndOfRange(fo.group_id, fo.object_id, fo.end_of_range == 0x10C))
            continue
        got.append(
            Object(
                fo.group_id,
                None if fo.datagram else fo.subgroup_id,
                fo.object_id,
                fo.publisher_priority,
                bytes(fo.payload),
                from_aio_exts(fo.extensions, version),
                ObjectStatus(int(fo.status)),
            )
        )
    assert got == items


@BOTH
@SETTINGS
@given(data=st.data())
def test_fetch_aiomoqt_to_ours(version: int, data: st.DataObject) -> None:
    request_id = data.draw(ids)
    items = data.draw(fetch_streams(version, interop=True))
    wire = AioFetchHeader(request_id=request_id).serialize(prof=prof(version)).data
    for item in items:
        if isinstance(item, FetchEndOfRange):
            aio = AioFetchObject(
                group_id=item.group_id,
                object_id=item.object_id,
                end_of_range=0x10C if item.unknown else 0x8C,
            )
        else:
            assert item.publisher_priority is not None  # fetch objects always carry one
            aio = AioFetchObject(
                group_id=item.group_id,
                subgroup_id=0 if item.subgroup_id is None else item.subgroup_id,
                object_id=item.object_id,
                publisher_priority=item.publisher_priority,
                extensions=to_aio_exts(item.extensions),
                status=AioStatus(int(item.status)),
                payload=item.payload,
                datagram=item.subgroup_id is None,
            )
        wire += aio.serialize(prof=prof(version)).data
    assert parse_ours(version, wire, data.draw(cut_lists)) == [FetchHeader(request_id), *items]


# ---- the drafts' own examples, byte for byte ---------------------------------------------


@BOTH
def test_spec_example_matches_aiomoqt(version: int) -> None:
    """Draft example 2 (extensions) produced by both implementations is identical."""
    exts: Extensions = ((4, 2186796243), (77, b"traceID:123456"))
    priority = None if version == DRAFT_16 else 0
    header = SubgroupHeader(2, 0, 0, priority, extensions_present=True)
    ours = encode_subgroup(
        version,
        header,
        [Object(0, 0, 0, priority, b"abcd", exts), Object(0, 0, 1, priority, b"efgh")],
    )
    aio = AioSubgroupHeader(
        track_alias=2,
        group_id=0,
        subgroup_id=0,
        publisher_priority=0,
        extensions_present=True,
        default_priority=priority is None,
        prof=prof(version),
    )
    theirs = aio.serialize().data + aio.next_object(b"abcd", extensions=dict(exts)).data
    theirs += aio.next_object(b"efgh").data
    assert ours == theirs
