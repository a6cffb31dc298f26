"""moqt.aio over real QUIC on loopback: raw QUIC and WebTransport, drafts 16 and 14."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from moqt import DRAFT_14, DRAFT_16, RequestErrorCode
from moqt.aio import (
    ConnectionClosed,
    MoqtConnection,
    RequestFailed,
    SessionOptions,
    connect,
    parse_moqt_url,
)
from moqt.events import (
    ObjectReceived,
    ObjectSource,
    RequestRejected,
    SessionClosed,
    SetupCompleted,
    SubgroupStreamEnded,
    SubgroupStreamReset,
    SubscribeAccepted,
    SubscribeRequested,
)

CASES = [
    pytest.param("moqt", DRAFT_16, id="quic-16"),
    pytest.param("moqt", DRAFT_14, id="quic-14"),
    pytest.param("https", DRAFT_16, id="wt-16"),
    pytest.param("https", DRAFT_14, id="wt-14"),
]
NS = (b"live", b"demo")


async def serve_track(conn: MoqtConnection, objects: int) -> None:
    """A tiny publisher: serves track 'video' with ``objects`` objects in group 5."""
    async for event in conn.events():
        if isinstance(event, SubscribeRequested):
            if event.name != b"video":
                conn.session.reject_request(
                    event.request_id, RequestErrorCode.DOES_NOT_EXIST, "no such track"
                )
                continue
            conn.session.accept_subscribe(event.request_id)
            handle = conn.session.open_subgroup(event.request_id, 5, 0)
            for i in range(objects):
                conn.session.write_object(handle, i, b"payload-%d" % i)
            conn.session.end_subgroup(handle)


@pytest.mark.parametrize(("scheme", "version"), CASES)
async def test_subscribe_roundtrip(
    scheme: str, version: int, moqt_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator]
    port = server.address[1]
    url = f"{scheme}://127.0.0.1:{port}/moq?x=1"
    async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
        async with connect(url, versions=(version,), cafile=str(certificate[0])) as client:
            server_conn = await accepted.get()
            setup = await server_conn.wait_setup()
            assert isinstance(setup, SetupCompleted)
            assert setup.version == version
            if scheme == "https":
                assert server_conn.path == "/moq?x=1"
                assert server_conn.transport_name.startswith("webtransport")
            else:
                assert setup.path == "/moq?x=1"
            tg.create_task(serve_track(server_conn, 20))

            missing = client.session.subscribe(NS, b"audio")
            answer = await client.wait_response(missing)
            assert isinstance(answer, RequestRejected)
            assert answer.error == RequestErrorCode.DOES_NOT_EXIST

            rid = client.session.subscribe(NS, b"video")
            answer = await client.wait_response(rid)
            assert isinstance(answer, SubscribeAccepted)
            got = []
            while True:
                event = await client.wait_event()
                if isinstance(event, ObjectReceived):
                    got.append((event.group_id, event.object_id, event.payload))
                elif isinstance(event, SubgroupStreamEnded):
                    break
            assert got == [(5, i, b"payload-%d" % i) for i in range(20)]
        closed = await server_conn.wait_closed(grace=5)
        assert closed.by_peer
    assert server.connections == []  # type: ignore[attr-defined]


async def test_server_close_reaches_client(
    moqt_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"https://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, verify=False) as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            server_conn.close(0x2, "go away")
            closed = await client.wait_closed(grace=5)
            assert closed.by_peer
            assert closed.code == 0x2
            with pytest.raises(ConnectionClosed):
                await client.wait_response(12345)


async def test_peer_close_reaches_the_session_before_the_quic_drain_ends(
    moqt_server: Callable[..., object],
) -> None:
    """aioquic reports a peer's CONNECTION_CLOSE only after its draining period, 3 x PTO;
    a loaded host (the soak's, viewers in one busy process) inflates the RTT variance
    to seconds, and a revoked viewer learned its auth_failed 3-16 s late (its stall
    probe, unanswered in the drain, even reconnected it). Here the client's PTO is
    10 s (a 30 s drain): the close, with its code, and ``connect()``'s exit come at once."""
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(15):
        async with connect(url, verify=False) as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            protocol = client._ping.__self__  # type: ignore[attr-defined,union-attr]
            protocol._quic._loss.get_probe_timeout = lambda: 10.0
            started = loop.time()
            server_conn.close(0x2, "auth_failed")
            closed = await client.wait_closed()  # no grace: only the peer's close ends it
            assert (closed.code, closed.reason, closed.by_peer) == (0x2, "auth_failed", True)
            assert loop.time() - started < 8.0
        assert loop.time() - started < 8.0  # the exit did not wait out the 30 s drain


async def test_an_abandoned_ping_leaves_nothing_unread_when_the_connection_ends(
    moqt_server: Callable[..., object],
) -> None:
    """A PING its caller gave up on (the SDK viewer's stall probe under a timeout) is failed
    by aioquic when the connection ends; nobody may be left to log "Future exception was
    never retrieved" into the application's output (the soak's viewers printed it)."""
    import gc

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    try:
        async with asyncio.timeout(10):
            async with connect(url, verify=False) as client:
                server_conn = await accepted.get()
                await server_conn.wait_setup()
                probe = asyncio.create_task(client.ping())
                await asyncio.sleep(0)  # the PING is sent; its caller gives up at once
                probe.cancel()
                server_conn.close(0x2, "go away")
                await client.wait_closed(grace=5)
            del probe
            for _ in range(3):
                await asyncio.sleep(0)
            gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert not [c for c in unhandled if "never retrieved" in str(c.get("message"))], unhandled


async def test_unverified_certificate_is_refused(moqt_server: Callable[..., object]) -> None:
    server = await moqt_server(lambda conn: None)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}"  # type: ignore[attr-defined]
    with pytest.raises(ConnectionError):
        async with connect(url, setup_timeout=5):
            pass


def test_parse_url() -> None:
    target = parse_moqt_url("moqt://relay.example:4443/a/b?token=t")
    assert (target.host, target.port, target.path, target.webtransport) == (
        "relay.example",
        4443,
        "/a/b?token=t",
        False,
    )
    target = parse_moqt_url("https://[::1]/")
    assert (target.host, target.port, target.webtransport) == ("::1", 443, True)
    for bad in ("http://x", "moqt://", "ftp://h/p"):
        with pytest.raises(ValueError):
            parse_moqt_url(bad)


async def test_request_helper_drain_and_queue_bound(
    moqt_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait, SessionOptions(max_queued_events=3))  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, cafile=str(certificate[0])) as client:
            server_conn = await accepted.get()
            await server_conn.wait_setup()
            for i in range(3):
                client.session.track_status(NS, b"t%d" % i)
            # the server application reads nothing: its 3-event queue overflows
            closed = await client.wait_closed(grace=5)
            assert closed.code == 0x1  # INTERNAL_ERROR
            assert "event queue overflow" in closed.reason

    async with asyncio.timeout(10):
        async with connect(url, cafile=str(certificate[0])) as client:
            server_conn = await accepted.get()

            def answer(conn: MoqtConnection, event: object) -> None:
                if isinstance(event, SubscribeRequested):
                    conn.session.reject_request(
                        event.request_id, RequestErrorCode.UNAUTHORIZED, "no"
                    )

            server_conn.set_event_handler(answer)
            with pytest.raises(RequestFailed) as info:
                await client.request(client.session.subscribe(NS, b"x"), SubscribeAccepted)
            assert info.value.rejection.error == RequestErrorCode.UNAUTHORIZED
            closed = await server_conn.drain(grace=0.5)
            assert isinstance(closed, SessionClosed)
            seen_by_client = await client.wait_closed(grace=3)
            assert (seen_by_client.code, seen_by_client.reason) == (0, "drained")


def test_exports() -> None:
    import moqt.aio

    assert sorted(moqt.aio.__all__) == sorted(
        [
            "ALPN_H3", "CONGESTION_CONTROLS", "DEFAULT_CONGESTION_CONTROL",
            "DEFAULT_SERVER_ALPNS", "CertificatePair", "ClientTarget",
            "ConnectionClosed", "EventHandler", "HandshakeError", "Listener", "MoqtConnection",
            "MoqtProtocol",
            "MoqtServer", "PicoquicServer", "QUIC_STACKS", "RequestFailed", "SessionOptions",
            "certificate_sha256", "connect", "generate_self_signed", "listen",
            "parse_moqt_url", "serve", "serve_picoquic", "server_configuration",
            "write_self_signed",
        ]
    )  # fmt: skip


async def check_datagram_and_reset(server_conn: MoqtConnection, client: MoqtConnection) -> None:
    """A DATAGRAM object and a subgroup stream reset (DELIVERY_TIMEOUT) reach the client."""
    rid = client.session.subscribe(NS, b"video")
    request = None
    while request is None:
        event = await server_conn.wait_event()
        if isinstance(event, SubscribeRequested):
            request = event
    server_conn.session.accept_subscribe(request.request_id)
    await client.request(rid, SubscribeAccepted)
    server_conn.session.send_object_datagram(request.request_id, 3, 0, b"datagram")
    handle = server_conn.session.open_subgroup(request.request_id, 4, 0)
    server_conn.session.write_object(handle, 0, b"first")
    await asyncio.sleep(0.1)  # let the object arrive before the reset
    server_conn.session.reset_subgroup(handle, 0x2)  # DELIVERY_TIMEOUT
    seen: dict[str, object] = {}
    while "reset" not in seen or "datagram" not in seen:
        event = await client.wait_event()
        if isinstance(event, ObjectReceived) and event.payload == b"datagram":
            assert event.source is ObjectSource.DATAGRAM
            seen["datagram"] = event
        elif isinstance(event, SubgroupStreamReset):
            seen["reset"] = event
    reset = seen["reset"]
    assert isinstance(reset, SubgroupStreamReset)
    assert (reset.group_id, reset.error_code) == (4, 0x2)


@pytest.mark.parametrize(("scheme", "version"), CASES)
async def test_datagrams_and_stream_resets(
    scheme: str, version: int, moqt_server: Callable[..., object], certificate: tuple[Path, Path]
) -> None:
    accepted: asyncio.Queue[MoqtConnection] = asyncio.Queue()
    server = await moqt_server(accepted.put_nowait)  # type: ignore[operator]
    url = f"{scheme}://127.0.0.1:{server.address[1]}/"  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        async with connect(url, versions=(version,), cafile=str(certificate[0])) as client:
            await check_datagram_and_reset(await accepted.get(), client)


async def test_connections_over_the_limit_are_refused(
    moqt_server: Callable[..., object],
) -> None:
    sessions: list[MoqtConnection] = []
    server = await moqt_server(sessions.append, max_connections=1)  # type: ignore[operator]
    url = f"moqt://127.0.0.1:{server.address[1]}"  # type: ignore[attr-defined]
    async with asyncio.timeout(10), connect(url, verify=False) as first:
        with pytest.raises(ConnectionError):
            async with connect(url, verify=False, setup_timeout=5):
                pass
        assert not first.is_closed
        assert len(sessions) == 1


def test_self_signed_certificate() -> None:
    import datetime

    from cryptography import x509

    from moqt.aio import generate_self_signed

    pair = generate_self_signed(["relay.test"])
    cert = x509.load_pem_x509_certificate(pair.certificate_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "relay.test" in names.get_values_for_type(x509.DNSName)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < datetime.timedelta(days=14)
    assert len(pair.sha256) == 32
    with pytest.raises(ValueError):
        generate_self_signed(valid_days=0)
