"""MoQT fMP4 ingest against a real origin: QUIC on loopback, ffmpeg media, redis stream keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench._live import make_clip
from media import CATALOG_TRACK, MSF_CATALOG_TRACK
from media.ffmpeg import Transcoder, test_pattern_transcoder
from mesh.topology import NODE_PREFIX, ROUTE_PREFIX
from moqt.aio import ConnectionClosed, RequestFailed, SessionOptions, connect
from moqt.errors import PublishDoneCode, RequestErrorCode, SessionCloseCode
from moqt.events import PublishAccepted
from origin.status import INPUT_STATUS_PREFIX
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin, new_key, running_origin
from .helpers import MoqtTestPublisher, Viewer, check_media, init_of, ns, rotate_key

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def transcoder() -> AsyncIterator[Transcoder]:
    tc = test_pattern_transcoder(width=320, height=180, fps=30, bitrate=300_000,
                                 group_duration=1.0, chunk_duration=0.25)  # fmt: skip
    async with tc:
        yield tc


@contextlib.asynccontextmanager
async def publishing(
    origin: Origin,
    input_id: str,
    key: str,
    *,
    seconds: float = 30.0,
    corrupt: frozenset[str] = frozenset(),
) -> AsyncIterator[MoqtTestPublisher]:
    async with connect(origin.url, verify=False) as conn, transcoder() as tc:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
        pub.corrupt = set(corrupt)
        await pub.announce()
        pump = asyncio.create_task(pub.pump(tc, seconds=seconds))
        try:
            yield pub
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            await pub.close()


async def wait_live(origin: Origin, input_id: str, within: float = 20.0) -> None:
    await wait_until(lambda: origin.node.inputs.get(input_id) is not None, within)


async def test_catalog_then_every_track_from_a_keyframe_and_one_upload(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with publishing(origin, input_id, key) as pub:
        await wait_live(origin, input_id)
        viewers = []
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(3):
                viewers.append(await stack.enter_async_context(
                    Viewer.open(origin.url, ns(ORG, input_id))))  # fmt: skip
            for viewer in viewers:
                catalog = await viewer.catalog()
                names = [t.name for t in catalog.tracks]
                assert len(names) == 2 and "audio" in names
                for name in names:
                    await viewer.subscribe(name)
            for viewer in viewers:
                catalog = await viewer.catalog()
                for t in catalog.tracks:
                    objects = await viewer.wait_objects(t.name, 6)
                    check_media(objects[:6], init_of(catalog, t.name))
            # The MSF alias serves the same catalog.
            alias = await viewers[0].subscribe(MSF_CATALOG_TRACK)
            await viewers[0].wait_objects(MSF_CATALOG_TRACK, 1)
            assert alias.objects[0].payload == viewers[0].tracks[CATALOG_TRACK].objects[-1].payload
        # One SUBSCRIBE per track from the origin, whatever the number of viewers.
        assert set(pub.subscribes.values()) == {1}
        assert CATALOG_TRACK in pub.subscribes
    record = await origin.bus.get(INPUT_STATUS_PREFIX + input_id)
    assert record is not None


async def test_late_joiner_starts_at_the_current_group(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with publishing(origin, input_id, key):
        await wait_live(origin, input_id)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as first:
            catalog = await first.catalog()
            await first.subscribe("audio")
            await first.wait_objects("audio", 10)  # a few groups later
            async with Viewer.open(origin.url, ns(ORG, input_id)) as late:
                video = next(t.name for t in catalog.tracks if t.name != "audio")
                largest = await late.largest(video)
                assert largest is not None and largest.group > 0
                rec = await late.subscribe(video)
                objects = await late.wait_objects(video, 2)
                assert objects[0].group_id == largest.group and objects[0].object_id == 0
                check_media(objects, init_of(catalog, video))
                assert rec.done is None


async def test_wrong_key_is_refused_unauthorized(origin: Origin) -> None:
    input_id, _ = await origin.new_input()
    async with connect(origin.url, verify=False) as conn:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), new_key())
        with pytest.raises(RequestFailed) as info:
            await pub.announce()
        await pub.close()
    assert info.value.rejection.code == RequestErrorCode.UNAUTHORIZED
    assert "invalid stream key" in info.value.rejection.reason
    assert origin.node.inputs.get(input_id) is None


async def test_namespace_not_owned_and_missing_key_are_refused(origin: Origin) -> None:
    input_a, key_a = await origin.new_input()
    input_b, _ = await origin.new_input()
    async with connect(origin.url, verify=False) as conn:
        for namespace, key, reason in (
            (ns(ORG, input_b), key_a, "invalid stream key"),  # key of A for input B
            (ns("org_other", input_a), key_a, "does not own"),  # right key, other org
            (ns(ORG, input_a), None, "missing stream key"),
            ((b"live", b"x"), key_a, "stream/<org_id>"),
        ):
            pub = MoqtTestPublisher(conn, namespace, key)
            with pytest.raises(RequestFailed) as info:
                await pub.announce()
            await pub.close()
            assert info.value.rejection.code == RequestErrorCode.UNAUTHORIZED
            assert reason in info.value.rejection.reason
    assert origin.node.statistics().moqt_refused == 4


async def test_malformed_media_closes_the_publisher_and_reaches_no_viewer(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with connect(origin.url, verify=False) as conn, transcoder() as tc:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
        pub.corrupt = {"audio", "video"}
        await pub.announce()
        pump = asyncio.create_task(pub.pump(tc, seconds=20))
        closed = await conn.wait_closed(grace=20)
        pump.cancel()
        with contextlib.suppress(BaseException):
            await pump
        await pub.close()
    assert closed.code == SessionCloseCode.PROTOCOL_VIOLATION
    assert "malformed track" in closed.reason
    assert origin.node.inputs.get(input_id) is None
    async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
        with pytest.raises(RequestFailed) as info:
            await viewer.largest(CATALOG_TRACK)
        assert info.value.rejection.code == RequestErrorCode.DOES_NOT_EXIST
    assert origin.node.statistics().moqt_malformed == 1

    async def error_reported() -> bool:
        record = await origin.bus.get(INPUT_STATUS_PREFIX + input_id)
        return record is not None and record["status"] == "error"

    await wait_until(error_reported)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed track .catalog: catalog:"),
        (
            b'{"version": "draft-01", "tracks": [{"name": "v", "packaging": "cmaf", "isLive": true,'
            b' "role": "video", "codec": "avc1.64001f", "width": 320, "height": 180,'
            b' "bitrate": 300000, "framerate": 30}]}',
            "requires 'initData'",
        ),
        (
            b'{"version": "draft-01", "tracks": [{"name": "v", "packaging": "cmaf", "isLive": true,'
            b' "role": "video", "codec": "avc1.64001f", "width": 320, "height": 180,'
            b' "bitrate": 300000, "framerate": 30, "initData": "AAAACGZyZWU="}]}',
            "initData",
        ),
    ],
)
async def test_malformed_catalog_is_refused(origin: Origin, payload: bytes, reason: str) -> None:
    input_id, key = await origin.new_input()
    async with connect(origin.url, verify=False) as conn:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
        await pub.announce()
        await wait_until(lambda: CATALOG_TRACK in pub.subscribes)  # the origin subscribes
        pub.send_catalog(payload)
        closed = await conn.wait_closed(grace=10)
        await pub.close()
    assert closed.code == SessionCloseCode.PROTOCOL_VIOLATION
    assert reason in closed.reason
    assert origin.node.inputs.get(input_id) is None


async def test_rotation_ends_the_broadcast_within_one_second(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    with pytest.raises(ConnectionClosed):
        async with publishing(origin, input_id, key) as pub:
            await wait_live(origin, input_id)
            async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
                await viewer.catalog()
                await viewer.subscribe("audio")
                await viewer.wait_objects("audio", 2)
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                await rotate_key(origin.bus, input_id, new_key(), ORG)
                done = await viewer.wait_done("audio", within=5)
                assert done.code == PublishDoneCode.UNAUTHORIZED
                assert loop.time() - t0 < 1.0
                closed = await pub.conn.wait_closed(grace=5)
                assert closed.code == SessionCloseCode.UNAUTHORIZED
                raise ConnectionClosed(closed.code, closed.reason, True)


async def test_publish_flow_and_publisher_leaving_ends_the_broadcast(
    tmp_path: Path, redis_url: str
) -> None:
    """PUBLISH of each track (no PUBLISH_NAMESPACE); the publisher's departure ends it once
    the reconnect window (1 s here) ran out without it coming back."""
    async with running_origin(tmp_path, redis_url, publisher_reconnect_window=1.0) as origin:
        await _publish_and_leave(origin)


async def _publish_and_leave(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with connect(origin.url, verify=False) as conn, transcoder() as tc:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
        await pub.push(["video", "audio"])
        pump = asyncio.create_task(pub.pump(tc, seconds=30))
        try:
            await wait_live(origin, input_id)

            async def routed() -> bool:
                route = await origin.bus.get(ROUTE_PREFIX + f"stream/{ORG}/{input_id}")
                return route is not None and route["origin"] == "origin-test"

            await wait_until(routed)
            async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
                catalog = await viewer.catalog()
                for name in ("video", "audio"):
                    await viewer.subscribe(name)
                for name in ("video", "audio"):
                    check_media(await viewer.wait_objects(name, 4), init_of(catalog, name))
                conn.close()  # the publisher goes away
                done = await viewer.wait_done("video", within=10)
                assert done.code == PublishDoneCode.TRACK_ENDED
                assert "not back within 1 s" in done.reason
        finally:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            await pub.close()
    await wait_until(lambda: origin.node.inputs.get(input_id) is None)
    record = await origin.bus.get(INPUT_STATUS_PREFIX + input_id)
    assert record is not None and record["status"] == "idle"

    async def unrouted() -> bool:
        return await origin.bus.get(ROUTE_PREFIX + f"stream/{ORG}/{input_id}") is None

    await wait_until(unrouted)


async def test_drain_sends_goaway_and_ends_broadcasts(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    namespace = f"stream/{ORG}/{input_id}"
    async with publishing(origin, input_id, key):
        await wait_live(origin, input_id)

        async def routed() -> bool:
            return await origin.bus.get(ROUTE_PREFIX + namespace) is not None

        await wait_until(routed)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            await viewer.catalog()
            await viewer.subscribe("audio")
            await viewer.wait_objects("audio", 1)
            drain = asyncio.create_task(origin.node.drain(grace=1.0))
            done = await viewer.wait_done("audio", within=5)
            assert done.code == PublishDoneCode.GOING_AWAY
            await asyncio.wait_for(viewer.goaway.wait(), 5)
            await drain
    assert origin.node.draining and origin.node.inputs.get(input_id) is None

    async def unrouted() -> bool:
        return await origin.bus.get(ROUTE_PREFIX + namespace) is None

    await wait_until(unrouted)
    assert (await origin.bus.get(NODE_PREFIX + "origin-test")) is not None  # until stop()


async def test_stream_key_in_client_setup_covers_the_session(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    options = SessionOptions(auth_token=key.encode())
    async with connect(origin.url, verify=False, options=options) as conn:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), None)
        await pub.announce()  # no token on PUBLISH_NAMESPACE: the setup's key is used
        await pub.close()
    async with connect(
        origin.url, verify=False, options=SessionOptions(auth_token=b"sk_x")
    ) as conn:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), None)
        with pytest.raises(RequestFailed) as info:
            await pub.announce()
        await pub.close()
    assert info.value.rejection.code == RequestErrorCode.UNAUTHORIZED


async def test_publish_namespace_done_ends_the_broadcast_cleanly(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with publishing(origin, input_id, key) as pub:
        await wait_live(origin, input_id)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            await viewer.catalog()
            await viewer.subscribe("video")
            await viewer.wait_objects("video", 1)
            assert pub.announce_request is not None
            pub.conn.session.publish_namespace_done(pub.announce_request)
            done = await viewer.wait_done("video", within=5)
            assert done.code == PublishDoneCode.TRACK_ENDED
        # The origin let go of the publisher's tracks.
        await wait_until(lambda: sum(pub.unsubscribed.values()) == 3)
    assert origin.node.inputs.get(input_id) is None


async def test_rotation_drops_a_publisher_admitted_before_its_catalog(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with connect(origin.url, verify=False) as conn:
        pub = MoqtTestPublisher(conn, ns(ORG, input_id), key)
        await pub.announce()  # admitted; no catalog yet, so no broadcast
        await wait_until(lambda: CATALOG_TRACK in pub.subscribes)
        await rotate_key(origin.bus, input_id, new_key(), ORG)
        closed = await conn.wait_closed(grace=3)
        await pub.close()
    assert closed.code == SessionCloseCode.UNAUTHORIZED
    assert "rotated" in closed.reason


async def test_media_that_overtakes_its_catalog_is_held_until_the_catalog(
    origin: Origin, tmp_path: Path
) -> None:
    """QUIC streams are independent: a group's stream can reach the origin before the
    catalog written ahead of it. The group is held (bounded) and goes out once the catalog
    arrives, so a publisher that pauses after its first group still goes live."""
    clip = make_clip(tmp_path / "clip", bitrate=5e5, fps=30, group_seconds=0.5)
    input_id, key = await origin.new_input()
    options = SessionOptions(auth_token=key.encode())
    async with connect(origin.url, verify=False, options=options) as conn:
        session = conn.session
        rids = {}
        for name in (b".catalog", b"video"):
            rids[name] = session.publish(ns(ORG, input_id), name)
            assert isinstance(await conn.wait_response(rids[name]), PublishAccepted)
        handle = session.open_subgroup(rids[b"video"], 0, 0)
        for index in range(clip.per_group):
            session.write_object(handle, index, clip.payload(index))
        session.end_subgroup(handle)
        await asyncio.sleep(0.5)  # the whole group is in, and no catalog yet
        assert origin.node.inputs.get(input_id) is None
        handle = session.open_subgroup(rids[b".catalog"], 0, 0)
        session.write_object(handle, 0, clip.catalog())
        session.end_subgroup(handle)
        await wait_live(origin, input_id, within=5)
