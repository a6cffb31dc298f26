"""RTMP ingest through the ladder: a real ffmpeg encoder, a real ffmpeg ladder, real QUIC viewers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from media import CATALOG_TRACK
from media.ffmpeg import ffmpeg_exe
from mesh.bus import BusMessage
from moqt.errors import PublishDoneCode
from origin.status import INPUT_STATUS_CHANNEL
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin, new_key
from .helpers import Viewer, check_media, init_of, ns, rotate_key
from .test_moqt_ingest import publishing

pytestmark = [pytest.mark.timeout(90), pytest.mark.e2e]


def encoder_cmd(url: str, seconds: float) -> list[str]:
    """The encoder of the brief: 720p30 testsrc2 + sine, libx264 with a 2 s GOP, AAC, FLV."""
    return [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", url,
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def encoder(origin: Origin, input_id: str, key: str, seconds: float) -> AsyncIterator[Any]:
    url = f"rtmp://127.0.0.1:{origin.rtmp_port}/live/{input_id}/{key}"
    proc = await asyncio.create_subprocess_exec(
        *encoder_cmd(url, seconds), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


async def wait_live(origin: Origin, input_id: str, within: float = 30.0) -> None:
    await wait_until(lambda: origin.node.inputs.get(input_id) is not None, within, step=0.05)


@contextlib.asynccontextmanager
async def statuses(origin: Origin) -> AsyncIterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async with origin.bus.subscribe(INPUT_STATUS_CHANNEL) as messages:
            ready.set()
            message: BusMessage
            async for message in messages:
                if not message.resync:
                    seen.append(dict(message.data))

    ready = asyncio.Event()
    task = asyncio.create_task(follow())
    await ready.wait()
    await asyncio.sleep(0.1)
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_ladder_tracks_catalog_first_from_keyframes_one_upload(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with statuses(origin) as seen, encoder(origin, input_id, key, 14):
        await wait_live(origin, input_id)
        async with contextlib.AsyncExitStack() as stack:
            viewers = [
                await stack.enter_async_context(Viewer.open(origin.url, ns(ORG, input_id)))
                for _ in range(3)
            ]
            catalog = await viewers[0].catalog()
            names = sorted(t.name for t in catalog.tracks)
            assert names == ["240p", "360p", "audio"]  # the test ladder, capped at 720p
            assert {t.width for t in catalog.tracks if t.name == "360p"} == {640}
            for viewer in viewers:
                await viewer.catalog()
                for name in names:
                    await viewer.subscribe(name)
            for viewer in viewers:
                for name in names:
                    objects = await viewer.wait_objects(name, 6, within=30)
                    try:
                        check_media(objects[:6], init_of(catalog, name))
                    except AssertionError as exc:  # say whether the relay dropped (a loaded CI)
                        stats = origin.node.relay.statistics()
                        raise AssertionError(f"{name}: {exc}; relay: {stats}") from None
            stats = origin.node.relay.statistics()
            # One upstream per track (3 renditions + 2 catalog names), one RTMP upload.
            assert stats["upstream_subscriptions"] == 5
            assert stats["subscriptions"] >= 3 * 4
            rtmp = origin.node.rtmp
            assert rtmp is not None and rtmp.statistics().publishes_active == 1
            assert origin.node.rtmp_ingest.ffmpeg_starts == 1
    assert any(s["status"] == "live" and s["external_input_id"] == input_id for s in seen)


async def test_ffmpeg_killed_reports_error_and_restarts(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with statuses(origin) as seen, encoder(origin, input_id, key, 25):
        await wait_live(origin, input_id)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            catalog = await viewer.catalog()
            await viewer.subscribe("audio")
            await viewer.wait_objects("audio", 4, within=20)
            pid = origin.node.rtmp_ingest.transcoder_pid(input_id)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await wait_until(
                lambda: any(s["status"] == "error" for s in seen), within=10, step=0.05
            )
            error = next(s for s in seen if s["status"] == "error")
            assert error["external_input_id"] == input_id and "ffmpeg" in error["detail"]
            await wait_until(lambda: origin.node.rtmp_ingest.ffmpeg_starts == 2, within=15)
            before = len(viewer.tracks["audio"].objects)
            objects = await viewer.wait_objects("audio", before + 6, within=30)
            # The same subscription continues, group ids increasing, still decodable.
            groups = [o.group_id for o in objects]
            assert groups == sorted(groups)
            assert viewer.tracks["audio"].done is None
            init = init_of(await viewer.catalog(), "audio")
            assert init.data == init_of(catalog, "audio").data or init.tracks
    assert origin.node.rtmp_ingest.ffmpeg_failures >= 1


async def test_wrong_key_is_refused_with_bad_name(origin: Origin) -> None:
    input_id, _ = await origin.new_input()
    async with encoder(origin, input_id, new_key(), 2) as proc:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    assert "invalid stream key" in err.decode(errors="replace")
    assert origin.node.inputs.get(input_id) is None


async def test_rotation_kicks_within_one_second_and_reconnect_resumes(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with encoder(origin, input_id, key, 20) as proc:
        await wait_live(origin, input_id)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            await viewer.catalog()
            await viewer.subscribe("audio")
            first = await viewer.wait_objects("audio", 2, within=20)
            last_group = first[-1].group_id
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            new = new_key()
            await rotate_key(origin.bus, input_id, new, ORG)
            done = await viewer.wait_done("audio", within=5)
            assert loop.time() - t0 < 1.0
            assert done.code == PublishDoneCode.UNAUTHORIZED
            last_group = max(o.group_id for o in viewer.tracks["audio"].objects)
            await asyncio.wait_for(proc.wait(), 10)  # the encoder was disconnected
    # The new key publishes the same namespace again, group ids above the old ones.
    async with encoder(origin, input_id, new, 10):
        await wait_live(origin, input_id)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            await viewer.catalog()
            await viewer.subscribe("audio", current_group=False)  # what comes next
            again = await viewer.wait_objects("audio", 1, within=20)
            assert again[0].group_id > last_group
            assert viewer.tracks[CATALOG_TRACK].objects[-1].group_id > 0


async def test_rtmp_publish_of_an_input_live_over_moqt_is_dropped(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    async with publishing(origin, input_id, key):
        await wait_live(origin, input_id)
        moqt_broadcast = origin.node.inputs.get(input_id)
        assert moqt_broadcast is not None and moqt_broadcast.kind == "moqt"
        async with encoder(origin, input_id, key, 20) as proc:
            await asyncio.wait_for(proc.wait(), 30)  # disconnected once its ladder is ready
        live = origin.node.inputs.get(input_id)
        assert live is moqt_broadcast and not live.broadcast.ended


async def test_audio_only_encoder_gets_an_audio_only_broadcast(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    url = f"rtmp://127.0.0.1:{origin.rtmp_port}/live/{input_id}/{key}"
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error", "-re", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=48000", "-t", "8", "-c:a", "aac", "-b:a", "128k",
        "-f", "flv", url,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_live(origin, input_id)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            catalog = await viewer.catalog()
            assert [t.name for t in catalog.tracks] == ["audio"]
            await viewer.subscribe("audio")
            check_media(await viewer.wait_objects("audio", 3), init_of(catalog, "audio"))
        assert origin.node.rtmp_ingest.ffmpeg_failures == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
