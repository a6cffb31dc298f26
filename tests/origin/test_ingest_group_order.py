"""Groups travel on independent QUIC streams: a group's last objects may arrive after the
next group began (a browser publisher sends newer groups first, a POP splice adds a hop).

The origin used to close such a publisher as malformed ("group 5 after group 6"), which
ended browser broadcasts after a few seconds. A late object of a recent group is media
like any other: validated, forwarded, and the broadcast goes on.
"""

from __future__ import annotations

import asyncio

import pytest

from media import CatalogUpdate
from moqt.aio import connect
from moqt.session import SubgroupHandle
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin
from .helpers import MoqtTestPublisher, Viewer, ns
from .test_moqt_ingest import transcoder, wait_live

pytestmark = [pytest.mark.timeout(60), pytest.mark.e2e]


async def test_late_objects_of_the_previous_group_are_forwarded(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with connect(origin.url, verify=False) as conn, transcoder() as tc:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
        await pub.announce()
        session = conn.session
        open_groups: dict[int, SubgroupHandle] = {}
        held: tuple[int, int, bytes] | None = None  # the last video object of a group, held
        late = 0
        packager = tc.packager()
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            watching = False
            async for rendition, item in tc:
                for event in packager.push(rendition, item):
                    if isinstance(event, CatalogUpdate):
                        pub.send_catalog(event.catalog.to_json())
                        continue
                    o = event.object
                    rid = pub._subs.get(event.track)
                    if event.track != "video" or rid is None:
                        pub.send(event.track, o.group_id, o.object_id, o.payload)
                        continue
                    if o.object_id == 0:
                        handle = session.open_subgroup(rid, o.group_id, 0)
                        open_groups[o.group_id] = handle
                        session.write_object(handle, 0, o.payload)
                        if held is not None:  # the previous group's last object, after this
                            await asyncio.sleep(0.05)  # in packets of its own, later
                            group, obj, payload = held
                            session.write_object(open_groups[group], obj, payload)
                            session.end_subgroup(open_groups.pop(group))
                            held, late = None, late + 1
                    elif o.group_id in open_groups:
                        if held is not None:
                            group, obj, payload = held
                            session.write_object(open_groups[group], obj, payload)
                        held = (o.group_id, o.object_id, o.payload)
                if not watching and origin.node.inputs.get(input_id) is not None:
                    await viewer.subscribe("video", current_group=False)
                    watching = True
                if late >= 4:
                    break
            assert watching
            await viewer.wait_objects("video", 14)

            def whole_groups() -> bool:
                by_group: dict[int, set[int]] = {}
                for o in viewer.tracks["video"].objects:
                    by_group.setdefault(o.group_id, set()).add(o.object_id)
                # The first may be joined mid-way, the last is unfinished.
                whole = sorted(by_group)[1:-1]
                return len(whole) >= 2 and all(by_group[g] == set(range(4)) for g in whole)

            # Every whole group the viewer got has its late last object too.
            await wait_until(whole_groups, 10)
            assert not conn.is_closed, conn.close_event
            await wait_live(origin, input_id)
        assert origin.node.statistics().moqt_malformed == 0
        await pub.close()
