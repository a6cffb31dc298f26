"""What picoquic could not do for a node before, each checked on a real picoquic server:
a WebTransport CONNECT with a long path (a playback token in its query) from aioquic,
the MoQT reason text in a raw-QUIC CONNECTION_CLOSE, and a certificate swapped on
a running server for the connections that come after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from moqt.aio import MoqtConnection, PicoquicServer, connect, serve_picoquic

STACKS = ["aioquic", "picoquic"]
Starter = Callable[..., Awaitable[PicoquicServer]]


@pytest.fixture
async def pico_server(
    certificate: tuple[Path, Path],
) -> AsyncIterator[Starter]:
    servers: list[PicoquicServer] = []

    async def start(
        on_session: Callable[[MoqtConnection], None], **kwargs: object
    ) -> PicoquicServer:
        server = await serve_picoquic(
            "127.0.0.1",
            0,
            certificate=kwargs.pop("cert", certificate[0]),  # type: ignore[arg-type]
            private_key=kwargs.pop("key", certificate[1]),  # type: ignore[arg-type]
            on_session=on_session,
            **kwargs,  # type: ignore[arg-type]
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("client_stack", STACKS)
async def test_webtransport_connect_with_a_token_sized_path(
    client_stack: str, pico_server: Starter, certificate: tuple[Path, Path]
) -> None:
    """A signed playback URL's path is 500+ characters; aioquic Huffman-coded it and
    picoquic's HTTP/3 refused every value longer than 256 decoded bytes."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)
    token = "eyJhbGciOiJFUzI1NiJ9." + "a" * 600 + ".sig-_"
    path = f"/stream/org_demo/lv_01m975vjst8463m5dvkgwph5t2?token={token}"
    url = f"https://127.0.0.1:{server.address[1]}{path}"
    async with asyncio.timeout(15):
        async with connect(url, cafile=str(certificate[0]), stack=client_stack) as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            assert server_conn.path == path
            assert client.transport_name.endswith("webtransport/moqt-16")


@pytest.mark.parametrize("client_stack", STACKS)
async def test_raw_quic_close_carries_the_reason_text(
    client_stack: str, pico_server: Starter
) -> None:
    """The MoQT reason reaches the peer in CONNECTION_CLOSE (aiopquic's own close
    sent the code alone), and a close without a reason still ends the session.
    (A picoquic client gets the code only: aiopquic does not pass the text up.)"""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)
    url = f"moqt://127.0.0.1:{server.address[1]}"
    for code, reason in ((0x2, "go away: draining, ünïcode too"), (0x1, "")):
        async with asyncio.timeout(10):
            async with connect(url, verify=False, stack=client_stack) as client:
                server_conn = await accepted.get()
                await server_conn.wait_setup()
                server_conn.close(code, reason)
                closed = await client.wait_closed(grace=5)
                assert closed.by_peer
                assert closed.code == code
                if client_stack == "aioquic":
                    assert closed.reason == reason


async def test_picoquic_client_close_carries_the_reason_text(
    moqt_server: Callable[..., Awaitable[object]],
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)
    url = f"moqt://127.0.0.1:{server.address[1]}"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, verify=False, stack="picoquic") as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            client.close(0x3, "viewer left")
            closed = await server_conn.wait_closed(grace=5)
            assert (closed.by_peer, closed.code, closed.reason) == (True, 0x3, "viewer left")
