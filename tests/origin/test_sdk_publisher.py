"""The SDK's publisher (``clutchcall.streams.AsyncPublisher``) against a real origin.

This is the seed's publishing path: the stream key as the auth token, the CMSF
catalog and CMAF tracks over MoQT; the origin validates and re-publishes, and a
viewer gets the catalog then every track from a keyframe. A wrong key is the
SDK's typed ``PublishError(reason="refused")``.
"""

from __future__ import annotations

import asyncio

import pytest

from clutchcall.streams import AsyncBroadcastViewer, AsyncPublisher, Chunk, PublishError
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin, new_key
from .helpers import Viewer, check_media, init_of, ns
from .test_rtmp_ingest import encoder_cmd

pytestmark = [pytest.mark.timeout(60), pytest.mark.e2e]


async def test_sdk_publisher_through_the_origin(origin: Origin) -> None:
    input_id, key = await origin.new_input()
    publisher = AsyncPublisher(origin.url, timeslice_ms=500, group_duration=1.0,
                               video_bitrate=500_000, verify=False)  # fmt: skip
    await publisher.publish(input_id, key, "testsrc", f"stream/{ORG}/{input_id}")
    try:
        await wait_until(lambda: origin.node.inputs.get(input_id) is not None, 30, step=0.05)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            catalog = await viewer.catalog()
            names = sorted(t.name for t in catalog.tracks)
            assert names == ["audio", "video"]
            for name in names:
                await viewer.subscribe(name)
            for name in names:
                check_media(await viewer.wait_objects(name, 4), init_of(catalog, name))
    finally:
        await publisher.stop()
    await wait_until(lambda: origin.node.inputs.get(input_id) is None, 10)


async def test_sdk_publisher_with_a_wrong_key_is_refused(origin: Origin) -> None:
    input_id, _ = await origin.new_input()
    publisher = AsyncPublisher(origin.url, verify=False)
    with pytest.raises(PublishError) as info:
        await publisher.publish(input_id, new_key(), "testsrc", f"stream/{ORG}/{input_id}")
    assert info.value.reason == "refused"
    assert "invalid stream key" in str(info.value)


async def test_sdk_viewer_plays_the_rtmp_ladder(origin: Origin) -> None:
    """RTMP encoder -> ladder -> the SDK's viewer: init first, then media in order."""
    input_id, key = await origin.new_input()
    url = f"rtmp://127.0.0.1:{origin.rtmp_port}/live/{input_id}/{key}"
    encoder = await asyncio.create_subprocess_exec(
        *encoder_cmd(url, 15), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    chunks: list[Chunk] = []
    got = asyncio.Event()

    def on_chunk(_first: bool, chunk: Chunk) -> None:
        chunks.append(chunk)
        if sum(1 for c in chunks if c.kind == "video") >= 6:
            got.set()

    try:
        await wait_until(lambda: origin.node.inputs.get(input_id) is not None, 30, step=0.05)
        viewer = await AsyncBroadcastViewer.open(
            origin.url, namespace=f"stream/{ORG}/{input_id}", token="origin-ignores-tokens",
            on_chunk=on_chunk, verify=False,
        )  # fmt: skip
        try:
            await asyncio.wait_for(got.wait(), 30)
        finally:
            await viewer.close()
    finally:
        if encoder.returncode is None:
            encoder.kill()
        await encoder.wait()
    assert chunks[0].is_init
    video = [c for c in chunks if c.kind == "video"]
    assert video[0].object_id == 0 and video[0].rendition in ("720p", "360p", "240p")
    groups = [c.group_id or 0 for c in video]
    assert groups == sorted(groups)
