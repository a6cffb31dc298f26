"""The asyncio RTMP server against a raw OBS-like client on real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct
from pathlib import Path

import pytest
import structlog.testing

from origin.rtmp import (
    ConnectionLimits,
    EndReason,
    FlvMuxer,
    MediaTag,
    PublishEnd,
    PublishInfo,
    RtmpServerSettings,
    TagType,
)
from tests.origin.rtmp.conftest import (
    INPUT_ID,
    ORG_ID,
    STREAM_KEY,
    Harness,
    RecordingSink,
    ffprobe_like,
    handler_tasks,
    running_server,
)
from tests.origin.rtmp.obs_client import (
    ObsLikeClient,
    RtmpStatusError,
    amf_encode_all,
    read_flv_tags,
)

pytestmark = pytest.mark.timeout(30)

APP = f"live/{INPUT_ID}"


async def wait_no_handlers(h: Harness, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while handler_tasks() or h.server.statistics().connections_active:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def publishing_client(h: Harness, key: str = STREAM_KEY, app: str = APP) -> ObsLikeClient:
    client = await ObsLikeClient.open("127.0.0.1", h.port)
    await client.connect("127.0.0.1", h.port, app)
    await client.start_publish(key)
    return client


async def test_obs_like_publish_end_to_end(
    rtmp: Harness, sample_flv: bytes, ffmpeg_exe: str, tmp_path: Path
) -> None:
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    info = await client.connect("127.0.0.1", rtmp.port, APP)
    assert info["code"] == "NetConnection.Connect.Success"
    types = [m.type_id for m in client.received]
    assert {5, 6, 1} <= set(types), "window ack size, peer bandwidth, chunk size before _result"
    assert client.in_chunk_size == 4096
    status = await client.start_publish(STREAM_KEY)
    assert status["code"] == "NetStream.Publish.Start"
    assert status["level"] == "status"
    fc = [m.amf() for m in client.received if m.type_id == 20 and m.amf()[0] == "onFCPublish"]
    assert fc and fc[0][3]["code"] == "NetStream.Publish.Start"

    file_tags = [t for t in read_flv_tags(sample_flv) if t.tag_type in (8, 9)]
    await client.send_metadata(
        {
            "width": 640.0,
            "height": 360.0,
            "framerate": 30.0,
            "videocodecid": 7.0,
            "audiocodecid": 10.0,
            "encoder": "obs-output module (libobs version 30.0.0)",
        }
    )
    for tag in file_tags:
        await client.send_tag(tag)
    await client.stop_publish(STREAM_KEY)
    unpub = await client.wait_command("onFCUnpublish")
    assert unpub[3]["code"] == "NetStream.Unpublish.Success"

    sink = await rtmp.wait_sink()
    end = await sink.wait_ended()
    assert end.reason is EndReason.UNPUBLISHED and end.clean
    await client.close()

    assert sink.info.external_input_id == INPUT_ID
    assert sink.info.org_id == ORG_ID
    assert sink.info.namespace == f"stream/{ORG_ID}/{INPUT_ID}"
    assert sink.info.flash_ver.startswith("FMLE/3.0")
    assert sink.metadata == [
        {
            "width": 640.0,
            "height": 360.0,
            "framerate": 30.0,
            "videocodecid": 7.0,
            "audiocodecid": 10.0,
            "encoder": "obs-output module (libobs version 30.0.0)",
        }
    ]
    assert [(t.tag_type, t.timestamp, t.data) for t in sink.tags] == [
        (t.tag_type, t.timestamp, t.data) for t in file_tags
    ]
    video = [t for t in sink.tags if t.is_video]
    assert video[0].is_sequence_header and video[0].video_header().codec == "avc1"
    keyframes = [t.timestamp for t in video if t.is_keyframe and not t.is_sequence_header]
    assert len(keyframes) >= 2
    assert all(abs(b - a - 1000) <= 50 for a, b in itertools.pairwise(keyframes)), keyframes
    audio = [t for t in sink.tags if t.is_audio]
    assert audio[0].is_sequence_header and audio[0].audio_header().codec == "mp4a"
    assert rtmp.auth_calls == [(INPUT_ID, STREAM_KEY)]

    mux = FlvMuxer()
    out = tmp_path / "obs.flv"
    out.write_bytes(
        mux.header() + mux.metadata(sink.metadata[0]) + b"".join(mux.tag(t) for t in sink.tags)
    )
    frames, _, stderr = ffprobe_like(ffmpeg_exe, out)
    assert stderr == ""
    assert frames == len([t for t in video if t.video_header().packet_type == 1])  # NALU tags


async def test_ffmpeg_style_split_app_and_name(rtmp: Harness) -> None:
    client = await publishing_client(rtmp, key=f"{INPUT_ID}/{STREAM_KEY}", app="live")
    await client.close()
    sink = await rtmp.wait_sink()
    assert sink.info.external_input_id == INPUT_ID
    assert (await sink.wait_ended()).reason is EndReason.CONNECTION_LOST


async def test_wrong_key_is_refused_and_closed(rtmp: Harness) -> None:
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await client.connect("127.0.0.1", rtmp.port, APP)
    with pytest.raises(RtmpStatusError) as err:
        await client.start_publish("sk_wrong")
    assert err.value.info["code"] == "NetStream.Publish.BadName"
    assert err.value.info["level"] == "error"
    assert err.value.info["description"] == "invalid stream key"
    assert await client.wait_closed_by_server()
    assert rtmp.sinks == []
    assert rtmp.server.statistics().publishes_refused == 1


async def test_malformed_publish_name_is_refused(rtmp: Harness) -> None:
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await client.connect("127.0.0.1", rtmp.port, "live")
    with pytest.raises(RtmpStatusError) as err:
        await client.start_publish(STREAM_KEY)  # app "live" needs "<id>/<key>"
    assert err.value.info["code"] == "NetStream.Publish.BadName"
    assert "external_input_id" in err.value.info["description"]
    assert await client.wait_closed_by_server()
    assert rtmp.auth_calls == []


async def test_unknown_app_is_rejected_at_connect(rtmp: Harness) -> None:
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    with pytest.raises(RtmpStatusError) as err:
        await client.connect("127.0.0.1", rtmp.port, "vod")
    assert err.value.info["code"] == "NetConnection.Connect.Rejected"
    assert await client.wait_closed_by_server()


async def test_second_publisher_for_same_input_is_refused(rtmp: Harness, sample_flv: bytes) -> None:
    first = await publishing_client(rtmp)
    second = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await second.connect("127.0.0.1", rtmp.port, APP)
    with pytest.raises(RtmpStatusError) as err:
        await second.start_publish(STREAM_KEY)
    assert err.value.info["code"] == "NetStream.Publish.BadName"
    assert "already publishing" in err.value.info["description"]
    assert await second.wait_closed_by_server()
    # The first publisher is unaffected.
    tags = [t for t in read_flv_tags(sample_flv) if t.tag_type in (8, 9)][:10]
    for tag in tags:
        await first.send_tag(tag)
    await first.stop_publish(STREAM_KEY)
    sink = rtmp.sinks[0]
    assert (await sink.wait_ended()).clean
    assert len(sink.tags) == 10
    assert len(rtmp.sinks) == 1
    await first.close()
    # Once it ended, the input can be published again.
    third = await publishing_client(rtmp)
    await third.close()
    assert (await (await rtmp.wait_sink(1)).wait_ended()).reason is EndReason.CONNECTION_LOST


async def test_clean_end_and_abrupt_disconnect_are_distinct(
    rtmp: Harness, sample_flv: bytes
) -> None:
    tags = [t for t in read_flv_tags(sample_flv) if t.tag_type in (8, 9)][:6]
    clean = await publishing_client(rtmp)
    for tag in tags:
        await clean.send_tag(tag)
    await clean.stop_publish(STREAM_KEY)
    end = await (await rtmp.wait_sink(0)).wait_ended()
    await clean.close()
    assert (end.reason, end.clean, end.detail) == (EndReason.UNPUBLISHED, True, "FCUnpublish")

    abrupt = await publishing_client(rtmp)
    for tag in tags:
        await abrupt.send_tag(tag)
    abrupt.abort()
    sink = await rtmp.wait_sink(1)
    end = await sink.wait_ended()
    assert end.reason is EndReason.CONNECTION_LOST and not end.clean
    assert len(sink.tags) == 6
    assert [e.reason for e in rtmp.sinks[0].ends] == [EndReason.UNPUBLISHED], "one end notice"


async def test_delete_stream_alone_is_a_clean_end(rtmp: Harness) -> None:
    client = await publishing_client(rtmp)
    await client.invoke("deleteStream", None, float(client.stream_id))
    end = await (await rtmp.wait_sink()).wait_ended()
    assert (end.reason, end.detail) == (EndReason.UNPUBLISHED, "deleteStream")
    await client.close()


async def test_window_acknowledgements_and_ping(rtmp: Harness, sample_flv: bytes) -> None:
    client = await publishing_client(rtmp)
    await client.send_message(2, 5, 0, 0, struct.pack(">I", 8192))  # ack me every 8 KiB
    await client.send_message(2, 4, 0, 0, struct.pack(">HI", 6, 123456))  # ping request
    for tag in [t for t in read_flv_tags(sample_flv) if t.tag_type in (8, 9)][:20]:
        await client.send_tag(tag)
    acks: list[int] = []
    pong = None
    async with asyncio.timeout(5):
        while not acks or pong is None:
            msg = await client.read_message()
            if msg.type_id == 3:
                acks.append(struct.unpack(">I", msg.payload)[0])
            elif msg.type_id == 4 and msg.payload[:2] == b"\x00\x07":
                pong = struct.unpack(">I", msg.payload[2:6])[0]
    assert pong == 123456
    assert acks[0] >= 8192
    await client.close()


async def test_play_is_refused(rtmp: Harness) -> None:
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await client.connect("127.0.0.1", rtmp.port, APP)
    await client.invoke("createStream", None)
    await client.wait_command("_result")
    await client.invoke("play", None, STREAM_KEY, sid=1, csid=8)
    values = await client.wait_command("onStatus")
    assert values[3]["code"] == "NetStream.Play.Failed"
    assert await client.wait_closed_by_server()


async def test_garbage_and_truncated_handshakes_do_not_hurt_the_server(rtmp: Harness) -> None:
    # TLS ClientHello-looking bytes instead of C0.
    r, w = await asyncio.open_connection("127.0.0.1", rtmp.port)
    w.write(b"\x16\x03\x01\x02\x00" + os.urandom(200))
    assert await r.read() == b""
    w.close()
    # Half a C1, then hang up.
    r, w = await asyncio.open_connection("127.0.0.1", rtmp.port)
    w.write(b"\x03" + os.urandom(700))
    await w.drain()
    w.close()
    # Garbage right after a valid handshake.
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await client.handshake()
    await client.send_raw(b"\xff" * 64 + os.urandom(2000))
    assert await client.wait_closed_by_server()
    # A chunk stream continuing (type 3) a header it never sent.
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await client.handshake()
    await client.send_raw(b"\xc5" + b"\x00" * 200)
    assert await client.wait_closed_by_server()
    # The server still serves a well-behaved publisher.
    good = await publishing_client(rtmp)
    await good.stop_publish(STREAM_KEY)
    assert (await (await rtmp.wait_sink()).wait_ended()).clean
    await good.close()
    # Every handler finished by itself (before the fixture closes the server).
    await wait_no_handlers(rtmp)
    stats = rtmp.server.statistics()
    assert stats.peer_errors == 3
    assert stats.connections_accepted == 5


async def test_handshake_and_idle_timeouts() -> None:
    settings = RtmpServerSettings(handshake_timeout=1.0, idle_timeout=1.0)
    async with running_server(settings) as h:
        r, w = await asyncio.open_connection("127.0.0.1", h.port)
        w.write(b"\x03" + b"\x00" * 100)  # truncated C1, then silence
        async with asyncio.timeout(3):
            assert await r.read() == b""
        w.close()
        client = await publishing_client(h)
        end = await (await h.wait_sink()).wait_ended(within=3)
        assert end.reason is EndReason.IDLE_TIMEOUT
        assert await client.wait_closed_by_server()
        await wait_no_handlers(h)
        assert h.server.statistics().timeouts == 2


async def test_oversize_chunk_size_and_message_are_refused() -> None:
    limits = ConnectionLimits(max_chunk_size=8192, max_message_size=64 * 1024)
    async with running_server(RtmpServerSettings(limits=limits)) as h:
        client = await publishing_client(h)
        await client.send_message(2, 1, 0, 0, struct.pack(">I", 1 << 20))
        assert await client.wait_closed_by_server()
        end = await (await h.wait_sink(0)).wait_ended()
        assert end.reason is EndReason.PROTOCOL_ERROR and "limit_exceeded" in end.detail

        client = await publishing_client(h)
        header = bytes([0x06]) + (0).to_bytes(3, "big") + (200_000).to_bytes(3, "big") + b"\x09"
        await client.send_raw(header + struct.pack("<I", client.stream_id) + b"\x17" * 4096)
        assert await client.wait_closed_by_server()
        end = await (await h.wait_sink(1)).wait_ended()
        assert end.reason is EndReason.PROTOCOL_ERROR and "200000" in end.detail


async def test_disconnect_ends_the_publish_and_tells_the_encoder(rtmp: Harness) -> None:
    client = await publishing_client(rtmp)
    assert rtmp.server.live_inputs() == [INPUT_ID]
    assert await rtmp.server.disconnect(INPUT_ID, "stream key rotated")
    values = await client.wait_command("onStatus")
    assert values[3]["level"] == "error" and values[3]["description"] == "stream key rotated"
    assert await client.wait_closed_by_server()
    end = await rtmp.sinks[0].wait_ended()
    assert (end.reason, end.detail) == (EndReason.KICKED, "stream key rotated")
    assert rtmp.server.live_inputs() == []
    assert not await rtmp.server.disconnect(INPUT_ID, "again")


async def test_server_close_ends_live_publishes() -> None:
    async with running_server() as h:
        client = await publishing_client(h)
        sink = await h.wait_sink()
        await h.server.close()
        assert (await sink.wait_ended()).reason is EndReason.SERVER_CLOSED
        assert await client.wait_closed_by_server()


async def test_failing_authorizer_and_sink_are_contained(sample_flv: bytes) -> None:
    async with running_server() as h:

        async def broken_auth(input_id: str, key: str) -> object:
            raise ConnectionError("redis down")

        h.server._authorize = broken_auth  # type: ignore[assignment]
        client = await ObsLikeClient.open("127.0.0.1", h.port)
        await client.connect("127.0.0.1", h.port, APP)
        with pytest.raises(RtmpStatusError) as err:
            await client.start_publish(STREAM_KEY)
        assert err.value.info["code"] == "NetStream.Publish.Denied"
        assert "retry later" in err.value.info["description"]
        assert await client.wait_closed_by_server()

    async with running_server() as h:
        client = await publishing_client(h)
        sink = await h.wait_sink()

        async def broken_media(tag: MediaTag) -> None:
            raise ValueError("disk full")

        sink.on_media = broken_media  # type: ignore[method-assign]
        tag = next(t for t in read_flv_tags(sample_flv) if t.tag_type == TagType.VIDEO)
        await client.send_tag(tag)
        assert await client.wait_closed_by_server()
        assert (await sink.wait_ended()).reason is EndReason.SINK_FAILED


async def test_connection_cap() -> None:
    async with running_server(RtmpServerSettings(max_connections=1)) as h:
        first = await ObsLikeClient.open("127.0.0.1", h.port)
        await first.connect("127.0.0.1", h.port, APP)
        r, w = await asyncio.open_connection("127.0.0.1", h.port)
        async with asyncio.timeout(3):
            assert await r.read() == b""
        w.close()
        assert h.server.statistics().connections_refused == 1
        await first.close()


async def test_connection_without_publish_is_closed_after_publish_timeout() -> None:
    settings = RtmpServerSettings(publish_timeout=1.0, idle_timeout=5)
    async with running_server(settings) as h:
        client = await ObsLikeClient.open("127.0.0.1", h.port)
        await client.connect("127.0.0.1", h.port, APP)
        # Keep the connection busy (pings every 100 ms) without ever publishing.
        loop = asyncio.get_running_loop()
        begin = loop.time()
        closed = asyncio.create_task(client.wait_closed_by_server(within=5))
        while not closed.done():
            with contextlib.suppress(ConnectionError):
                await client.send_message(2, 4, 0, 0, struct.pack(">HI", 6, 1))
            await asyncio.sleep(0.1)
        assert await closed
        assert 0.9 <= loop.time() - begin < 4
        assert h.server.statistics().timeouts == 1


async def test_logs_have_stable_keys_and_never_the_stream_key(sample_flv: bytes) -> None:
    with structlog.testing.capture_logs() as logs:
        async with running_server() as h:
            port = h.port
            client = await ObsLikeClient.open("127.0.0.1", h.port)
            # A key pasted into the server URL too: redacted from logs and PublishInfo.
            await client.connect("127.0.0.1", h.port, f"{APP}?key={STREAM_KEY}")
            await client.start_publish(STREAM_KEY)
            await client.send_metadata({"width": 640.0})
            await client.send_tag(read_flv_tags(sample_flv)[1])
            await client.stop_publish(STREAM_KEY)
            sink = await h.wait_sink()
            await sink.wait_ended()
            await client.close()
            bad = await ObsLikeClient.open("127.0.0.1", h.port)
            await bad.connect("127.0.0.1", h.port, f"{APP}/{STREAM_KEY}")
            with pytest.raises(RtmpStatusError):
                await bad.start_publish("")
    assert STREAM_KEY not in repr(logs)
    assert STREAM_KEY not in repr(sink.info)
    assert sink.info.tc_url == f"rtmp://127.0.0.1:{port}/{APP}"
    assert sink.info.app == APP
    events = [e["event"] for e in logs]
    for expected in (
        "rtmp.connection_opened",
        "rtmp.connect",
        "rtmp.publish_admitted",
        "rtmp.metadata",
        "rtmp.publish_ended",
        "rtmp.connection_closed",
        "rtmp.publish_refused",
    ):
        assert expected in events, expected
    for entry in logs:
        if entry["event"].startswith("rtmp.") and entry["event"] != "rtmp.listening":
            assert {"session", "peer"} <= entry.keys(), entry
    ended = next(e for e in logs if e["event"] == "rtmp.publish_ended")
    assert (ended["external_input_id"], ended["reason"], ended["clean"]) == (
        INPUT_ID,
        "unpublished",
        True,
    )


async def test_a_bug_in_one_connection_is_contained(sample_flv: bytes) -> None:
    async def broken_factory(info: object) -> object:
        return object()  # not a sink: the first tag fails inside the server

    async with running_server(sink_factory=broken_factory) as h:  # type: ignore[arg-type]
        client = await publishing_client(h)
        await client.send_tag(read_flv_tags(sample_flv)[1])
        assert await client.wait_closed_by_server()
        assert h.server.statistics().internal_errors == 1
        again = await ObsLikeClient.open("127.0.0.1", h.port)
        assert (await again.connect("127.0.0.1", h.port, APP))["code"].endswith("Success")
        await again.close()


async def test_client_that_pipelines_the_whole_publish(rtmp: Harness, sample_flv: bytes) -> None:
    """Everything up to the first media tag in one TCP write, without waiting for replies."""
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await client.handshake()
    tc_url = f"rtmp://127.0.0.1:{rtmp.port}/{APP}"
    first_video = next(t for t in read_flv_tags(sample_flv) if t.tag_type == 9)
    burst = b"".join(
        [
            client.encode_message(
                3, 20, 0, 0, amf_encode_all("connect", 1, {"app": APP, "tcUrl": tc_url})
            ),
            client.encode_message(3, 20, 0, 0, amf_encode_all("createStream", 2, None)),
            client.encode_message(
                4, 20, 1, 0, amf_encode_all("publish", 0, None, STREAM_KEY, "live")
            ),
            client.encode_message(6, 9, 1, 0, first_video.data),
        ]
    )
    await client.send_raw(burst)
    status = await client.wait_command("onStatus")
    assert status[3]["code"] == "NetStream.Publish.Start"
    sink = await rtmp.wait_sink()
    await client.close()
    await sink.wait_ended()
    assert [t.data for t in sink.tags] == [first_video.data]


async def test_slow_sinks_and_close_during_a_kick_leave_nothing_behind() -> None:
    started = asyncio.Event()

    class SlowEndSink(RecordingSink):
        async def on_end(self, end: PublishEnd) -> None:
            started.set()
            await asyncio.sleep(30)  # a sink that takes far too long to wind down

    async def factory(info: PublishInfo) -> SlowEndSink:
        return SlowEndSink(info)

    async with running_server(RtmpServerSettings(end_timeout=1.0), sink_factory=factory) as h:
        client = await publishing_client(h)
        kick = asyncio.create_task(h.server.disconnect(INPUT_ID, "key rotated"))
        async with asyncio.timeout(5):
            await started.wait()
        # The input is free again while the old sink still winds down.
        assert h.server.live_inputs() == []
        again = await publishing_client(h)
        assert h.server.live_inputs() == [INPUT_ID]
        await again.close()
        loop = asyncio.get_running_loop()
        begin = loop.time()
        # Interrupts the kicked sink's on_end, gives the other one end_timeout to finish.
        await h.server.close()
        assert loop.time() - begin < 3
        assert await kick
        assert await client.wait_closed_by_server()
        assert h.server.statistics().connections_active == 0
        assert handler_tasks() == []


async def test_publish_withdrawn_before_the_connect_answer_is_not_an_internal_error(
    rtmp: Harness,
) -> None:
    """Found by bench/fuzz rtmp_session: publish and deleteStream pipelined behind connect
    come back from accept_connect together; the withdrawn publish is neither admitted
    nor answered, and the connection goes on."""
    client = await ObsLikeClient.open("127.0.0.1", rtmp.port)
    await client.handshake()
    tc_url = f"rtmp://127.0.0.1:{rtmp.port}/{APP}"
    burst = b"".join(
        [
            client.encode_message(
                3, 20, 0, 0, amf_encode_all("connect", 1, {"app": APP, "tcUrl": tc_url})
            ),
            client.encode_message(3, 20, 0, 0, amf_encode_all("createStream", 2, None)),
            client.encode_message(
                4, 20, 1, 0, amf_encode_all("publish", 0, None, STREAM_KEY, "live")
            ),
            client.encode_message(3, 20, 0, 0, amf_encode_all("deleteStream", 0, None, 1.0)),
            client.encode_message(3, 20, 0, 0, amf_encode_all("createStream", 3, None)),
        ]
    )
    await client.send_raw(burst)
    async with asyncio.timeout(5):
        while (await client.wait_command("_result"))[1] != 3:
            pass
    assert rtmp.server.statistics().internal_errors == 0
    assert rtmp.sinks == []
    await client.close()
