"""A RelayNode over real QUIC on loopback: bad input closes one session, never the node."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aioquic.asyncio.client import connect as quic_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

from mesh.relay import CacheLimits, RelayConfig
from mesh.relay._node import RelayNode
from moqt import DRAFT_16, SessionCloseCode
from moqt.aio import connect, write_self_signed
from moqt.events import ObjectReceived, PublishAccepted, SessionClosed, SubscribeAccepted
from moqt.messages import ClientSetup, Subscribe, encode_control
from tests.mesh.conftest import wait_until


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RelayNode]:
    cert, key = write_self_signed(tmp_path)
    relay_node = RelayNode(RelayConfig(cache=CacheLimits(), max_object_size=1000), max_request_id=4)
    await relay_node.start("127.0.0.1", 0, cert, key)
    try:
        yield relay_node
    finally:
        await relay_node.stop()


class RawClient(QuicConnectionProtocol):
    """A bare QUIC client speaking bytes we choose, recording how it was closed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.terminated: asyncio.Future[ConnectionTerminated] = (
            asyncio.get_running_loop().create_future()
        )

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)


async def raw_session(port: int, payload: bytes, *, fin: bool = False) -> ConnectionTerminated:
    config = QuicConfiguration(is_client=True, alpn_protocols=["moqt-16"])
    config.verify_mode = ssl.CERT_NONE
    async with quic_connect(
        "127.0.0.1", port, configuration=config, create_protocol=RawClient
    ) as c:
        assert isinstance(c, RawClient)
        stream = c._quic.get_next_available_stream_id()
        c._quic.send_stream_data(stream, payload, end_stream=fin)
        c.transmit()
        return await asyncio.wait_for(asyncio.shield(c.terminated), 5)


def setup_bytes() -> bytes:
    return encode_control(ClientSetup(), DRAFT_16)


async def assert_node_serves(node: RelayNode) -> None:
    async with connect(f"moqt://127.0.0.1:{node.address[1]}", verify=False) as client:
        rid = client.session.publish((b"ok",), b"still-alive")
        assert isinstance(await client.wait_response(rid), PublishAccepted)


async def test_garbage_on_control_stream_is_protocol_violation(node: RelayNode) -> None:
    closed = await raw_session(node.address[1], setup_bytes() + b"\x7f\xff\x00\x05hello")
    assert closed.error_code == SessionCloseCode.PROTOCOL_VIOLATION
    assert closed.reason_phrase
    await assert_node_serves(node)


async def test_message_before_setup_is_protocol_violation(node: RelayNode) -> None:
    msg = encode_control(Subscribe(0, (b"a",), b"b"), DRAFT_16)
    closed = await raw_session(node.address[1], msg)
    assert closed.error_code == SessionCloseCode.PROTOCOL_VIOLATION
    await assert_node_serves(node)


async def test_too_many_requests(node: RelayNode) -> None:
    # the node grants MAX_REQUEST_ID 4: client ids 0 and 2 are fine, 4 is one too many
    requests = b"".join(
        encode_control(Subscribe(rid, (b"ns",), b"t%d" % rid), DRAFT_16) for rid in (0, 2, 4)
    )
    closed = await raw_session(node.address[1], setup_bytes() + requests)
    assert closed.error_code == SessionCloseCode.TOO_MANY_REQUESTS
    await assert_node_serves(node)


async def test_random_bytes_and_udp_noise_never_hurt_the_node(node: RelayNode) -> None:
    port = node.address[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for size in (1, 20, 1200, 1500):
            sock.sendto(os.urandom(size), ("127.0.0.1", port))
    for seed in range(5):
        noise = os.urandom(64 + seed * 100)
        # FIN too: noise that starts like a long message must not leave the session waiting
        closed = await raw_session(port, noise, fin=True)
        assert closed.error_code != SessionCloseCode.INTERNAL_ERROR, closed
    await assert_node_serves(node)
    # Every session ends: the noise ones and the last one (its close may still be in
    # flight right after the client left, so wait for it rather than race it).
    await wait_until(lambda: node.relay.statistics()["sessions"] == 0)


async def test_request_stream_ending_inside_its_first_message_is_refused_before_setup(
    node: RelayNode,
) -> None:
    # SUBSCRIBE_NAMESPACE's type, a length the stream never delivers, then FIN, with no
    # SETUP: it can never become a message, so the session is refused now, not held
    # until the SETUP deadline (1 in 256 random noises starts with this type).
    closed = await raw_session(node.address[1], b"\x11\x7f\xff" + bytes(61), fin=True)
    assert closed.error_code == SessionCloseCode.PROTOCOL_VIOLATION, closed
    assert "inside a message" in closed.reason_phrase
    await assert_node_serves(node)


async def test_oversized_object_refused(node: RelayNode) -> None:
    url = f"moqt://127.0.0.1:{node.address[1]}"
    async with connect(url, verify=False) as client:
        rid = client.session.publish((b"big",), b"track")
        assert isinstance(await client.wait_response(rid), PublishAccepted)
        handle = client.session.open_subgroup(rid, 0, 0)
        client.session.write_object(handle, 0, b"x" * 5000)
        closed = await client.wait_closed(grace=5)
        assert isinstance(closed, SessionClosed)
        assert closed.code == SessionCloseCode.PROTOCOL_VIOLATION
    await assert_node_serves(node)


async def test_no_task_left_behind(tmp_path: Path) -> None:
    before = asyncio.all_tasks()
    cert, key = write_self_signed(tmp_path)
    relay_node = RelayNode()
    await relay_node.start("127.0.0.1", 0, cert, key)
    async with connect(f"https://127.0.0.1:{relay_node.address[1]}/", verify=False) as client:
        client.session.subscribe((b"x",), b"y")
        await relay_node.drain(grace=1.0)
        await client.wait_closed(grace=3)
    await asyncio.sleep(0.1)
    assert asyncio.all_tasks() - before == set()
    assert relay_node.relay.statistics()["sessions"] == 0


async def test_edge_node_subscribes_through_its_parent_over_quic(tmp_path: Path) -> None:
    """Two RelayNodes: the edge opens a session to the origin and routes a prefix to it."""
    cert, key = write_self_signed(tmp_path)
    origin, edge = RelayNode(), RelayNode()
    await origin.start("127.0.0.1", 0, cert, key)
    await edge.start("127.0.0.1", 0, cert, key)
    origin_url = f"moqt://127.0.0.1:{origin.address[1]}"
    edge_url = f"https://127.0.0.1:{edge.address[1]}/"
    try:
        async with (
            connect(origin_url, verify=False) as publisher,
            connect(origin_url, verify=False) as uplink,
        ):
            peer = edge.attach_connection(uplink)
            edge.relay.add_route((b"live",), peer)
            rid = publisher.session.publish((b"live", b"x"), b"video")
            await publisher.request(rid, PublishAccepted)
            async with connect(edge_url, verify=False) as viewer:
                sub = viewer.session.subscribe((b"live", b"x"), b"video")
                await viewer.request(sub, SubscribeAccepted)
                handle = publisher.session.open_subgroup(rid, 0, 0)
                for i in range(3):
                    publisher.session.write_object(handle, i, b"%d" % i)
                got = []
                while len(got) < 3:
                    event = await asyncio.wait_for(viewer.wait_event(), 5)
                    if isinstance(event, ObjectReceived):
                        got.append((event.group_id, event.object_id, event.payload))
                assert got == [(0, 0, b"0"), (0, 1, b"1"), (0, 2, b"2")]
                assert origin.relay.statistics()["subscriptions"] == 1
    finally:
        await edge.stop()
        await origin.stop()
