"""BroadcastViewer / AsyncBroadcastViewer against a real relay and a real publisher (ffmpeg)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from pathlib import Path

import pytest

from clutchcall.streams import (
    AsyncBroadcastViewer,
    AsyncPublisher,
    BroadcastViewer,
    ConfigurationError,
    PlaybackError,
    Streams,
)
from media import split_fmp4
from media.fmp4 import Fragment, InitSegment
from moqt.aio import MoqtConnection, SessionOptions, serve, server_configuration
from moqt.errors import RequestErrorCode, SessionCloseCode
from moqt.events import Event, SetupCompleted, SubscribeRequested
from tests.clutchcall.dataplane import NAMESPACE, Recorder, decode, running_relay

pytestmark = pytest.mark.timeout(60)


async def _publish(url: str, cert: Path, *, timeslice_ms: int = 500) -> AsyncPublisher:
    pub = AsyncPublisher(url, timeslice_ms=timeslice_ms, cafile=str(cert))
    await pub.publish("lv_test", "sk_test", "testsrc", NAMESPACE)
    return pub


@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_init_first_then_media_in_order_and_the_file_plays(
    tmp_path: Path, scheme: str
) -> None:
    async with running_relay(tmp_path) as relay:
        pub = await _publish(relay.url(scheme), relay.cert)
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(scheme), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert),
        )  # fmt: skip
        await asyncio.sleep(5.5)
        assert await viewer.close() == ("closed", "closed by the application")
        await pub.stop()
    assert rec.closes == [("closed", "closed by the application")]
    assert rec.chunks[0].is_init and rec.chunks[0].kind == "init"
    assert not any(c.is_init for c in rec.chunks[1:])
    # The merged header declares video (1) and audio (2); chunks carry those ids.
    init = split_fmp4(rec.chunks[0].data)[0]
    assert isinstance(init, InitSegment)
    assert {(t.track_id, t.role) for t in init.tracks} == {(1, "video"), (2, "audio")}
    media = rec.chunks[1:]
    video = [c for c in media if c.kind == "video"]
    audio = [c for c in media if c.kind == "audio"]
    assert video and audio
    assert video[0].object_id == 0  # starts at a group boundary (a keyframe)
    positions = [(c.group_id or 0, c.object_id or 0) for c in video]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert audio[0].group_id == video[0].group_id
    # Decode times never go backwards within a track.
    times: dict[int, int] = {}
    for chunk in media:
        items = split_fmp4(rec.chunks[0].data + chunk.data)
        frag = items[-1]
        assert isinstance(frag, Fragment)
        assert frag.track_id == (1 if chunk.kind == "video" else 2)
        assert frag.base_media_decode_time >= times.get(frag.track_id, 0)
        times[frag.track_id] = frag.end_time
    decoded = decode(rec.write(tmp_path / "out.mp4"))
    assert decoded.errors == ""
    assert decoded.frames == len(video) * 15  # 0.5 s chunks at 30 fps
    assert decoded.seconds == pytest.approx(len(video) * 0.5, abs=0.1)


async def test_broadcast_end_closes_with_ended_after_the_last_chunk(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        pub = await _publish(relay.url(), relay.cert)
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert), audio=False,
        )  # fmt: skip
        await asyncio.wait_for(rec.media.wait(), 30)  # playing (a loaded host may take seconds)
        await pub.stop()
        reason, _ = await asyncio.wait_for(viewer.wait_closed(), 10)
    assert reason == "ended"
    assert rec.closes and rec.closes[0][0] == "ended"
    assert all(c.kind in ("init", "video") for c in rec.chunks)
    assert decode(rec.write(tmp_path / "out.mp4")).errors == ""


async def test_a_broadcast_that_is_not_live_ends_as_not_found(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert), start_timeout=1.0,
        )  # fmt: skip
        reason, detail = await asyncio.wait_for(viewer.wait_closed(), 10)
    assert reason == "not_found" and "stream/org_test/lv_test" in detail
    assert rec.chunks == []


async def test_nothing_listening_is_a_network_close(tmp_path: Path) -> None:
    rec = Recorder()
    viewer = await AsyncBroadcastViewer.open(
        f"moqt://127.0.0.1:9/{NAMESPACE}?token=x", on_chunk=rec.on_chunk,
        on_close=rec.on_close, verify=False, connect_timeout=1.0, reconnect=1.5,
    )  # fmt: skip
    reason, _ = await asyncio.wait_for(viewer.wait_closed(), 10)  # tried for 1.5 s, then gave up
    assert reason == "network" and rec.closes == [(reason, rec.closes[0][1])]


async def test_relay_going_away_mid_stream_is_a_network_close(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        pub = await _publish(relay.url(), relay.cert)
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert), reconnect=0,
        )  # fmt: skip
        await asyncio.sleep(3)
        # The relay drops every session (as a crashed POP would).
        for session in relay.node.sessions():
            session.connection.close(SessionCloseCode.INTERNAL_ERROR, "relay crashed")
        reason, _ = await asyncio.wait_for(viewer.wait_closed(), 10)
        await pub.stop()
    assert reason == "network"


async def test_a_lost_session_is_reconnected_and_playback_resumes_at_the_next_group(
    tmp_path: Path,
) -> None:
    async with running_relay(tmp_path) as relay:
        pub = await _publish(relay.url(), relay.cert)
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert), reconnect=5,
        )  # fmt: skip
        await asyncio.sleep(4)
        before = len(rec.chunks)
        assert before > 2
        # Only the viewer's session is cut (the publisher's, which announced, stays).
        for session in relay.node.sessions():
            if not session.peer.announced:
                session.connection.close(SessionCloseCode.INTERNAL_ERROR, "connection lost")
        await asyncio.sleep(6)
        assert not viewer.closed
        assert await viewer.close() == ("closed", "closed by the application")
        await pub.stop()
        # A relay that is gone for good: the viewer gives up after the reconnect window.
        rec2 = Recorder()
        pub2 = await _publish(relay.url(), relay.cert)
        viewer2 = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec2.on_chunk, on_close=rec2.on_close,
            cafile=str(relay.cert), reconnect=1.0, connect_timeout=0.5,
        )  # fmt: skip
        await asyncio.sleep(3)
        await relay.node.stop()
        reason, _ = await asyncio.wait_for(viewer2.wait_closed(), 15)
        assert reason == "network"
        await pub2.stop()
    assert len(rec.chunks) > before + 2  # it played on after the reconnect
    assert [c.is_init for c in rec.chunks].count(True) == 1  # same tracks: no second init
    video = [(c.group_id or 0, c.object_id or 0) for c in rec.chunks if c.kind == "video"]
    assert video == sorted(video) and len(set(video)) == len(video)  # nothing replayed
    decoded = decode(rec.write(tmp_path / "resumed.mp4"))
    assert decoded.errors == "" and decoded.frames == len(video) * 15


async def _auth_server(tmp_path: Path, mode: str) -> tuple[object, int]:
    """A MoQT server that refuses the viewer as a POP does: closing the session with
    UNAUTHORIZED 'auth_failed' at setup, or rejecting its SUBSCRIBE with UNAUTHORIZED."""
    from moqt.aio import write_self_signed

    cert, key = write_self_signed(tmp_path, ["localhost"])

    def on_session(conn: MoqtConnection) -> None:
        def handle(c: MoqtConnection, event: Event) -> None:
            if isinstance(event, SetupCompleted) and mode == "close":
                c.close(SessionCloseCode.UNAUTHORIZED, "auth_failed")
            elif isinstance(event, SubscribeRequested):
                c.session.reject_request(
                    event.request_id, RequestErrorCode.UNAUTHORIZED, "auth_failed"
                )

        conn.set_event_handler(handle)

    server = await serve(
        "127.0.0.1", 0, configuration=server_configuration(cert, key), on_session=on_session,
        options=SessionOptions(),
    )  # fmt: skip
    return server, server.address[1]


@pytest.mark.parametrize("mode", ["close", "reject"])
async def test_refused_token_is_auth_failed(tmp_path: Path, mode: str) -> None:
    server, port = await _auth_server(tmp_path, mode)
    try:
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            f"moqt://127.0.0.1:{port}/{NAMESPACE}?token=expired", on_chunk=rec.on_chunk,
            on_close=rec.on_close, verify=False,
        )  # fmt: skip
        reason, detail = await asyncio.wait_for(viewer.wait_closed(), 10)
    finally:
        server.close()  # type: ignore[attr-defined]
    assert (reason, detail) == ("auth_failed", "auth_failed")
    assert rec.chunks == [] and rec.closes == [("auth_failed", "auth_failed")]


def test_sync_viewer_runs_the_seed_shape(tmp_path: Path) -> None:
    """The synchronous API exactly as Recipe 4 uses it, with its own event-loop thread."""
    ready = threading.Event()
    stop = threading.Event()
    state: dict[str, object] = {}

    def serve_relay() -> None:
        async def main() -> None:
            async with running_relay(tmp_path) as relay:
                pub = await _publish(relay.url("https"), relay.cert)
                state["url"], state["cert"] = relay.playback_url("https"), str(relay.cert)
                ready.set()
                await asyncio.to_thread(stop.wait)
                await pub.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve_relay)
    thread.start()
    try:
        assert ready.wait(30)
        out = open(tmp_path / "broadcast.mp4", "wb")  # the recipe's shape
        closes: list[tuple[str, str]] = []

        def on_chunk(is_init: bool, chunk: object) -> None:
            out.write(chunk.data)  # type: ignore[attr-defined]

        def on_close(reason: str, detail: str) -> None:
            out.close()
            closes.append((reason, detail))

        viewer = BroadcastViewer.open(
            str(state["url"]), on_chunk=on_chunk, on_close=on_close, cafile=str(state["cert"])
        )
        time.sleep(4.5)
        assert viewer.close() == ("closed", "closed by the application")
        assert closes == [("closed", "closed by the application")]
        decoded = decode(tmp_path / "broadcast.mp4")
        assert decoded.errors == "" and decoded.frames >= 30
    finally:
        stop.set()
        thread.join(30)


async def test_bad_urls_are_configuration_errors() -> None:
    for url in ("http://x/stream/a", "moqt:///stream/a", "moqt://h:1/", "rtmp://h/live/x"):
        with pytest.raises(ConfigurationError):
            await AsyncBroadcastViewer.open(url)
    with pytest.raises(ConfigurationError):
        await AsyncBroadcastViewer.open("moqt://h:1/stream/a?token=a", token="b")


def _jwt_with(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256', 'kid': 'k'})}.{part(claims)}.c2ln"


def test_streams_data_plane_client_publishes_and_watches_by_token(tmp_path: Path) -> None:
    """``Streams(relay_url=).publisher(timeslice_ms=)`` and ``Streams(relay_url=, token=)``
    watching the namespace its playback token grants (the TypeScript SDK's shape)."""
    ready = threading.Event()
    stop = threading.Event()
    state: dict[str, str] = {}

    def serve_relay() -> None:
        async def main() -> None:
            async with running_relay(tmp_path) as relay:
                state["url"], state["cert"] = relay.url(), str(relay.cert)
                ready.set()
                await asyncio.to_thread(stop.wait)

        asyncio.run(main())

    thread = threading.Thread(target=serve_relay)
    thread.start()
    try:
        assert ready.wait(30)
        with Streams(relay_url=state["url"]) as data_plane:
            pub = data_plane.publisher(timeslice_ms=500, cafile=state["cert"])
            pub.publish("lv_test", "sk_x", "testsrc", NAMESPACE)
        token = _jwt_with({"sub": "lv_test", "ns": NAMESPACE})
        rec = Recorder()
        with Streams(relay_url=state["url"], token=token) as viewer_streams:
            viewer = viewer_streams.open_viewer(
                on_chunk=rec.on_chunk, on_close=rec.on_close, cafile=state["cert"]
            )
            time.sleep(4.5)
            viewer.close()
        # The seed's viewer({ onStarted, onError }) / attach / play / stop, in Python.
        out = io.BytesIO()
        started: list[bool] = []
        errors: list[PlaybackError] = []
        with Streams(relay_url=state["url"], token=token) as twin:
            player = twin.viewer(
                on_started=lambda: started.append(True), on_error=errors.append,
                cafile=state["cert"],
            )  # fmt: skip
            player.attach(out)
            with pytest.raises(ConfigurationError, match="base_url"):  # pb_: /vod/ of base_url
                player.play("pb_def456")
            with pytest.raises(ConfigurationError, match="not lv_other"):
                player.play("lv_other")
            player.play("lv_test")
            assert player.wait_started(20)
            time.sleep(1.0)
            player.stop()
        assert started == [True] and errors == []
        assert split_fmp4(out.getvalue())[0].__class__ is InitSegment
        pub.stop()
        assert rec.chunks and rec.chunks[0].is_init
        assert rec.closes == [("closed", "closed by the application")]
        with pytest.raises(ConfigurationError, match="needs a playback token"):
            Streams(relay_url=state["url"]).viewer().play("lv_test")
        with pytest.raises(ConfigurationError, match="names no namespace"):
            Streams(relay_url=state["url"], token=_jwt_with({"sub": "x"})).open_viewer()
        with pytest.raises(ConfigurationError, match="no relay_url"):
            Streams(base_url="http://x").publisher()
    finally:
        stop.set()
        thread.join(30)


async def test_close_while_reconnecting_stops_at_once(tmp_path: Path) -> None:
    async with running_relay(tmp_path) as relay:
        pub = AsyncPublisher(relay.url(), cafile=str(relay.cert), reconnect=30)
        await pub.publish("lv_test", "sk_x", "testsrc", NAMESPACE)
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert), reconnect=30, connect_timeout=0.5,
        )  # fmt: skip
        await asyncio.sleep(3)
        await relay.node.stop()  # both lose the relay and keep trying
        await asyncio.sleep(1.5)
        assert not viewer.closed and pub.running
        assert await asyncio.wait_for(viewer.close(), 5) == ("closed", "closed by the application")
        result = await asyncio.wait_for(pub.stop(), 5)
    assert result is not None and result.reason == "stopped"
    assert rec.closes == [("closed", "closed by the application")]
