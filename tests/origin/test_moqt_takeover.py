"""A second MoQT publish with the input's stream key takes the input over (origin/_inputs.py).

A publisher whose session was lost (its relay crashed, the network dropped) reconnects
before the origin has noticed the loss (QUIC's idle timeout): it must not be refused
with "already being published" for tens of seconds. The newer publish takes the input
over at its first valid media object; the old broadcast's viewers get PUBLISH_DONE
GOING_AWAY without a final catalog (the input goes on: they re-subscribe), and the old
publisher's session is closed (kicked), so two holders of one key cannot both send.
"""

from __future__ import annotations

import pytest

from media import CATALOG_TRACK, Catalog
from moqt.errors import PublishDoneCode
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin
from .helpers import Viewer, ns
from .test_moqt_ingest import publishing, wait_live

pytestmark = pytest.mark.timeout(60)


async def test_a_second_publish_with_the_key_takes_the_input_over(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with publishing(origin, input_id, key) as first:
        await wait_live(origin, input_id)
        old = origin.node.inputs.get(input_id)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            await viewer.catalog()
            await viewer.subscribe("audio")
            await viewer.wait_objects("audio", 1)
            async with publishing(origin, input_id, key):

                def replaced() -> bool:
                    current = origin.node.inputs.get(input_id)
                    return current is not None and current is not old

                await wait_until(replaced, 20)
                done = await viewer.wait_done("audio", within=10)
                assert done.code == PublishDoneCode.GOING_AWAY
                catalogs = viewer.tracks[CATALOG_TRACK].objects
                assert not Catalog.parse(catalogs[-1].payload).is_complete  # not an end
                await wait_until(lambda: first.conn.is_closed, 10)  # the old one is kicked
            # The newer publisher was the input's: it leaving ends the input, once the
            # publisher reconnect window (10 s by default; origin._reconnect) ran out.
            await wait_until(lambda: origin.node.inputs.get(input_id) is None, 25)
