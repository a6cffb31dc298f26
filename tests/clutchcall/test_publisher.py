"""Publisher / AsyncPublisher: what they put on the wire, their sources, their errors."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest

from clutchcall.streams import (
    AsyncBroadcastViewer,
    AsyncPublisher,
    ConfigurationError,
    Publisher,
    PublishError,
)
from media import Catalog, parse_object
from media.ffmpeg import TestPatternSource, encoder_command, ffmpeg_exe
from media.fmp4 import parse_init_segment
from moqt.aio import (
    MoqtConnection,
    SessionOptions,
    connect,
    serve,
    server_configuration,
    write_self_signed,
)
from moqt.errors import RequestErrorCode, SessionCloseCode
from moqt.events import (
    Event,
    ObjectReceived,
    PublishNamespaceRequested,
    SubscribeAccepted,
)
from tests.clutchcall.dataplane import NAMESPACE, Recorder, decode, running_relay

pytestmark = pytest.mark.timeout(60)

NS = tuple(NAMESPACE.encode().split(b"/"))


async def _objects(conn: MoqtConnection, track: bytes, count: int) -> list[ObjectReceived]:
    ok = await conn.request(conn.session.subscribe(NS, track), SubscribeAccepted)
    got: list[ObjectReceived] = []
    while len(got) < count:
        event = await asyncio.wait_for(conn.wait_event(), 10)
        if isinstance(event, ObjectReceived) and event.request_id == ok.request_id:
            got.append(event)
    return got


async def test_catalog_then_groups_of_cmaf_chunks_each_group_opening_with_a_keyframe(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path) as relay:
        pub = AsyncPublisher(relay.url(), timeslice_ms=500, cafile=str(relay.cert))
        await pub.publish("lv_test", "sk_x", "testsrc", NAMESPACE)
        try:
            async with connect(relay.url(), cafile=str(relay.cert)) as conn:
                (catalog_obj,) = await _objects(conn, b".catalog", 1)
                catalog = Catalog.parse(catalog_obj.payload)
                video = catalog.by_role("video")[0]
                audio = catalog.by_role("audio")[0]
                assert (video.name, audio.name) == ("video", "audio")
                assert video.codec and video.codec.startswith("avc1") and video.width == 640
                assert audio.codec == "mp4a.40.2" and audio.samplerate == 48000
                assert video.max_group_duration == 2000
                init = parse_init_segment(video.init_data or b"")
                objects = await _objects(conn, b"video", 10)
        finally:
            result = await pub.stop()
    assert result is not None and result.reason == "stopped" and result.objects > 10
    by_group: dict[int, list[ObjectReceived]] = {}
    for obj in objects:
        by_group.setdefault(obj.group_id, []).append(obj)
    complete = [g for g in sorted(by_group)[1:-1]]  # whole groups (the first may be joined late)
    assert complete, sorted(by_group)
    for group in complete:
        ids = [o.object_id for o in by_group[group]]
        assert ids == list(range(len(ids)))
        assert len(ids) == 4  # 2 s GOP / 500 ms chunks (timeslice_ms)
        frags = [
            parse_object(o.payload, init, group_start=o.object_id == 0) for o in by_group[group]
        ]
        assert all(abs(f[0].duration_seconds - 0.5) < 0.02 for f in frags)


async def test_a_file_is_published_at_its_rate_and_its_end_ends_the_broadcast(
    tmp_path: Path,
) -> None:
    media_file = tmp_path / "clip.mp4"
    pattern = TestPatternSource(width=320, height=180, duration=4.0, realtime=False)
    cmd = encoder_command(ffmpeg_exe(), pattern, str(media_file), container="fmp4")
    cmd[cmd.index("-movflags") + 1] = "+faststart"  # a plain (not fragmented) MP4 file
    await asyncio.to_thread(subprocess.run, cmd, check=True, capture_output=True, timeout=60)
    async with running_relay(tmp_path) as relay:
        pub = AsyncPublisher(relay.url(), timeslice_ms=500, cafile=str(relay.cert))
        await pub.publish("lv_test", "sk_x", str(media_file), NAMESPACE)
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert),
        )  # fmt: skip
        result = await asyncio.wait_for(pub.wait(), 20)
        reason, _ = await asyncio.wait_for(viewer.wait_closed(), 10)
    assert result.reason == "source_ended" and 3.5 < result.duration < 8
    assert reason == "ended"
    assert decode(rec.write(tmp_path / "seen.mp4")).errors == ""


def test_sync_publisher_with_a_live_ffmpeg_pipe(tmp_path: Path) -> None:
    """The seed's shape: ``publisher(timeslice_ms=)`` then ``publish(id, key, source, ns)``,
    the source being an ffmpeg process writing fMP4 to a pipe."""

    async def serve_relay(ready: asyncio.Future[tuple[str, str]], done: asyncio.Event) -> None:
        async with running_relay(tmp_path) as relay:
            ready.set_result((relay.url("https"), str(relay.cert)))
            await done.wait()

    loop = asyncio.new_event_loop()
    ready: asyncio.Future[tuple[str, str]] = loop.create_future()
    done = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve_relay(ready, done),))
    thread.start()
    try:
        while not ready.done():
            threading.Event().wait(0.05)
        url, cert = ready.result()
        pattern = TestPatternSource(width=320, height=180, realtime=True)
        ffmpeg = subprocess.Popen(
            encoder_command(ffmpeg_exe(), pattern, "pipe:1", container="fmp4"),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            pub = Publisher(url, timeslice_ms=500, cafile=cert)
            pub.publish("lv_test", "sk_x", ffmpeg, NAMESPACE)
            assert pub.running
            threading.Event().wait(3)
            assert pub.statistics()["subscribers"] == 0  # nobody watches: nothing is sent
            result = pub.stop()
            assert result is not None and result.reason == "stopped"
            assert not pub.running
        finally:
            ffmpeg.kill()
            ffmpeg.wait()
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(20)
        loop.close()


async def test_bad_arguments_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        AsyncPublisher("rtmp://h/live")
    with pytest.raises(ConfigurationError):
        AsyncPublisher("moqt://127.0.0.1:9", timeslice_ms=5)
    pub = AsyncPublisher("moqt://127.0.0.1:9", verify=False)
    with pytest.raises(ConfigurationError, match="does not end with"):
        await pub.publish("lv_a", "sk", "testsrc", "stream/org/lv_b")
    with pytest.raises(ConfigurationError, match="neither 'testsrc' nor a readable file"):
        await pub.publish("lv_a", "sk", str(tmp_path / "missing.mp4"), "stream/org/lv_a")
    with pytest.raises(ConfigurationError, match="unsupported source"):
        await pub.publish("lv_a", "sk", 42, "stream/org/lv_a")
    with pytest.raises(ConfigurationError):
        await pub.wait()


async def test_unreachable_relay_is_a_network_error() -> None:
    pub = AsyncPublisher("moqt://127.0.0.1:9", verify=False, connect_timeout=1.0)
    with pytest.raises(PublishError) as err:
        await pub.publish("lv_a", "sk", iter([b""]), "stream/org/lv_a")
    assert err.value.reason == "network"


async def test_a_refused_stream_key_is_a_refused_error(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, ["localhost"])
    seen: list[bytes] = []

    def on_session(conn: MoqtConnection) -> None:
        def handle(c: MoqtConnection, event: Event) -> None:
            if isinstance(event, PublishNamespaceRequested):
                seen.extend(t.value for t in event.auth_tokens)
                c.session.reject_request(
                    event.request_id, RequestErrorCode.UNAUTHORIZED, "wrong stream key"
                )

        conn.set_event_handler(handle)

    server = await serve(
        "127.0.0.1", 0, configuration=server_configuration(cert, key), on_session=on_session,
        options=SessionOptions(),
    )  # fmt: skip
    try:
        pub = AsyncPublisher(f"moqt://127.0.0.1:{server.address[1]}", verify=False)
        with pytest.raises(PublishError) as err:
            await pub.publish("lv_a", "sk_wrong", "testsrc", "stream/org/lv_a")
    finally:
        server.close()
    assert err.value.reason == "refused" and "wrong stream key" in str(err.value)
    assert seen == [b"sk_wrong"]  # the key travels as the AUTHORIZATION TOKEN


async def test_a_source_that_is_not_fmp4_is_a_source_error(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        pub = AsyncPublisher(relay.url(), cafile=str(relay.cert))
        await pub.publish("lv_test", "sk", iter([b"\x00\x00\x00\x05junk" * 10]), NAMESPACE)
        with pytest.raises(PublishError) as err:
            await asyncio.wait_for(pub.wait(), 10)
    assert err.value.reason == "source"


async def test_a_lost_relay_session_is_reconnected_while_the_source_runs(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        pub = AsyncPublisher(relay.url(), timeslice_ms=500, cafile=str(relay.cert), reconnect=5)
        await pub.publish("lv_test", "sk_x", "testsrc", NAMESPACE)
        await asyncio.sleep(1.0)
        for session in relay.node.sessions():
            if session.peer.announced:  # the publisher's session (as if the origin restarted)
                session.connection.close(SessionCloseCode.INTERNAL_ERROR, "origin restarting")
        await asyncio.sleep(1.5)
        assert pub.running and pub.statistics()["reconnects"] == 1
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert),
        )  # fmt: skip
        await asyncio.sleep(4.5)
        await viewer.close()
        result = await pub.stop()
        # Without reconnect, the same loss ends the broadcast with a network error.
        once = AsyncPublisher(relay.url(), cafile=str(relay.cert), reconnect=0)
        await once.publish("lv_test", "sk_x", "testsrc", NAMESPACE)
        for session in relay.node.sessions():
            if session.peer.announced:
                session.connection.close(SessionCloseCode.INTERNAL_ERROR, "origin restarting")
        with pytest.raises(PublishError) as err:
            await asyncio.wait_for(once.wait(), 10)
    assert err.value.reason == "network"
    assert result is not None and result.reason == "stopped"
    assert rec.chunks and rec.chunks[0].is_init  # the reconnected broadcast plays
    assert decode(rec.write(tmp_path / "after.mp4")).errors == ""
