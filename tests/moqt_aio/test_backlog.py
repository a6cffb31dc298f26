"""The send backlog a connection reports, and the writable hook, over real QUIC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from moqt import DRAFT_14, DRAFT_16
from moqt.aio import MoqtConnection, connect
from moqt.events import ObjectReceived, SubscribeAccepted, SubscribeRequested

NS = (b"live", b"backlog")


@pytest.mark.parametrize(
    ("scheme", "version"), [("moqt", DRAFT_16), ("moqt", DRAFT_14), ("https", DRAFT_16)]
)
async def test_backlog_grows_with_unsent_writes_and_drains_as_the_peer_reads(
    scheme: str, version: int, moqt_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator,misc]
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(15):
        async with connect(url, versions=(version,), cafile=str(certificate[0])) as client:
            conn = await accepted.get()
            await conn.wait_setup()
            assert conn.send_backlog() == 0
            wakeups = [0]

            def writable() -> None:
                wakeups[0] += 1

            conn.set_writable_handler(writable)
            rid = client.session.subscribe(NS, b"video")
            request = await conn.wait_event()
            while not isinstance(request, SubscribeRequested):
                request = await conn.wait_event()
            conn.session.accept_subscribe(request.request_id)
            assert isinstance(await client.wait_response(rid), SubscribeAccepted)
            handle = conn.session.open_subgroup(request.request_id, 0, 0)
            for i in range(64):  # 2 MiB in one event-loop tick: nothing left yet
                conn.session.write_object(handle, i, bytes(32 * 1024))
            assert conn.send_backlog() >= 64 * 32 * 1024
            conn.session.end_subgroup(handle)
            got = 0
            while got < 64:
                if isinstance(await client.wait_event(), ObjectReceived):
                    got += 1
            for _ in range(100):  # the last ACKs may still be on their way
                if conn.send_backlog() == 0:
                    break
                await asyncio.sleep(0.01)
            assert conn.send_backlog() == 0
            assert wakeups[0] > 0  # called as the client's packets (ACKs) arrived
            conn.set_writable_handler(None)
