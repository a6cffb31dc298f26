"""The SDK's publisher (``clutchcall.streams.AsyncPublisher``) against a real origin.

This is the seed's publishing path: the stream key as the auth token, the CMSF
catalog and CMAF tracks over MoQT; the origin validates and re-publishes, and a
viewer gets the catalog then every track from a keyframe. A wrong key is the
SDK's typed ``PublishError(reason="refused")``.
"""

from __future__ import annotations

import pytest

from clutchcall.streams import AsyncPublisher, PublishError
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin, new_key
from .helpers import Viewer, check_media, init_of, ns

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
