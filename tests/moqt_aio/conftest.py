"""Fixtures for the asyncio adapters: a certificate and a MoQT server on a free UDP port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from moqt.aio import (
    MoqtConnection,
    MoqtServer,
    SessionOptions,
    serve,
    server_configuration,
    write_self_signed,
)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed(tmp_path_factory.mktemp("cert"))


ServerFactory = Callable[..., "AsyncIterator[MoqtServer]"]


@pytest.fixture
async def moqt_server(
    certificate: tuple[Path, Path],
) -> AsyncIterator[Callable[[Callable[[MoqtConnection], None]], object]]:
    servers: list[MoqtServer] = []

    async def start(
        on_session: Callable[[MoqtConnection], None],
        options: SessionOptions | None = None,
        **kwargs: int,
    ) -> MoqtServer:
        server = await serve(
            "127.0.0.1",
            0,
            configuration=server_configuration(*certificate),
            on_session=on_session,
            options=options,
            **kwargs,
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
