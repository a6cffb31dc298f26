"""``clutchcall origin`` as a process: RTMP from a real ffmpeg encoder to the default ladder.

The source is 720p, so the default ladder (1080p/720p/360p capped at the source)
yields 720p + 360p + AAC audio. A viewer (our moqt.aio client) reads the catalog
first, then every rendition from a keyframe without gaps; the route and the node
record are in Redis while the broadcast is live; ``/metrics``, ``/healthz`` and
``/readyz`` answer; SIGTERM drains and exits 0, withdrawing the route.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from mesh.bus import connect_bus
from mesh.topology import NODE_PREFIX, ROUTE_PREFIX
from origin.status import INPUT_STATUS_PREFIX
from tests.mesh.conftest import wait_until
from tests.origin.conftest import ORG, new_key
from tests.origin.helpers import Viewer, check_media, init_of, ns, write_key
from tests.origin.process import origin_process
from tests.origin.test_rtmp_ingest import encoder_cmd

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


async def test_origin_process_rtmp_ladder_routes_ops_and_drain(redis_url: str) -> None:
    bus = connect_bus(redis_url)
    input_id, key = "lv_e2ertmp", new_key()
    await write_key(bus, input_id, key, ORG)
    namespace = f"stream/{ORG}/{input_id}"
    try:
        async with origin_process(
            "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0",
            "--redis", redis_url, "--node-id", "origin-e2e",
            env={"CLUTCHCALL_REGION": "eu-test"},
        ) as origin:  # fmt: skip
            node = await bus.get(NODE_PREFIX + "origin-e2e")
            assert node is not None and node["role"] == "origin" and node["region"] == "eu-test"
            url = f"rtmp://127.0.0.1:{origin.rtmp_port}/live/{input_id}/{key}"
            encoder = await asyncio.create_subprocess_exec(
                *encoder_cmd(url, 15), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:

                async def routed() -> bool:
                    return await bus.get(ROUTE_PREFIX + namespace) is not None

                await wait_until(routed, within=20, step=0.1)
                route = await bus.get(ROUTE_PREFIX + namespace)
                assert route is not None and route["origin"] == "origin-e2e"
                async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
                    catalog = await viewer.catalog()
                    names = sorted(t.name for t in catalog.tracks)
                    assert names == ["360p", "720p", "audio"]
                    video = {t.name: (t.width, t.height) for t in catalog.tracks if t.width}
                    assert video == {"720p": (1280, 720), "360p": (640, 360)}
                    for name in names:
                        await viewer.subscribe(name)
                    for name in names:
                        objects = await viewer.wait_objects(name, 5, within=30)
                        check_media(objects[:5], init_of(catalog, name))
                async with Viewer.open(origin.url, ns(ORG, input_id)) as late:
                    largest = await late.largest("720p")
                    assert largest is not None and largest.group > 0
                    await late.subscribe("720p")
                    first = (await late.wait_objects("720p", 1))[0]
                    assert (first.group_id, first.object_id) == (largest.group, 0)
                metrics = (await origin.get("/metrics")).text
                assert "clutchcall_origin_live_inputs 1.0" in metrics
                assert "clutchcall_objects_out" in metrics
                assert (await origin.get("/healthz")).status_code == 200
                assert (await origin.get("/readyz")).status_code == 200
                origin.proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(origin.proc.wait(), 20) == 0
            finally:
                if encoder.returncode is None:
                    encoder.kill()
                await encoder.wait()
        assert origin.events("origin_draining") and origin.events("origin_stopped")
        assert await bus.get(ROUTE_PREFIX + namespace) is None
        assert await bus.get(NODE_PREFIX + "origin-e2e") is None
        status = await bus.get(INPUT_STATUS_PREFIX + input_id)
        assert status is not None and status["status"] == "idle"  # told before exiting
    finally:
        await bus.close()
