"""What picoquic could not do for a node before, each checked on a real picoquic server:
a WebTransport CONNECT with a long path (a playback token in its query) from aioquic,
the MoQT reason text in a raw-QUIC CONNECTION_CLOSE, and a certificate swapped on
a running server for the connections that come after.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mesh.certificates import NodeCertificate, stack_reloads
from moqt.aio import (
    HandshakeError,
    MoqtConnection,
    PicoquicServer,
    connect,
    serve_picoquic,
    write_self_signed,
)
from moqt.aio._picoquic_hooks import hooks as picoquic_hooks

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
    sent the code alone; a picoquic client did not pass the text up either), and a
    close without a reason still ends the session."""
    native = picoquic_hooks()
    assert native is not None
    kept = native.pending_reasons
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
                # No text: what each stack says when it got none.
                assert closed.reason == (
                    reason or {"aioquic": "", "picoquic": "connection closed"}[client_stack]
                )
    # Each reason's entry is given back once picoquic reported its connection gone.
    deadline = time.monotonic() + 10
    while native.pending_reasons > kept:
        assert time.monotonic() < deadline, f"{native.pending_reasons} reasons kept"
        await asyncio.sleep(0.02)


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


@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_a_running_server_serves_a_reloaded_certificate_to_new_connections(
    scheme: str, pico_server: Starter, tmp_path: Path
) -> None:
    old_cert, old_key = write_self_signed(tmp_path / "old")
    new_cert, new_key = write_self_signed(tmp_path / "new")
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait, cert=old_cert, key=old_key)
    assert server.can_reload_certificate
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"
    async with asyncio.timeout(30):
        async with connect(url, cafile=str(old_cert)) as before:
            await (await accepted.get()).wait_setup()
            await server.reload_certificate(new_cert, new_key)
            async with connect(url, cafile=str(new_cert)) as after:
                await (await accepted.get()).wait_setup()
                assert not after.is_closed
            with pytest.raises(HandshakeError):
                async with connect(url, cafile=str(old_cert), setup_timeout=5):
                    pass
            assert not before.is_closed  # the connection made before keeps its certificate

            # Files picoquic cannot load: refused, and the certificate served stays.
            (tmp_path / "bad.pem").write_text("not a certificate")
            with pytest.raises(ValueError, match="previous one is still served"):
                await server.reload_certificate(tmp_path / "bad.pem", new_key)
            async with connect(url, cafile=str(new_cert)) as again:
                await (await accepted.get()).wait_setup()
                assert not again.is_closed


async def test_a_picoquic_node_certificate_is_renewed_in_place(
    pico_server: Starter, tmp_path: Path
) -> None:
    """What a picoquic node does when its self-signed certificate is due: the files are
    renewed and the running server serves the new pair (it logged
    certificate_not_renewed before)."""
    assert stack_reloads("picoquic") and stack_reloads("aioquic")
    cert, key = write_self_signed(tmp_path / "node")
    original = cert.read_bytes()
    (tmp_path / "original.pem").write_bytes(original)
    now = [time.time()]
    node = NodeCertificate(cert, key, renew=stack_reloads("picoquic"), clock=lambda: now[0])
    assert node.renewable
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait, cert=cert, key=key)
    url = f"moqt://127.0.0.1:{server.address[1]}"
    now[0] = node.renew_at + 1
    assert node.renew_if_due()
    assert cert.read_bytes() != original
    await node.load_into_picoquic([server])
    async with asyncio.timeout(20):
        async with connect(url, cafile=str(cert)) as client:  # trusts the renewed one only
            await (await accepted.get()).wait_setup()
            assert not client.is_closed
        with pytest.raises(HandshakeError):
            async with connect(url, cafile=str(tmp_path / "original.pem"), setup_timeout=5):
                pass


@pytest.mark.parametrize("client_stack", STACKS)
async def test_what_was_written_before_a_close_is_sent_before_it(
    client_stack: str, pico_server: Starter
) -> None:
    """A server that closes as soon as SETUP completed (a POP refusing a relay link's
    credential) still gets its SERVER_SETUP out: picoquic dropped what its rings held."""

    def refuse(conn: MoqtConnection) -> None:
        async def at_setup() -> None:
            await conn.wait_setup()
            conn.close(0x2, "auth_failed")

        tasks.append(asyncio.create_task(at_setup()))

    tasks: list[asyncio.Task[None]] = []
    server = await pico_server(refuse)
    url = f"moqt://127.0.0.1:{server.address[1]}"
    for _ in range(5):
        async with asyncio.timeout(10):
            async with connect(url, verify=False, stack=client_stack) as client:
                closed = await client.wait_closed(grace=5)
                assert (closed.code, closed.reason, closed.by_peer) == (0x2, "auth_failed", True)
    await asyncio.gather(*tasks)


@pytest.mark.parametrize(
    ("settings", "options"),
    [
        ({}, ""),
        ({"send_quantum": 0.02}, "Q0.02"),
        ({"send_quantum": 0.005}, "Q0.005"),
        ({"congestion_control": "cubic"}, ""),
    ],
    ids=["picoquics-own", "large-fanout", "5ms", "cubic"],
)
async def test_bbr_is_given_the_send_quantum_asked_for(
    settings: dict[str, object], options: str, pico_server: Starter, certificate: tuple[Path, Path]
) -> None:
    """picoquic's BBR gets the send quantum asked for (picoquic's own 1 ms unless told:
    bench/RESULTS.md, issue 15); another controller keeps its own defaults. The server
    still serves: a session opens and answers on it."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait, **settings)
    assert server.congestion_options == options
    url = f"moqt://127.0.0.1:{server.address[1]}/"
    async with asyncio.timeout(10), connect(url, cafile=str(certificate[0]), stack="picoquic"):
        await (await accepted.get()).wait_setup()


async def test_picoquic_refuses_an_unknown_controller_and_an_odd_quantum(
    pico_server: Starter,
) -> None:
    with pytest.raises(ValueError, match=r"send_quantum is 0 to 0\.1 seconds"):
        await pico_server(lambda _conn: None, send_quantum=0.5)
    with pytest.raises(ValueError, match="send_quantum is BBR's, not cubic's"):
        await pico_server(lambda _conn: None, send_quantum=0.02, congestion_control="cubic")
    server = await pico_server(lambda _conn: None, send_quantum=0.02)
    native = server._native
    assert native is not None
    with pytest.raises(ValueError, match="no congestion controller 'warp'"):
        native.set_congestion_control("warp", "")
    assert server.congestion_options == "Q0.02"
    with pytest.raises(ValueError, match="busy_connections is >= 0"):
        await pico_server(lambda _conn: None, busy_connections=-1)
    with pytest.raises(ValueError, match=r"busy_send_quantum is 0 to 0\.1 seconds"):
        await pico_server(lambda _conn: None, busy_send_quantum=1.0)


async def held_connections(server: PicoquicServer, count: int) -> None:
    """Until picoquic holds ``count`` connections. A closed connection is freed on
    picoquic's thread after its draining period, which reports nothing to Python: so its
    count is read until it matches (10 s deadline)."""
    deadline = time.monotonic() + 10
    while server.statistics()["connections"] != count:
        assert time.monotonic() < deadline, f"{server.statistics()} after 10 s"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_a_busy_server_gives_the_connections_after_a_coarser_quantum(
    scheme: str, pico_server: Starter, certificate: tuple[Path, Path]
) -> None:
    """picoquic's own quantum costs a node with hundreds of viewers most of its CPU, a
    coarser one is burstier on a shallow viewer queue (bench/RESULTS.md, issue 15): a
    server gives the coarser one to the connections that come once it holds
    ``busy_connections`` (raw QUIC or WebTransport), and the fine one again once it holds
    at most half as many. What picoquic then does with the quantum is measured by the
    benches (bench/RESULTS.md), not here."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait, busy_connections=3, busy_send_quantum=0.02)
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"
    async with contextlib.AsyncExitStack() as viewers:
        for held in (1, 2, 3):
            assert (server.congestion_options, server.statistics()["busy"]) == ("", 0)
            await viewers.enter_async_context(
                connect(url, cafile=str(certificate[0]), stack="picoquic")
            )
            async with asyncio.timeout(10):
                await (await accepted.get()).wait_setup()
            assert server.statistics()["connections"] == held
        assert (server.congestion_options, server.statistics()["busy"]) == ("Q0.02", 1)
    await held_connections(server, 0)
    async with asyncio.timeout(10), connect(url, cafile=str(certificate[0]), stack="picoquic"):
        await (await accepted.get()).wait_setup()
        assert (server.congestion_options, server.statistics()["busy"]) == ("", 0)


@pytest.mark.parametrize(
    "settings",
    [
        {"busy_connections": 0},
        {"send_quantum": 0.02, "busy_send_quantum": 0.01},
        {"congestion_control": "cubic"},
    ],
    ids=["never", "already-coarser", "not-bbr"],
)
async def test_the_quantum_stays_where_busy_would_not_coarsen_it(
    settings: dict[str, object], pico_server: Starter, certificate: tuple[Path, Path]
) -> None:
    """Busy never makes pacing finer than ``send_quantum``, 0 connections turn it off, and
    another controller than BBR keeps its own pacing."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait, **{"busy_connections": 1, **settings})
    before = server.congestion_options
    async with asyncio.timeout(10):
        async with connect(
            f"moqt://127.0.0.1:{server.address[1]}/", cafile=str(certificate[0]), stack="picoquic"
        ):
            await (await accepted.get()).wait_setup()
            assert (server.congestion_options, server.statistics()["busy"]) == (before, 0)
