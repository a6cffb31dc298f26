"""Origin -> POP -> viewers: the origin serves a POP as an ordinary MoQT subscriber.

Real redis carries the origin's node record and namespace route; the POP
resolves the broadcast through it, holds one upstream subscription per track
however many viewers it serves, and the viewers (signed playback URL) get the
catalog and the media from a keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from media import CATALOG_TRACK
from mesh.bus import connect_bus
from mesh.settings import PopSettings
from moqt.aio import connect, write_self_signed
from pop import PopNode
from tests.pop.lab import Tokens

from .conftest import ORG, Origin
from .helpers import MoqtTestPublisher, Viewer, check_media, init_of, ns
from .test_moqt_ingest import transcoder, wait_live

pytestmark = pytest.mark.timeout(60)


async def test_pop_fetches_from_the_origin_once_per_track(
    origin: Origin, redis_url: str, tmp_path: Path
) -> None:
    tokens = Tokens(tmp_path)
    cert, key = write_self_signed(tmp_path / "pop")
    pop_bus = connect_bus(redis_url)
    pop = PopNode(
        PopSettings(node_id="pop-1", region="r1", quic="127.0.0.1:0", http="127.0.0.1:0",
                    jwks=str(tokens.jwks_path), redis=redis_url, linger=1.0),
        certificate=cert, private_key=key, bus=pop_bus,
    )  # fmt: skip
    await pop.start()
    input_id, stream_key = await origin.new_input()
    try:
        async with connect(origin.url, verify=False) as conn, transcoder() as tc:
            pub = MoqtTestPublisher(conn, ns(ORG, input_id), stream_key)
            await pub.announce()
            pump = asyncio.create_task(pub.pump(tc, seconds=30))
            try:
                await wait_live(origin, input_id)
                token = tokens.mint(sub=input_id, org=ORG)
                url = "moqt://{}:{}/?token={}".format(*pop.quic_address, token)
                async with contextlib.AsyncExitStack() as stack:
                    viewers = [
                        await stack.enter_async_context(Viewer.open(url, ns(ORG, input_id)))
                        for _ in range(2)
                    ]
                    for viewer in viewers:
                        # A cold POP answers TRACK_STATUS only for tracks it relays, and its
                        # upstream SUBSCRIBE (LargestObject) starts after the current catalog
                        # object: subscribe plainly, then make the publisher send a new version.
                        await viewer.subscribe(CATALOG_TRACK, current_group=False)
                        await viewer.subscribe("video", current_group=False)
                    assert pub.catalog_payload is not None
                    pub.send_catalog(pub.catalog_payload)
                    for viewer in viewers:
                        catalog = await viewer.catalog()
                        objects = await viewer.wait_objects("video", 8)
                        start = next(i for i, o in enumerate(objects) if o.object_id == 0)
                        check_media(objects[start:], init_of(catalog, "video"))
                    # The origin sees one POP session with one subscription per track.
                    downstream = [
                        sub
                        for name in (CATALOG_TRACK, "video")
                        if (track := origin.node.relay.track(ns(ORG, input_id), name.encode()))
                        for sub in track.subscribers
                    ]
                    assert len(downstream) == 2
                    assert {sub.peer.name for sub in downstream} == {downstream[0].peer.name}
                    assert set(pub.subscribes.values()) == {1}
            finally:
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump
                await pub.close()
    finally:
        await pop.stop()
        await pop_bus.close()
