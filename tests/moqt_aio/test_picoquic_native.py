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
