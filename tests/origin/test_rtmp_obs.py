"""The second RTMP client of issue 5: a raw OBS-like publisher (FCPublish, ``@setDataFrame``).

It publishes a real H.264 + AAC FLV at its own pace, ends with FCUnpublish +
deleteStream (a clean end: viewers get the final catalog and PUBLISH_DONE) and
reconnects within the resume window: the same namespace comes back with group ids
that keep increasing, on the media tracks and on the catalog.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from media import CATALOG_TRACK, Catalog
from media.ffmpeg import ffmpeg_exe
from moqt.errors import PublishDoneCode
from tests.mesh.conftest import wait_until
from tests.origin.rtmp.obs_client import FlvFileTag, ObsLikeClient, read_flv_tags

from .conftest import ORG, Origin
from .helpers import Viewer, check_media, init_of, ns

pytestmark = [pytest.mark.timeout(90), pytest.mark.e2e]


@pytest.fixture(scope="module")
def flv_tags(tmp_path_factory: pytest.TempPathFactory) -> list[FlvFileTag]:
    out = tmp_path_factory.mktemp("obs") / "obs.flv"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-f", "lavfi",
         "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "96k", "-f", "flv", str(out)],
        check=True, timeout=60,
    )  # fmt: skip
    return [t for t in read_flv_tags(out.read_bytes()) if t.tag_type in (8, 9)]


async def publish_like_obs(origin: Origin, input_id: str, key: str, tags: list[FlvFileTag]) -> None:
    client = await ObsLikeClient.open("127.0.0.1", origin.rtmp_port)
    try:
        await client.connect("127.0.0.1", origin.rtmp_port, f"live/{input_id}")
        await client.start_publish(key)
        await client.send_metadata(
            {"width": 640.0, "height": 360.0, "framerate": 30.0, "videocodecid": 7.0,
             "audiocodecid": 10.0, "encoder": "obs-output module (libobs version 30.0.0)"}
        )  # fmt: skip
        start = time.monotonic()
        for tag in tags:  # at the media's own pace, like a live encoder
            delay = tag.timestamp / 1000 - (time.monotonic() - start)
            if delay > 0:
                await asyncio.sleep(delay)
            await client.send_tag(tag)
        await client.stop_publish(key)
        await client.wait_command("onFCUnpublish")
    finally:
        await client.close()


async def test_obs_like_publish_clean_end_and_resume(
    origin: Origin, flv_tags: list[FlvFileTag]
) -> None:
    input_id, key = await origin.new_input()
    ns_ = ns(ORG, input_id)
    publisher = asyncio.create_task(publish_like_obs(origin, input_id, key, flv_tags))
    await wait_until(lambda: origin.node.inputs.get(input_id) is not None, 30, step=0.05)
    async with Viewer.open(origin.url, ns_) as viewer:
        catalog = await viewer.catalog()
        assert sorted(t.name for t in catalog.tracks) == ["240p", "360p", "audio"]
        await viewer.subscribe("360p")
        done = await viewer.wait_done("360p", within=30)
        await publisher
        assert done.code == PublishDoneCode.TRACK_ENDED
        objects = viewer.tracks["360p"].objects
        check_media(objects, init_of(catalog, "360p"))
        await viewer.wait_done(CATALOG_TRACK)

        def final() -> Catalog:
            return Catalog.parse(viewer.tracks[CATALOG_TRACK].objects[-1].payload)

        # The final catalog's stream may land just after PUBLISH_DONE (another stream).
        await wait_until(lambda: final().is_complete, 5)
        assert not any(t.is_live for t in final().tracks)
        last_group = objects[-1].group_id
        last_catalog_group = viewer.tracks[CATALOG_TRACK].objects[-1].group_id
    await wait_until(lambda: origin.node.inputs.get(input_id) is None, 10)
    # Reconnect within the resume window: ids keep increasing.
    publisher = asyncio.create_task(publish_like_obs(origin, input_id, key, flv_tags))
    try:
        await wait_until(lambda: origin.node.inputs.get(input_id) is not None, 30, step=0.05)
        async with Viewer.open(origin.url, ns_) as viewer:
            await viewer.catalog()
            assert viewer.tracks[CATALOG_TRACK].objects[0].group_id > last_catalog_group
            # Its first object may still be on its way; it must land above the old groups.
            rec = await viewer.subscribe("360p", current_group=False)
            first = (await viewer.wait_objects("360p", 1))[0]
            assert first.group_id > last_group and rec.done is None
    finally:
        await publisher
