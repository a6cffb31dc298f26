"""Sessions a POP does not keep: no SETUP in time, or over the connection limit.

A client that opens a QUIC connection and only keeps it alive with PINGs, never
sending CLIENT_SETUP, is closed after ``setup_timeout``; connections beyond
``max_connections`` are refused, on the aioquic socket a POP binds itself too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import pytest
from aioquic.asyncio import connect as quic_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

from moqt.aio import ConnectionClosed, connect
from moqt.errors import SessionCloseCode
from moqt.version import ALPN_DRAFT_16
from tests.pop.conftest import MakePop


class _Silent(QuicConnectionProtocol):
    """A QUIC client that never speaks MoQT; records how the server ended it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.terminated: asyncio.Future[ConnectionTerminated] = (
            asyncio.get_running_loop().create_future()
        )

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)


async def test_session_without_setup_is_closed_at_the_deadline(make_pop: MakePop) -> None:
    pop = await make_pop(setup_timeout=1.0)
    config = QuicConfiguration(
        is_client=True, alpn_protocols=[ALPN_DRAFT_16], verify_mode=ssl.CERT_NONE
    )
    config.idle_timeout = 60.0
    port = pop.quic_address[1]
    async with quic_connect(
        "127.0.0.1", port, configuration=config, create_protocol=_Silent
    ) as client:
        assert isinstance(client, _Silent)
        opened = time.monotonic()

        async def keep_pinging() -> None:
            while True:
                await client.ping()
                await asyncio.sleep(0.2)

        pinger = asyncio.create_task(keep_pinging())
        try:
            ended = await asyncio.wait_for(asyncio.shield(client.terminated), 5)
        finally:
            pinger.cancel()
            with contextlib.suppress(BaseException):
                await pinger
        assert ended.error_code == SessionCloseCode.CONTROL_MESSAGE_TIMEOUT
        assert 0.8 <= time.monotonic() - opened <= 3.0


async def test_connections_over_the_limit_are_refused(make_pop: MakePop) -> None:
    # An aioquic POP serves a socket it binds itself (pop/_listen.py, for --workers).
    pop = await make_pop(max_connections=2)
    url = f"moqt://127.0.0.1:{pop.quic_address[1]}"
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(connect(url, verify=False, setup_timeout=5))
        with pytest.raises((ConnectionClosed, ConnectionError, TimeoutError, OSError)):
            async with connect(url, verify=False, setup_timeout=3):
                pass
