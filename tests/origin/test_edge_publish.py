"""Publishing at the edge: a publisher given the POP's URL (recipe 1's ``relayUrl``).

A real origin and a real POP share redis. The POP hands a publisher's session to
an origin (docs/edge-publishing.md); every refusal reaches the publisher as a
typed error with a reason that names the problem, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench._procs import free_port
from clutchcall.streams import AsyncPublisher, PublishError
from media import CATALOG_TRACK
from mesh.bus import connect_bus
from mesh.settings import PopSettings
from moqt.aio import connect, write_self_signed
from moqt.events import PublishNamespaceAccepted, RequestRejected
from pop import PopNode
from tests.mesh.conftest import wait_until
from tests.pop.lab import Tokens

from .conftest import ORG, Origin, new_key
from .helpers import Viewer, check_media, init_of, ns, rotate_key

pytestmark = [pytest.mark.timeout(90), pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path)


@pytest.fixture
async def pop(
    origin: Origin, redis_url: str, tmp_path: Path, tokens: Tokens
) -> AsyncIterator[PopNode]:
    cert, key = write_self_signed(tmp_path / "pop")
    bus = connect_bus(redis_url)
    node = PopNode(
        PopSettings(node_id="pop-edge", region="r1", quic="127.0.0.1:0", http="127.0.0.1:0",
                    jwks=str(tokens.jwks_path), redis=redis_url, linger=1.0),
        certificate=cert, private_key=key, bus=bus,
    )  # fmt: skip
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
        await bus.close()


def pop_url(pop: PopNode, scheme: str = "https") -> str:
    """Recipe 1's ``relayUrl`` is https:// (WebTransport); moqt:// is raw QUIC."""
    return "{}://{}:{}".format(scheme, *pop.quic_address)


@pytest.mark.parametrize("scheme", ["https", "moqt"])
async def test_a_publisher_the_pop_closes_at_setup_gets_a_typed_refusal(
    origin: Origin, pop: PopNode, scheme: str
) -> None:
    """The issue's traceback: the POP closed the session right after SETUP and the
    publisher's first request raised ``LocalError: the session is closed``. A key
    shaped like a JWT is checked (and refused) by the POP at SETUP."""
    input_id, _ = await origin.new_input()
    for _ in range(3):  # it was a race: 2 runs in 3 failed with the traceback
        publisher = AsyncPublisher(pop_url(pop, scheme), verify=False, reconnect=0)
        with pytest.raises(PublishError) as info:
            await publisher.publish(input_id, "not.a.jwt", "testsrc", f"stream/{ORG}/{input_id}")
        assert info.value.reason == "refused", info.value
        assert "auth_failed" in str(info.value)


async def test_cli_publish_to_the_pop_with_a_wrong_key_says_why(
    origin: Origin, pop: PopNode
) -> None:
    input_id, _ = await origin.new_input()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "publish", "--relay", pop_url(pop, "https"),
        "--namespace", f"stream/{ORG}/{input_id}", "--key", new_key(),
        "--insecure", "--reconnect", "0", "--seconds", "20", "testsrc",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 3, (out, text)
    assert "Traceback" not in text
    assert text.strip().startswith("clutchcall publish: refused:"), text
    assert f"invalid stream key for {input_id}" in text, text


async def test_a_wrong_key_at_the_pop_is_the_origin_s_refusal(origin: Origin, pop: PopNode) -> None:
    input_id, _ = await origin.new_input()
    publisher = AsyncPublisher(pop_url(pop), verify=False, reconnect=0)
    with pytest.raises(PublishError) as info:
        await publisher.publish(input_id, new_key(), "testsrc", f"stream/{ORG}/{input_id}")
    assert info.value.reason == "refused"
    assert f"invalid stream key for {input_id}" in str(info.value)
    # The key of another input does not own this namespace either.
    other_id, other_key = await origin.new_input()
    with pytest.raises(PublishError) as info:
        await publisher.publish(input_id, other_key, "testsrc", f"stream/{ORG}/{input_id}")
    assert info.value.reason == "refused"
    assert f"invalid stream key for {input_id}" in str(info.value)
    assert origin.node.inputs.get(input_id) is None
    assert origin.node.inputs.get(other_id) is None


@pytest.mark.parametrize("scheme", ["https", "moqt"])
async def test_publish_and_watch_through_one_pop_url(
    origin: Origin, pop: PopNode, tokens: Tokens, scheme: str
) -> None:
    """Recipe 1 with the Python SDK: one URL (the POP) for the publisher and the viewer."""
    input_id, key = await origin.new_input()
    publisher = AsyncPublisher(pop_url(pop, scheme), timeslice_ms=500, group_duration=1.0,
                               video_bitrate=500_000, verify=False)  # fmt: skip
    await publisher.publish(input_id, key, "testsrc", f"stream/{ORG}/{input_id}")
    try:
        await wait_until(lambda: origin.node.inputs.get(input_id) is not None, 30, step=0.05)
        token = tokens.mint(sub=input_id, org=ORG)
        url = "moqt://{}:{}/?token={}".format(*pop.quic_address, token)
        async with Viewer.open(url, ns(ORG, input_id)) as viewer:
            # A cold POP subscribes upstream from the next object; the publisher repeats
            # its catalog at every group.
            await viewer.subscribe(CATALOG_TRACK, current_group=False)
            catalog = await viewer.catalog()
            assert sorted(t.name for t in catalog.tracks) == ["audio", "video"]
            for name in ("audio", "video"):
                await viewer.subscribe(name, current_group=False)
            for name in ("audio", "video"):
                objects = await viewer.wait_objects(name, 6)
                start = next(i for i, o in enumerate(objects) if o.object_id == 0)
                check_media(objects[start:], init_of(catalog, name))
            stats = pop.statistics()
            assert (stats.publishers, stats.viewers) == (1, 1), stats
    finally:
        result = await publisher.stop()
    assert result is not None and result.reason == "stopped"
    # The broadcast ends at the origin when the publisher leaves the POP.
    await wait_until(lambda: origin.node.inputs.get(input_id) is None, 10)


async def test_a_key_rotation_ends_an_edge_publisher_with_the_origin_s_reason(
    origin: Origin, pop: PopNode
) -> None:
    """The origin ends the broadcast and closes our session at the POP: the POP closes
    the publisher's with the same code and reason, and the SDK says it was refused."""
    input_id, key = await origin.new_input()
    publisher = AsyncPublisher(pop_url(pop), timeslice_ms=500, group_duration=1.0,
                               video_bitrate=300_000, verify=False, reconnect=0)  # fmt: skip
    await publisher.publish(input_id, key, "testsrc", f"stream/{ORG}/{input_id}")
    try:
        await wait_until(lambda: origin.node.inputs.get(input_id) is not None, 30, step=0.05)
        await rotate_key(origin.bus, input_id, new_key(), ORG)
        with pytest.raises(PublishError) as info:
            await asyncio.wait_for(publisher.wait(), 10)
        assert info.value.reason == "refused", info.value
        assert "stream key rotated" in str(info.value)
        await wait_until(lambda: origin.node.inputs.get(input_id) is None, 10)
    finally:
        await publisher.stop()


@pytest.mark.parametrize("param", ["key", "token"])
async def test_a_stream_key_on_the_pop_url_admits_the_publisher(
    origin: Origin, pop: PopNode, param: str
) -> None:
    input_id, key = await origin.new_input()
    url = "{}/?{}={}".format(pop_url(pop, "moqt"), param, key)
    async with connect(url, verify=False) as conn:
        rid = conn.session.publish_namespace(ns(ORG, input_id))  # no token in the request
        answer = await asyncio.wait_for(conn.wait_response(rid), 10)
        assert isinstance(answer, PublishNamespaceAccepted), answer
    async with connect(pop_url(pop, "moqt") + "/?key=sk_wrong", verify=False) as conn:
        rid = conn.session.publish_namespace(ns(ORG, input_id))
        answer = await asyncio.wait_for(conn.wait_response(rid), 10)
        assert isinstance(answer, RequestRejected), answer
        assert f"invalid stream key for {input_id}" in answer.reason


async def test_a_wrong_endpoint_is_a_network_error_that_says_so() -> None:
    port = free_port()  # nothing answers QUIC there
    publisher = AsyncPublisher(f"moqt://127.0.0.1:{port}", verify=False, reconnect=0,
                               connect_timeout=1.0)  # fmt: skip
    with pytest.raises(PublishError) as info:
        await publisher.publish("lv_x", "sk_x", "testsrc", f"stream/{ORG}/lv_x")
    assert info.value.reason == "network"
    assert str(info.value) == (
        f"network: cannot reach moqt://127.0.0.1:{port}: no answer (timeout)"
    )


async def test_a_refused_publisher_may_try_again_in_the_same_session(
    origin: Origin, pop: PopNode
) -> None:
    input_id, key = await origin.new_input()
    async with connect(pop_url(pop, "moqt"), verify=False) as conn:
        refused = conn.session.publish_namespace(ns(ORG, input_id), auth_token=b"sk_wrong")
        answer = await asyncio.wait_for(conn.wait_response(refused), 10)
        assert isinstance(answer, RequestRejected), answer
        assert f"invalid stream key for {input_id}" in answer.reason
        # The POP gave up its origin session for us: its end does not end ours.
        rid = conn.session.publish_namespace(ns(ORG, input_id), auth_token=key.encode())
        answer = await asyncio.wait_for(conn.wait_response(rid), 10)
        assert isinstance(answer, PublishNamespaceAccepted), answer
        assert not conn.is_closed
