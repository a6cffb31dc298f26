"""The publisher reconnect window (origin._reconnect): a dropped publisher's broadcast stays
open; the same input back within the window continues the same tracks, else it ends.

Real processes where it matters: an ffmpeg RTMP encoder killed with SIGKILL (its TCP
connection is lost, no unpublish), the origin's ffmpeg ladder, a MoQT viewer that stays
subscribed throughout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from media import Catalog
from moqt.errors import PublishDoneCode
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin, running_origin
from .helpers import Viewer, ns
from .test_rtmp_ingest import encoder, wait_live

pytestmark = [pytest.mark.timeout(90), pytest.mark.e2e]

LADDER = ("240p:240:300000",)


def _held(origin: Origin, input_id: str) -> bool:
    live = origin.node.inputs.get(input_id)
    return live is not None and live.broadcast.held


async def _kill(proc: asyncio.subprocess.Process) -> None:
    proc.kill()  # SIGKILL: the encoder's connection is lost, it never unpublishes
    await proc.wait()


async def test_rtmp_encoder_back_within_the_window_continues_the_same_tracks(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_origin(
        tmp_path, redis_url, ladder=LADDER, publisher_reconnect_window=20.0
    ) as origin:
        input_id, key = await origin.new_input()
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            async with encoder(origin, input_id, key, 60) as first:
                await wait_live(origin, input_id)
                await viewer.catalog()
                for name in ("240p", "audio"):
                    await viewer.subscribe(name)
                await viewer.wait_objects("240p", 3, within=30)
                live = origin.node.inputs.get(input_id)
                assert live is not None
                await _kill(first)
                await wait_until(lambda: _held(origin, input_id), within=15, step=0.05)
            dropped_at = {n: len(viewer.tracks[n].objects) for n in ("240p", "audio")}
            last = {n: viewer.tracks[n].objects[-1].group_id for n in ("240p", "audio")}
            async with encoder(origin, input_id, key, 60):
                for name in ("240p", "audio"):
                    await viewer.wait_objects(name, dropped_at[name] + 4, within=40)
                # The same subscriptions went on: no PUBLISH_DONE, group ids increasing
                # across the drop, the same broadcast (resumed, not replaced).
                for name in ("240p", "audio"):
                    rec = viewer.tracks[name]
                    assert rec.done is None
                    groups = [o.group_id for o in rec.objects]
                    assert groups == sorted(groups)
                    assert rec.objects[-1].group_id > last[name]
                again = origin.node.inputs.get(input_id)
                assert again is not None and again.broadcast is live.broadcast
                assert not again.broadcast.held and again.broadcast.holds == 1
                # The returning publisher's catalog was published: the newest catalog
                # lists the same live tracks.
                catalog = Catalog.parse(viewer.tracks[".catalog"].objects[-1].payload)
                assert sorted(t.name for t in catalog.tracks) == ["240p", "audio"]
                assert not catalog.is_complete


async def test_rtmp_encoder_not_back_within_the_window_ends_the_broadcast(
    tmp_path: Path, redis_url: str
) -> None:
    window = 2.0
    async with running_origin(
        tmp_path, redis_url, ladder=LADDER, publisher_reconnect_window=window
    ) as origin:
        input_id, key = await origin.new_input()
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            async with encoder(origin, input_id, key, 60) as proc:
                await wait_live(origin, input_id)
                await viewer.catalog()
                await viewer.subscribe("240p")
                await viewer.wait_objects("240p", 2, within=30)
                await _kill(proc)
                dropped = time.monotonic()
                done = await viewer.wait_done("240p", within=20)
            held_for = time.monotonic() - dropped
            assert done.code == PublishDoneCode.TRACK_ENDED
            assert "not back within" in done.reason
            # Not before the window ran out (ffmpeg's flush comes first, so >= window).
            assert held_for >= window
            final = Catalog.parse(viewer.tracks[".catalog"].objects[-1].payload)
            assert final.is_complete
        assert origin.node.inputs.get(input_id) is None


async def test_rotated_key_during_the_window_ends_the_held_broadcast_at_once(
    tmp_path: Path, redis_url: str
) -> None:
    from .conftest import new_key
    from .helpers import rotate_key

    async with running_origin(
        tmp_path, redis_url, ladder=LADDER, publisher_reconnect_window=60.0
    ) as origin:
        input_id, key = await origin.new_input()
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            async with encoder(origin, input_id, key, 60) as proc:
                await wait_live(origin, input_id)
                await viewer.catalog()
                await viewer.subscribe("240p")
                await viewer.wait_objects("240p", 2, within=30)
                await _kill(proc)
                await wait_until(lambda: _held(origin, input_id), within=15, step=0.05)
            await rotate_key(origin.bus, input_id, new_key(), ORG)
            done = await viewer.wait_done("240p", within=10)
            assert done.code == PublishDoneCode.UNAUTHORIZED
        assert origin.node.inputs.get(input_id) is None


async def test_moqt_publisher_back_within_the_window_continues_with_rebased_groups(
    tmp_path: Path, redis_url: str
) -> None:
    from .test_moqt_ingest import publishing

    async with running_origin(tmp_path, redis_url, publisher_reconnect_window=20.0) as origin:
        input_id, key = await origin.new_input()
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            async with publishing(origin, input_id, key):
                await wait_live(origin, input_id)
                await viewer.catalog()
                await viewer.subscribe("video")
                await viewer.wait_objects("video", 4, within=30)
                live = origin.node.inputs.get(input_id)
                assert live is not None
            # Its session closed without PUBLISH_DONE: held, not ended.
            await wait_until(lambda: _held(origin, input_id), within=10, step=0.05)
            rec = viewer.tracks["video"]
            before, last = len(rec.objects), rec.objects[-1].group_id
            # A new publisher process would start again at group 0: rebased above `last`.
            async with publishing(origin, input_id, key):
                await viewer.wait_objects("video", before + 4, within=30)
                assert rec.done is None
                groups = [o.group_id for o in rec.objects]
                assert groups == sorted(groups) and groups[-1] > last
                again = origin.node.inputs.get(input_id)
                assert again is not None and again.broadcast is live.broadcast
