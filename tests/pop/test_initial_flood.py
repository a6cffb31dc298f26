"""A flood of spoofed QUIC Initials: address validation (Retry) keeps the POP's state bounded.

On both QUIC stacks (``bench/quic_flood.py`` measures the issue's full flood).

Each Initial for an unknown connection id used to create a connection on the POP
(TLS state, timers, retransmissions to a forged address). With ``quic_retry`` "auto"
the POP answers Initials without a token with a stateless Retry once more than
``retry_threshold`` handshakes are half-open or more than an eighth of it are asked for
within a second, so the flood costs a few microseconds each, and an honest client
(which answers the Retry) still connects at once. What was refused is counted by reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from bench.quic_flood import handshake_initials
from moqt.aio import SessionOptions, connect
from pop import PopNode
from tests.pop.conftest import MakePop
from tests.pop.lab import Tokens

FLOOD = 1500
THRESHOLD = 20


def spoofed_initial() -> bytes:
    """An Initial-shaped 1200-byte datagram with random connection ids (it never decrypts)."""
    dcid, scid = os.urandom(8), os.urandom(8)
    head = b"\xc3" + (1).to_bytes(4, "big") + b"\x08" + dcid + b"\x08" + scid + b"\x00"
    rest = 1200 - len(head) - 2
    return head + bytes([0x40 | (rest >> 8), rest & 0xFF]) + os.urandom(rest)


async def flood(port: int, count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for i in range(count):
            try:
                sock.sendto(spoofed_initial(), ("127.0.0.1", port))
            except BlockingIOError:
                pass
            if i % 50 == 49:
                await asyncio.sleep(0.005)  # ~2000 datagrams per second at most on this host


@pytest.mark.latency
@pytest.mark.timeout(60)
async def test_spoofed_initials_create_bounded_state(make_pop: MakePop, tokens: Tokens) -> None:
    pop = await make_pop(quic_stack="aioquic", retry_threshold=THRESHOLD)
    port = pop.quic_address[1]
    flooding = asyncio.create_task(flood(port, FLOOD))
    try:
        await asyncio.sleep(0.2)  # well into the flood
        started = time.monotonic()
        options = SessionOptions(auth_token=tokens.mint().encode())
        async with connect(f"moqt://127.0.0.1:{port}", verify=False, options=options) as conn:
            assert conn.session.setup_complete
            waited = time.monotonic() - started
        await flooding
    finally:
        flooding.cancel()
    assert waited < 1.0, f"the honest client waited {waited:.2f} s"
    # Connections the server holds state for: the threshold, not the flood.
    server = pop._server
    assert server is not None
    held = len(server._protocols)  # type: ignore[attr-defined]
    assert held <= THRESHOLD + 5, f"{held} connections for {FLOOD} spoofed Initials"
    # Every spoofed Initial is accounted for: answered with Retry, or (one source port
    # sending them all) dropped past the per-source limit.
    retries = await quic_gauge(pop, "retries_sent")
    dropped = await quic_gauge(pop, "dropped_source_rate")
    assert dropped > 0
    assert retries + dropped >= FLOOD - THRESHOLD - 5, (retries, dropped)


async def test_retry_always_still_admits_clients(make_pop: MakePop, tokens: Tokens) -> None:
    pop = await make_pop(quic_stack="aioquic", quic_retry="always")
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with connect(
        f"moqt://127.0.0.1:{pop.quic_address[1]}", verify=False, options=options
    ) as conn:
        assert conn.session.setup_complete
    assert pop.metrics.registry.get_sample_value("clutchcall_pop_quic_retries_sent") == 1


async def send_all_from(port: int, datagrams: list[bytes], sources: int) -> None:
    """Send ``datagrams`` from ``sources`` sockets in turn (stand-ins for spoofed addresses)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sources)]
    try:
        for i, data in enumerate(datagrams):
            try:
                socks[i % sources].sendto(data, ("127.0.0.1", port))
            except BlockingIOError:
                pass
            if i % 50 == 49:
                await asyncio.sleep(0.005)
    finally:
        for sock in socks:
            sock.close()


async def counted(pop: PopNode, names: tuple[str, ...], total: int) -> int:
    """The sum of ``clutchcall_pop_quic_<name>`` gauges once it reaches ``total``
    (10 s deadline: the POP reads the flood's last datagrams in its own time)."""
    deadline = time.monotonic() + 10
    while True:
        registry = pop.metrics.registry
        value = sum(registry.get_sample_value(f"clutchcall_pop_quic_{n}") or 0 for n in names)
        if value >= total or time.monotonic() > deadline:
            return int(value)
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_handshake_flood_from_many_sources_costs_few_handshakes(
    make_pop: MakePop, tokens: Tokens
) -> None:
    # Real ClientHellos from many source ports: the per-source limit does not apply, and
    # each Initial below the threshold would cost a TLS handshake in Python (~3 ms). The
    # rate of tokenless Initials trips Retry after an eighth of retry_threshold of them,
    # not after retry_threshold half-open connections (64 handshakes before the fix).
    threshold = 64
    pop = await make_pop(quic_stack="aioquic", retry_threshold=threshold)
    port = pop.quic_address[1]
    flood = handshake_initials(600, port)
    await send_all_from(port, flood, sources=60)
    answered = await counted(pop, ("retries_sent", "connections_created"), len(flood))
    assert answered >= len(flood) * 0.9, f"{answered} of {len(flood)} Initials answered"
    created = await quic_gauge(pop, "connections_created")
    trigger = await quic_gauge(pop, "retry_rate_trigger")
    assert trigger == threshold // 8
    # One window's worth, and one more should the flood straddle a quiet second.
    assert created <= 2 * trigger + 2, f"{created} handshakes for a flood"
    assert await quic_gauge(pop, "dropped_source_rate") == 0
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with connect(f"moqt://127.0.0.1:{port}", verify=False, options=options) as conn:
        assert conn.session.setup_complete  # right after the flood: through a Retry


@pytest.mark.timeout(60)
async def test_forged_retry_tokens_are_counted(make_pop: MakePop) -> None:
    # Initials that carry a token we never issued: refused with INVALID_TOKEN (RFC 9000
    # 8.1.3) normally, dropped without an answer while Retry is on; counted either way.
    forged = os.urandom(40)
    never = await make_pop(quic_stack="aioquic", quic_retry="never")
    port = never.quic_address[1]
    await send_all_from(port, handshake_initials(10, port, token=forged), sources=10)
    assert await counted(never, ("refused_invalid_token",), 10) == 10
    assert await quic_gauge(never, "connections_created") == 0
    always = await make_pop(quic_stack="aioquic", quic_retry="always")
    port = always.quic_address[1]
    await send_all_from(port, handshake_initials(10, port, token=forged), sources=10)
    assert await counted(always, ("dropped_invalid_token",), 10) == 10
    assert await quic_gauge(always, "refused_invalid_token") == 0


def other_version(scid: bytes, size: int) -> bytes:
    """A long-header datagram of ``size`` bytes in a QUIC version nobody speaks (laid out
    like a v1 Initial: empty token, then the length of the rest)."""
    head = b"\xc0" + bytes.fromhex("1a2a3a4a") + b"\x08" + os.urandom(8) + b"\x08" + scid
    rest = size - len(head) - 3
    return head + b"\x00" + bytes([0x40 | (rest >> 8), rest & 0xFF]) + os.urandom(rest)


async def test_version_negotiation_is_not_a_reflector(make_pop: MakePop) -> None:
    # An unknown version gets Version Negotiation only in answer to a datagram that could
    # start a connection (RFC 9000 5.2.2): a small one answered would be a ~7x reflector.
    pop = await make_pop(quic_stack="aioquic")
    port = pop.quic_address[1]
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        small, large = b"s" * 8, b"l" * 8
        await loop.sock_sendall(sock, other_version(small, 40))
        await loop.sock_sendall(sock, other_version(large, 1200))
        # The POP reads them in order: an answer to the small one would come first.
        answer = await asyncio.wait_for(loop.sock_recv(sock, 2048), 10)
    # Version Negotiation (version 0) to the large one's source id, and nothing before it.
    assert answer[1:5] == b"\0\0\0\0"
    assert answer[6 : 6 + answer[5]] == large
    assert await quic_gauge(pop, "dropped_unknown_version") == 1
    assert await quic_gauge(pop, "version_negotiations_sent") == 1


# --- picoquic: the same settings, applied to picoquic's own address validation -----------


async def send_all(port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for i, data in enumerate(datagrams):
            try:
                sock.sendto(data, ("127.0.0.1", port))
            except BlockingIOError:
                pass
            if i % 50 == 49:
                await asyncio.sleep(0.005)


async def quic_gauge(pop: PopNode, name: str, *, at_least: float = 0.0) -> float:
    """The ``clutchcall_pop_quic_<name>`` gauge once it reaches ``at_least`` (10 s deadline):
    picoquic's network thread takes the flood's datagrams in its own time."""
    deadline = time.monotonic() + 10
    while True:
        value = pop.metrics.registry.get_sample_value(f"clutchcall_pop_quic_{name}")
        assert value is not None
        if value >= at_least or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@pytest.mark.latency
@pytest.mark.timeout(60)
async def test_picoquic_handshake_flood_creates_bounded_state(
    make_pop: MakePop, tokens: Tokens
) -> None:
    # Real Initials (a ClientHello each, random connection ids): picoquic must decrypt
    # them and would keep a connection for each; past retry_threshold it sends Retry.
    pop = await make_pop(quic_stack="picoquic", retry_threshold=THRESHOLD)
    port = pop.quic_address[1]
    assert await quic_gauge(pop, "retry_threshold") == THRESHOLD
    flooding = asyncio.create_task(send_all(port, handshake_initials(FLOOD // 3, port)))
    try:
        await quic_gauge(pop, "connections", at_least=THRESHOLD)  # well into the flood
        started = time.monotonic()
        options = SessionOptions(auth_token=tokens.mint().encode())
        async with connect(f"moqt://127.0.0.1:{port}", verify=False, options=options) as conn:
            assert conn.session.setup_complete
            waited = time.monotonic() - started
        await flooding
    finally:
        flooding.cancel()
    assert waited < 1.0, f"the honest client waited {waited:.2f} s"
    held = await quic_gauge(pop, "connections")
    assert held <= THRESHOLD + 5, f"{held} connections for {FLOOD // 3} spoofed Initials"
    assert await quic_gauge(pop, "unestablished") >= THRESHOLD - 1


@pytest.mark.timeout(60)
async def test_picoquic_retry_modes(make_pop: MakePop, tokens: Tokens) -> None:
    always = await make_pop(quic_stack="picoquic", quic_retry="always")
    assert await quic_gauge(always, "retry_always") == 1
    options = SessionOptions(auth_token=tokens.mint().encode())
    url = f"moqt://127.0.0.1:{always.quic_address[1]}"
    async with connect(url, verify=False, options=options) as conn:
        assert conn.session.setup_complete
    never = await make_pop(quic_stack="picoquic", quic_retry="never", retry_threshold=5)
    port = never.quic_address[1]
    await send_all(port, handshake_initials(40, port))
    # Without address validation every Initial is a connection.
    assert await quic_gauge(never, "connections", at_least=40) >= 40


@pytest.mark.timeout(60)
async def test_the_pops_bbr_is_given_its_send_quantum(
    make_pop: MakePop, tokens: Tokens
) -> None:
    """``quic_send_quantum`` reaches picoquic's BBR on the POP's listener (a large event's
    POP sets it: bench/RESULTS.md, issue 15); unset, picoquic keeps its own."""
    fanout = await make_pop(quic_stack="picoquic", quic_send_quantum=0.02)
    assert fanout._server is not None
    assert fanout._server.congestion_options == "Q0.02"  # type: ignore[attr-defined]
    options = SessionOptions(auth_token=tokens.mint().encode())
    url = f"moqt://127.0.0.1:{fanout.quic_address[1]}"
    async with connect(url, verify=False, options=options) as conn:
        assert conn.session.setup_complete
    default = await make_pop(quic_stack="picoquic")
    assert default._server.congestion_options == ""  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
async def test_a_busy_pop_says_so_and_gives_new_connections_its_quantum(
    make_pop: MakePop, tokens: Tokens
) -> None:
    """``quic_busy_connections`` / ``quic_busy_send_quantum`` reach the POP's listener:
    from that many connections on the ones after get the busy quantum, and
    ``clutchcall_pop_quic_busy`` says so (moqt/aio/_picoquic_server.py)."""
    pop = await make_pop(
        quic_stack="picoquic", quic_busy_connections=2, quic_busy_send_quantum=0.02
    )
    assert pop._server is not None
    options = SessionOptions(auth_token=tokens.mint().encode())
    url = f"moqt://127.0.0.1:{pop.quic_address[1]}"
    async with connect(url, verify=False, options=options):
        assert await quic_gauge(pop, "busy") == 0
        async with connect(url, verify=False, options=options):
            assert await quic_gauge(pop, "busy", at_least=1) == 1
            assert pop._server.congestion_options == "Q0.02"  # type: ignore[attr-defined]
