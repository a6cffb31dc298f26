"""moqt.aio on picoquic (aiopquic): raw QUIC and WebTransport, drafts 16 and 14,
against aioquic both ways.

Two QUIC (and HTTP/3) stacks written by different people talking MoQT to each
other is the interop check here: a picoquic server with aioquic and picoquic
clients, and a picoquic client against the aioquic server, on raw QUIC and on
WebTransport, both served on one UDP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiopquic.asyncio.webtransport import WebTransportError, connect_webtransport
from aiopquic.quic.configuration import QuicConfiguration

from moqt import DRAFT_14, DRAFT_16, RequestErrorCode
from moqt.aio import (
    MoqtConnection,
    PicoquicServer,
    SessionOptions,
    connect,
    serve_picoquic,
)
from moqt.events import (
    ObjectReceived,
    RequestRejected,
    SubgroupStreamEnded,
    SubscribeAccepted,
    SubscribeRequested,
)

from .test_aio import NS, check_datagram_and_reset, serve_track

STACKS = ["aioquic", "picoquic"]


@pytest.fixture
async def pico_server(
    certificate: tuple[Path, Path],
) -> AsyncIterator[Callable[..., object]]:
    servers: list[PicoquicServer] = []

    async def start(
        on_session: Callable[[MoqtConnection], None],
        options: SessionOptions | None = None,
        **kwargs: object,
    ) -> PicoquicServer:
        server = await serve_picoquic(
            "127.0.0.1",
            0,
            certificate=certificate[0],
            private_key=certificate[1],
            on_session=on_session,
            options=options,
            **kwargs,  # type: ignore[arg-type]
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


async def _subscribe_and_read(client: MoqtConnection, objects: int) -> None:
    missing = client.session.subscribe(NS, b"audio")
    answer = await client.wait_response(missing)
    assert isinstance(answer, RequestRejected)
    assert answer.error == RequestErrorCode.DOES_NOT_EXIST

    rid = client.session.subscribe(NS, b"video")
    assert isinstance(await client.wait_response(rid), SubscribeAccepted)
    got = []
    while True:
        event = await client.wait_event()
        if isinstance(event, ObjectReceived):
            got.append((event.group_id, event.object_id, event.payload))
        elif isinstance(event, SubgroupStreamEnded):
            break
    assert got == [(5, i, b"payload-%d" % i) for i in range(objects)]


@pytest.mark.parametrize("client_stack", STACKS)
@pytest.mark.parametrize("version", [DRAFT_16, DRAFT_14], ids=["16", "14"])
async def test_picoquic_server(
    client_stack: str,
    version: int,
    pico_server: Callable[..., object],
    certificate: tuple[Path, Path],
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    assert isinstance(server, PicoquicServer)
    url = f"moqt://127.0.0.1:{server.address[1]}/moq?x=1"
    async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
        async with connect(
            url, versions=(version,), cafile=str(certificate[0]), stack=client_stack
        ) as client:
            server_conn = await accepted.get()
            setup = await server_conn.wait_setup()
            assert setup.version == version
            assert setup.path == "/moq?x=1"
            assert server_conn.transport_name.startswith("picoquic/")
            # Larger than a packet and than one ring write: exercises stream flow.
            tg.create_task(serve_track(server_conn, 2000))
            await _subscribe_and_read(client, 2000)
        closed = await server_conn.wait_closed(grace=5)
        assert closed.by_peer
    assert server.connections == []


@pytest.mark.parametrize("version", [DRAFT_16, DRAFT_14], ids=["16", "14"])
async def test_picoquic_client_against_aioquic_server(
    version: int, moqt_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
        async with connect(
            url, versions=(version,), cafile=str(certificate[0]), stack="picoquic"
        ) as client:
            assert (
                client.transport_name
                == f"picoquic/{'moqt-16' if version == DRAFT_16 else 'moq-00'}"
            )
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            tg.create_task(serve_track(server_conn, 200))
            await _subscribe_and_read(client, 200)


async def test_server_close_code_reaches_picoquic_client(
    pico_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, verify=False, stack="aioquic") as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            server_conn.close(0x2, "go away")
            closed = await client.wait_closed(grace=5)
            assert closed.by_peer
            assert closed.code == 0x2


@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_picoquic_refuses_unverified_certificate(
    scheme: str, pico_server: Callable[..., object]
) -> None:
    server = await pico_server(lambda conn: None)  # type: ignore[operator]
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    with pytest.raises((ConnectionError, TimeoutError)):
        async with connect(url, stack="picoquic", setup_timeout=5):
            pass


async def test_bad_stack_choices_are_refused(certificate: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="unknown QUIC stack"):
        async with connect("moqt://127.0.0.1:1", stack="quiche"):
            pass
    for alpns, wt_path in ((("h2",), ""), ((), ""), (("h3",), "moq")):
        with pytest.raises(ValueError):
            await serve_picoquic(
                "127.0.0.1",
                0,
                certificate=certificate[0],
                private_key=certificate[1],
                on_session=lambda conn: None,
                alpns=alpns,
                wt_path=wt_path,
            )


async def test_picoquic_refuses_a_busy_port(certificate: tuple[Path, Path]) -> None:
    """picoquic itself would fail to bind silently; the adapter says so."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match="not free"):
            await serve_picoquic(
                "0.0.0.0",
                port,
                certificate=certificate[0],
                private_key=certificate[1],
                on_session=lambda conn: None,
            )


# --- WebTransport --------------------------------------------------------------------


@pytest.mark.parametrize("client_stack", STACKS)
@pytest.mark.parametrize("version", [DRAFT_16, DRAFT_14], ids=["16", "14"])
async def test_picoquic_webtransport_server(
    client_stack: str,
    version: int,
    pico_server: Callable[..., object],
    certificate: tuple[Path, Path],
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    assert isinstance(server, PicoquicServer)
    url = f"https://127.0.0.1:{server.address[1]}/stream/org_a/lv_b?token=abc.def&x=1"
    async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
        async with connect(
            url, versions=(version,), cafile=str(certificate[0]), stack=client_stack
        ) as client:
            server_conn = await accepted.get()
            setup = await server_conn.wait_setup()
            assert setup.version == version
            # The CONNECT path, query and all: a POP reads ?token= from it.
            assert server_conn.path == "/stream/org_a/lv_b?token=abc.def&x=1"
            protocol = "moqt-16" if version == DRAFT_16 else "moq-00"
            assert server_conn.transport_name == f"picoquic/webtransport/{protocol}"
            assert client.transport_name.endswith(f"webtransport/{protocol}")
            assert server.connections == [server_conn]
            tg.create_task(serve_track(server_conn, 2000))
            await _subscribe_and_read(client, 2000)
        closed = await server_conn.wait_closed(grace=5)
        assert closed.by_peer
        assert closed.code == 0
    assert server.connections == []


@pytest.mark.parametrize("version", [DRAFT_16, DRAFT_14], ids=["16", "14"])
async def test_picoquic_webtransport_client_against_aioquic_server(
    version: int, moqt_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"https://127.0.0.1:{server.address[1]}/moq?token=t"  # type: ignore[attr-defined]
    async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
        async with connect(
            url, versions=(version,), cafile=str(certificate[0]), stack="picoquic"
        ) as client:
            protocol = "moqt-16" if version == DRAFT_16 else "moq-00"
            assert client.transport_name == f"picoquic/webtransport/{protocol}"
            server_conn = await accepted.get()
            assert (await server_conn.wait_setup()).version == version
            assert server_conn.path == "/moq?token=t"
            tg.create_task(serve_track(server_conn, 500))
            await _subscribe_and_read(client, 500)
        closed = await server_conn.wait_closed(grace=5)
        assert closed.by_peer


async def test_raw_quic_and_webtransport_share_the_port(
    pico_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    port = server.address[1]  # type: ignore[attr-defined]
    async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
        async with (
            connect(f"moqt://127.0.0.1:{port}/raw", verify=False) as raw,
            connect(f"https://127.0.0.1:{port}/wt", verify=False, stack="picoquic") as wt,
        ):
            conns = [await accepted.get(), await accepted.get()]
            names = sorted(conn.transport_name for conn in conns)
            assert names == ["picoquic/moqt-16", "picoquic/webtransport/moqt-16"]
            for conn in conns:
                await conn.wait_setup()
                tg.create_task(serve_track(conn, 300))
            await _subscribe_and_read(raw, 300)
            await _subscribe_and_read(wt, 300)


@pytest.mark.parametrize("client_stack", STACKS)
async def test_webtransport_server_close_code_reaches_the_client(
    client_stack: str, pico_server: Callable[..., object]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"https://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, verify=False, stack=client_stack) as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            server_conn.close(0x10, "auth_failed")
            closed = await client.wait_closed(grace=5)
            assert closed.by_peer
            assert (closed.code, closed.reason) == (0x10, "auth_failed")


@pytest.mark.parametrize("server_stack", STACKS)
async def test_webtransport_client_close_code_reaches_the_server(
    server_stack: str,
    pico_server: Callable[..., object],
    moqt_server: Callable[..., object],
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    start = pico_server if server_stack == "picoquic" else moqt_server
    server = await start(accepted.put_nowait)  # type: ignore[operator]
    url = f"https://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, verify=False, stack="picoquic") as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            client.close(0x2, "going away")
        closed = await server_conn.wait_closed(grace=5)
        assert closed.by_peer
        assert (closed.code, closed.reason) == (0x2, "going away")


async def test_webtransport_refuses_unknown_paths_and_protocols_cleanly(
    pico_server: Callable[..., object],
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait, wt_path="/moq")  # type: ignore[operator]
    port = server.address[1]  # type: ignore[attr-defined]
    async with asyncio.timeout(20):
        for stack in STACKS:
            with pytest.raises(ConnectionError):
                async with connect(
                    f"https://127.0.0.1:{port}/other", verify=False, stack=stack, setup_timeout=5
                ):
                    pass
        config = QuicConfiguration(is_client=True, max_datagram_frame_size=65536)
        with pytest.raises(WebTransportError, match="400"):
            async with connect_webtransport(
                "127.0.0.1",
                port,
                "/moq",
                configuration=config,
                verify_peer=False,
                wt_available_protocols=["moqt-99"],
                timeout=5,
            ):
                pass
        assert accepted.empty()
        # Still serving: the right path (with a query) gets its session.
        async with connect(f"https://127.0.0.1:{port}/moq?a=b", verify=False, stack="picoquic"):
            conn = await accepted.get()
            assert conn.path == "/moq?a=b"


async def test_raw_only_picoquic_server_refuses_webtransport(
    pico_server: Callable[..., object],
) -> None:
    server = await pico_server(lambda conn: None, alpns=("moqt-16", "moq-00"))  # type: ignore[operator]
    url = f"https://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    with pytest.raises((ConnectionError, TimeoutError)):
        async with connect(url, verify=False, stack="aioquic", setup_timeout=5):
            pass


@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_picoquic_backlog_overflows_the_ring_and_wakes_the_writer(
    scheme: str, pico_server: Callable[..., object]
) -> None:
    """8 MiB written in one tick: more than a stream ring holds, so part of it waits in
    the overflow; the backlog counts all of it and falls to zero as picoquic sends."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(20):
        async with connect(url, verify=False) as client:
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
            for i in range(128):
                conn.session.write_object(handle, i, bytes([i]) * (64 * 1024))
            # picoquic's thread may already have sent a little, but more than one
            # stream ring (4 MiB) holds is still there: the overflow counts.
            assert conn.send_backlog() >= 6 << 20
            conn.session.end_subgroup(handle)
            got = []
            while len(got) < 128:
                event = await client.wait_event()
                if isinstance(event, ObjectReceived):
                    got.append(event)
            assert [(e.object_id, e.payload[:1], len(e.payload)) for e in got] == [
                (i, bytes([i]), 64 * 1024) for i in range(128)
            ]
            for _ in range(100):  # picoquic's thread may not have released the last bytes
                if conn.send_backlog() == 0:
                    break
                await asyncio.sleep(0.01)
            assert conn.send_backlog() == 0
            assert wakeups[0] > 0
            conn.set_writable_handler(None)


@pytest.mark.parametrize("client_stack", STACKS)
@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_picoquic_datagrams_and_stream_resets(
    scheme: str, client_stack: str, pico_server: Callable[..., object]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, verify=False, stack=client_stack) as client:
            await check_datagram_and_reset(await accepted.get(), client)


async def test_picoquic_wakes_the_writer_only_from_min_backlog(
    pico_server: Callable[..., object],
) -> None:
    """A writer that holds back only from 1 MiB on is not woken after small writes
    (no drain notice, no timer per write); a backlog past it wakes it as before."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(20):
        async with connect(url, verify=False) as client:
            conn = await accepted.get()
            await conn.wait_setup()
            wakeups = [0]

            def writable() -> None:
                wakeups[0] += 1

            conn.set_writable_handler(writable, min_backlog=1 << 20)
            rid = client.session.subscribe(NS, b"video")
            request = await conn.wait_event()
            while not isinstance(request, SubscribeRequested):
                request = await conn.wait_event()
            conn.session.accept_subscribe(request.request_id)
            assert isinstance(await client.wait_response(rid), SubscribeAccepted)
            handle = conn.session.open_subgroup(request.request_id, 0, 0)
            for i in range(20):
                conn.session.write_object(handle, i, b"x" * 4096)
                assert 0 <= conn.send_backlog() < 1 << 20
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
            assert wakeups[0] == 0
            for i in range(20, 84):
                conn.session.write_object(handle, i, b"y" * (64 * 1024))
            assert conn.send_backlog() >= 1 << 20
            for _ in range(200):
                if wakeups[0]:
                    break
                await asyncio.sleep(0.01)
            assert wakeups[0] > 0
            conn.set_writable_handler(None)


@pytest.mark.parametrize("client_stack", STACKS)
async def test_webtransport_sessions_closed_by_the_server_are_released(
    client_stack: str, pico_server: Callable[..., object]
) -> None:
    """aiopquic forgets a server session only when the peer closed it; ours are
    released by the adapter, or every refused viewer would stay in memory."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"https://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    refs = []
    async with asyncio.timeout(15):
        for _ in range(3):
            async with connect(url, verify=False, stack=client_stack) as client:
                server_conn = await accepted.get()
                await server_conn.wait_setup()
                server_conn.close(0x10, "auth_failed")
                assert (await client.wait_closed(grace=5)).code == 0x10
                refs.append(weakref.ref(server_conn))
                del server_conn
        for _ in range(100):
            gc.collect()
            if all(ref() is None for ref in refs):
                break
            await asyncio.sleep(0.05)
    assert [ref() for ref in refs] == [None, None, None]


@pytest.mark.parametrize("closer", ["server", "client"])
async def test_ended_raw_sessions_are_freed_without_the_cycle_collector(
    closer: str, pico_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    """A closed session, its transport and its protocol go when their holders let go:
    no reference cycle left for CPython's full collections, which a busy relay runs
    seldom (in the soak, closed viewer sessions piled up by the hundred between two)."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    freed = asyncio.Event()
    refs = []
    gc.collect()
    gc.disable()
    try:
        async with asyncio.timeout(15):
            for _ in range(3):
                async with connect(url, cafile=str(certificate[0]), stack="picoquic") as client:
                    server_conn = await accepted.get()
                    await server_conn.wait_setup()
                    # The application's handlers hold the session, as a relay's peer does.
                    server_conn.set_event_handler(lambda conn, event, held=server_conn: None)
                    server_conn.set_writable_handler(server_conn.send_backlog)
                    if closer == "server":
                        server_conn.close(0x10, "auth_failed")
                    else:
                        client.close()
                    await server_conn.wait_closed(grace=5)
                    refs.append(weakref.ref(server_conn, lambda _ref: freed.set()))
                    del server_conn
        # The picoquic connections' close events free the protocols; give them time.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while any(ref() is not None for ref in refs):
                    await freed.wait()
                    freed.clear()
    finally:
        gc.enable()
    assert [ref() for ref in refs] == [None, None, None]


@pytest.mark.parametrize("scheme", ["moqt", "https"])
async def test_objects_larger_than_a_small_stream_buffer_arrive_whole(
    scheme: str, pico_server: Callable[..., object]
) -> None:
    """``stream_buffer`` bounds picoquic's ring per stream; writes larger than it are cut
    into pieces that fit (a ring takes a write whole or not at all)."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait, stream_buffer=4096)  # type: ignore[operator]
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(20):
        async with connect(url, verify=False) as client:
            conn = await accepted.get()
            await conn.wait_setup()
            rid = client.session.subscribe(NS, b"video")
            request = await conn.wait_event()
            while not isinstance(request, SubscribeRequested):
                request = await conn.wait_event()
            conn.session.accept_subscribe(request.request_id)
            assert isinstance(await client.wait_response(rid), SubscribeAccepted)
            handle = conn.session.open_subgroup(request.request_id, 0, 0)
            sizes = [100, 5000, 70_000, 1, 300_000]
            for i, size in enumerate(sizes):
                conn.session.write_object(handle, i, bytes([i]) * size)
            conn.session.end_subgroup(handle)
            got = []
            while len(got) < len(sizes):
                event = await client.wait_event()
                if isinstance(event, ObjectReceived):
                    got.append(event)
            assert [e.payload for e in got] == [bytes([i]) * n for i, n in enumerate(sizes)]


def test_congestion_controls_are_picoquics_and_the_settings_offer_them_all() -> None:
    """Every controller a node's ``quic_congestion_control`` offers is registered in
    picoquic (aiopquic checks the name against its registry); the default is BBR, not
    aiopquic's BBRv1 (tests/e2e/test_congestion.py shows the difference)."""
    import typing

    from aiopquic._binding._transport import check_congestion_control_algorithm

    from mesh.settings import NodeSettings
    from moqt.aio._picoquic import CONGESTION_CONTROLS, DEFAULT_CONGESTION_CONTROL

    offered = typing.get_args(typing.get_type_hints(NodeSettings)["quic_congestion_control"])
    assert set(offered) == set(CONGESTION_CONTROLS)
    for name in CONGESTION_CONTROLS:
        check_congestion_control_algorithm(name)
    assert DEFAULT_CONGESTION_CONTROL == NodeSettings().quic_congestion_control == "bbr"


async def test_an_unknown_congestion_control_is_refused(
    pico_server: Callable[..., object],
) -> None:
    with pytest.raises(ValueError, match="congestion_control must be one of bbr"):
        await pico_server(lambda conn: None, congestion_control="vegas")  # type: ignore[operator]
    with pytest.raises(ValueError, match="congestion_control must be one of bbr"):
        async with connect("moqt://127.0.0.1:9/", stack="picoquic", congestion_control="vegas"):
            pass


async def test_a_client_on_another_controller_still_gets_its_objects(
    pico_server: Callable[..., object],
) -> None:
    """``connect(congestion_control=...)``, what a POP's links to its origins are opened
    with (the node's ``quic_congestion_control``), carries a session end to end."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await pico_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
        async with connect(
            url, verify=False, stack="picoquic", congestion_control="cubic"
        ) as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            tg.create_task(serve_track(server_conn, 200))
            await _subscribe_and_read(client, 200)
