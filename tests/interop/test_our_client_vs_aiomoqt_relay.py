"""Our client (moqt.aio) against aiomoqt's moq_interop_relay, a relay nobody here wrote.

On both of our QUIC stacks (``stack``: aioquic, picoquic), raw QUIC and WebTransport,
draft-16 and draft-14.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from moqt import DRAFT_14, DRAFT_16
from moqt.aio import QUIC_STACKS, MoqtConnection, connect, write_self_signed
from moqt.events import (
    Event,
    FetchAccepted,
    FetchStreamEnded,
    ObjectReceived,
    ObjectSource,
    PublishAccepted,
    PublishNamespaceAccepted,
    SubscribeAccepted,
    SubscribeRequested,
)
from moqt.types import Location
from tests.conftest import free_port

from .conftest import PYTHON, ROOT

pytestmark = pytest.mark.interop

MATRIX = [
    pytest.param(scheme, version, stack, id=f"{stack}-{name}-{draft}")
    for stack in QUIC_STACKS
    for scheme, name in (("moqt", "quic"), ("https", "wt"))
    for version, draft in ((DRAFT_16, 16), (DRAFT_14, 14))
]


@pytest.fixture(scope="module")
def aiomoqt_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("aiomoqt-relay")
    cert, key = write_self_signed(tmp)
    port = free_port()
    log_path = tmp / "relay.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [PYTHON, "-m", "aiomoqt.tools.moq_interop_relay", "--bind", "127.0.0.1", "--port",
             str(port), "--dual", "--cert", str(cert), "--key", str(key)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while "Listening on" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def next_of[E: Event](conn: MoqtConnection, cls: type[E]) -> E:
    while True:
        event = await conn.wait_event()
        if isinstance(event, cls):
            return event


async def receive_objects(conn: MoqtConnection, count: int) -> list[ObjectReceived]:
    got: list[ObjectReceived] = []
    while len(got) < count:
        got.append(await next_of(conn, ObjectReceived))
    return got


@pytest.mark.parametrize(("scheme", "version", "stack"), MATRIX)
async def test_announce_and_subscribe_through_aiomoqt_relay(
    aiomoqt_relay: int, scheme: str, version: int, stack: str
) -> None:
    url = f"{scheme}://127.0.0.1:{aiomoqt_relay}/"
    ns = (b"ours", os.urandom(4).hex().encode())
    async with asyncio.timeout(20):
        async with (
            connect(url, versions=(version,), verify=False, stack=stack) as pub,
            connect(url, versions=(version,), verify=False, stack=stack) as sub,
        ):
            answer = await pub.wait_response(pub.session.publish_namespace(ns))
            assert isinstance(answer, PublishNamespaceAccepted)
            srid = sub.session.subscribe(ns, b"video")
            request = await next_of(pub, SubscribeRequested)
            assert (request.namespace, request.name) == (ns, b"video")
            pub.session.accept_subscribe(request.request_id)
            assert isinstance(await sub.wait_response(srid), SubscribeAccepted)
            for group in range(3):
                handle = pub.session.open_subgroup(request.request_id, group, 0)
                for i in range(10):
                    pub.session.write_object(handle, i, b"%d/%d" % (group, i))
                pub.session.end_subgroup(handle)
            got = await receive_objects(sub, 30)
            assert [(o.group_id, o.object_id) for o in got] == [
                (g, i) for g in range(3) for i in range(10)
            ]
            assert got[-1].payload == b"2/9"


@pytest.mark.parametrize(("scheme", "version", "stack"), MATRIX)
async def test_publish_and_join_from_aiomoqt_relay_cache(
    aiomoqt_relay: int, scheme: str, version: int, stack: str
) -> None:
    url = f"{scheme}://127.0.0.1:{aiomoqt_relay}/"
    ns = (b"ours", os.urandom(4).hex().encode())
    async with asyncio.timeout(20):
        async with connect(url, versions=(version,), verify=False, stack=stack) as pub:
            prid = pub.session.publish(ns, b"audio", forward=True)
            assert isinstance(await pub.wait_response(prid), PublishAccepted)
            for group in range(2):
                handle = pub.session.open_subgroup(prid, group, 0)
                for i in range(5):
                    pub.session.write_object(handle, i, b"a%d.%d" % (group, i))
                if group == 0:
                    pub.session.end_subgroup(handle)
            await asyncio.sleep(0.3)  # let the relay cache them
            async with connect(url, versions=(version,), verify=False, stack=stack) as sub:
                srid = sub.session.subscribe(ns, b"audio")
                accepted = await sub.wait_response(srid)
                assert isinstance(accepted, SubscribeAccepted), accepted
                assert accepted.largest == Location(1, 4)
                frid = sub.session.joining_fetch(srid, 1)
                assert isinstance(await sub.wait_response(frid), FetchAccepted)
                fetched: list[tuple[int, int]] = []
                while True:
                    event = await sub.wait_event()
                    if isinstance(event, ObjectReceived) and event.source is ObjectSource.FETCH:
                        fetched.append((event.group_id, event.object_id))
                    elif isinstance(event, FetchStreamEnded):
                        break
                assert fetched == [(g, i) for g in range(2) for i in range(5)]
                pub.session.write_object(handle, 5, b"live")
                live = await receive_objects(sub, 1)
                assert (live[0].group_id, live[0].object_id, live[0].payload) == (1, 5, b"live")
