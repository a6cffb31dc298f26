"""Broadcast + LocalLink: the origin's own tracks enter a real relay and reach a QUIC viewer."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media import CATALOG_TRACK, MSF_CATALOG_TRACK, Catalog, CatalogTrack, InitSegment, split_fmp4
from media.ffmpeg import ffmpeg_exe
from mesh.relay._node import RelayNode
from moqt.aio import RequestFailed, write_self_signed
from moqt.errors import PublishDoneCode, RequestErrorCode
from origin.broadcast import Broadcast, namespace_of, namespace_text
from tests.mesh.conftest import wait_until

from .helpers import Viewer

pytestmark = pytest.mark.timeout(30)

NS = "stream/org_b/lv_broadcast"


@pytest.fixture(scope="module")
def init(tmp_path_factory: pytest.TempPathFactory) -> InitSegment:
    out = tmp_path_factory.mktemp("bc") / "v.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-f", "lavfi",
         "-i", "testsrc2=size=160x90:rate=10:duration=0.5", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4",
         "-movflags", "empty_moov+default_base_moof+frag_keyframe+cmaf", str(out)],
        check=True, timeout=30,
    )  # fmt: skip
    first = split_fmp4(out.read_bytes())[0]
    assert isinstance(first, InitSegment)
    return first


def catalog(init: InitSegment, *names: str) -> Catalog:
    return Catalog.build(
        [
            CatalogTrack.from_init(n, init, bitrate=100_000, priority=2 + i)
            for i, n in enumerate(names)
        ]
    )


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RelayNode]:
    cert, key = write_self_signed(tmp_path)
    node = RelayNode()
    await node.start("127.0.0.1", 0, cert, key)
    try:
        yield node
    finally:
        await node.stop()


def url(node: RelayNode) -> str:
    return "moqt://{}:{}".format(*node.address)


def test_namespace_helpers() -> None:
    assert namespace_of(NS) == (b"stream", b"org_b", b"lv_broadcast")
    assert namespace_text(namespace_of(NS)) == NS


async def test_catalog_versions_objects_and_end(relay: RelayNode, init: InitSegment) -> None:
    bc = Broadcast(relay.relay, NS)
    bc.set_catalog(catalog(init, "hi", "lo"))
    for g in range(3):
        for o in range(3):
            assert bc.send_object("hi", g, o, f"hi-{g}-{o}".encode())
            assert bc.send_object("lo", g, o, f"lo-{g}-{o}".encode())
    bc.set_catalog(catalog(init, "hi", "lo"))  # a second version: a new catalog group
    async with Viewer.open(url(relay), namespace_of(NS)) as viewer:
        assert (await viewer.largest(CATALOG_TRACK)) == (await viewer.largest(MSF_CATALOG_TRACK))
        await viewer.catalog()
        assert viewer.tracks[CATALOG_TRACK].objects[0].group_id == 1
        alias = await viewer.subscribe(MSF_CATALOG_TRACK)
        await viewer.wait_objects(MSF_CATALOG_TRACK, 1)
        assert alias.objects[0].payload == viewer.tracks[CATALOG_TRACK].objects[0].payload
        # Late join at the current group of a rendition: the whole group, in order.
        await viewer.subscribe("hi")
        objects = await viewer.wait_objects("hi", 3)
        assert [(o.group_id, o.object_id, o.payload) for o in objects] == [
            (2, i, f"hi-2-{i}".encode()) for i in range(3)
        ]
        assert bc.send_object("hi", 3, 0, b"hi-3-0")
        await viewer.wait_objects("hi", 4)
        assert viewer.tracks["hi"].objects[3].group_id == 3
        # Unknown tracks of the namespace do not exist.
        with pytest.raises(RequestFailed) as info:
            await viewer.subscribe("nope", current_group=False)
        assert info.value.rejection.code == RequestErrorCode.DOES_NOT_EXIST
        bc.set_catalog(catalog(init, "hi"))  # "lo" leaves the catalog
        bc.end(PublishDoneCode.TRACK_ENDED, "bye")
        assert (await viewer.wait_done("hi")).code == PublishDoneCode.TRACK_ENDED
        await viewer.wait_done(CATALOG_TRACK)

        def last() -> Catalog:
            return Catalog.parse(viewer.tracks[CATALOG_TRACK].objects[-1].payload)

        await wait_until(lambda: last().is_complete)
        assert [t.name for t in last().tracks] == ["hi"]
    assert bc.ended and not bc.send_object("hi", 4, 0, b"late")
    assert bc.statistics().catalog_versions == 4
    await bc.link.wait_closed()


async def test_removed_rendition_gets_publish_done(relay: RelayNode, init: InitSegment) -> None:
    bc = Broadcast(relay.relay, NS)
    bc.set_catalog(catalog(init, "hi", "lo"))
    bc.send_object("lo", 0, 0, b"x")
    async with Viewer.open(url(relay), namespace_of(NS)) as viewer:
        await viewer.subscribe("lo")
        await viewer.wait_objects("lo", 1)
        bc.set_catalog(catalog(init, "hi"))
        done = await viewer.wait_done("lo")
        assert done.code == PublishDoneCode.TRACK_ENDED and "removed" in done.reason
        assert bc.track_names() == ["hi"]
    bc.end()
