"""``clutchcall origin`` as a process: MoQT fMP4 publishers with stream keys from Redis.

A publisher (ffmpeg test pattern packaged as CMSF, over our moqt.aio client)
proves its key; viewers get the catalog first, every track from a keyframe, a
late joiner starts at the current group, and the publisher serves one
subscription per track for any number of viewers. A wrong key is a typed
UNAUTHORIZED; a key rotation ends the broadcast within a second.
``--publish-auth none`` admits anyone and says so loudly.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from media import CATALOG_TRACK
from media.ffmpeg import test_pattern_transcoder
from mesh.bus import connect_bus
from moqt.aio import RequestFailed, connect
from moqt.errors import PublishDoneCode, RequestErrorCode
from tests.origin.conftest import ORG, new_key
from tests.origin.helpers import (
    MoqtTestPublisher,
    Viewer,
    check_media,
    init_of,
    ns,
    rotate_key,
    write_key,
)
from tests.origin.process import origin_process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def _args(redis_url: str, *extra: str) -> list[str]:
    return ["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--rtmp", "",
            "--redis", redis_url, "--region", "r1", "--node-id", "origin-moqt", *extra]  # fmt: skip


async def test_origin_process_moqt_ingest(redis_url: str) -> None:
    bus = connect_bus(redis_url)
    input_id, key = "lv_e2emoqt", new_key()
    await write_key(bus, input_id, key, ORG)
    try:
        async with origin_process(*_args(redis_url)) as origin:
            async with connect(origin.url, verify=False) as conn:
                bad = MoqtTestPublisher(conn, ns(ORG, input_id), new_key())
                with pytest.raises(RequestFailed) as info:
                    await bad.announce()
                await bad.close()
                assert info.value.rejection.code == RequestErrorCode.UNAUTHORIZED
            tc = test_pattern_transcoder(width=320, height=180, bitrate=300_000,
                                         group_duration=1.0, chunk_duration=0.25)  # fmt: skip
            async with connect(origin.url, verify=False) as conn, tc:
                pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
                await pub.announce()
                pump = asyncio.create_task(pub.pump(tc, seconds=30))
                try:
                    async with contextlib.AsyncExitStack() as stack:
                        viewers = [
                            await stack.enter_async_context(
                                Viewer.open(origin.url, ns(ORG, input_id))
                            )
                            for _ in range(3)
                        ]
                        await viewers[0].wait_available(CATALOG_TRACK)
                        catalog = await viewers[0].catalog()
                        names = [t.name for t in catalog.tracks]
                        for viewer in viewers:
                            await viewer.catalog()
                            for name in names:
                                await viewer.subscribe(name)
                        for viewer in viewers:
                            for name in names:
                                objects = await viewer.wait_objects(name, 5)
                                check_media(objects[:5], init_of(catalog, name))
                        # A late joiner starts at the current group.
                        late = await stack.enter_async_context(
                            Viewer.open(origin.url, ns(ORG, input_id))
                        )
                        largest = await late.largest("video")
                        assert largest is not None
                        await late.subscribe("video")
                        first = (await late.wait_objects("video", 1))[0]
                        assert (first.group_id, first.object_id) == (largest.group, 0)
                        assert set(pub.subscribes.values()) == {1}
                        # Rotation ends the broadcast for every viewer within a second.
                        loop = asyncio.get_running_loop()
                        t0 = loop.time()
                        await rotate_key(bus, input_id, new_key(), ORG)
                        for viewer in viewers:
                            done = await viewer.wait_done("video", within=5)
                            assert done.code == PublishDoneCode.UNAUTHORIZED
                        assert loop.time() - t0 < 1.0
                finally:
                    pump.cancel()
                    with contextlib.suppress(BaseException):
                        await pump
                    await pub.close()
    finally:
        await bus.close()


async def test_origin_process_publish_auth_none_is_loud(redis_url: str) -> None:
    async with origin_process(
        *_args(redis_url, "--publish-auth", "none", "--dev-org", ORG)
    ) as origin:
        async with connect(origin.url, verify=False) as conn:
            pub = MoqtTestPublisher(conn, ns(ORG, "lv_anyone"), "whatever")
            await pub.announce()  # admitted without any stream-key record
            await pub.close()
        warnings = origin.events("publish_auth_disabled")
        assert warnings and warnings[0]["level"] == "warning"
        assert "DISABLED" in warnings[0]["message"]
