"""A flood of spoofed QUIC Initials: address validation (Retry) keeps the POP's state bounded.

Each Initial for an unknown connection id used to create a connection on the POP
(TLS state, timers, retransmissions to a forged address). With ``quic_retry`` "auto"
the POP answers Initials without a token with a stateless Retry once more than
``retry_threshold`` handshakes are half-open, so the flood costs one HMAC each, and
an honest client (which answers the Retry) still connects at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from moqt.aio import SessionOptions, connect
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


@pytest.mark.timeout(60)
async def test_spoofed_initials_create_bounded_state(make_pop: MakePop, tokens: Tokens) -> None:
    pop = await make_pop(retry_threshold=THRESHOLD)
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
    registry = pop.metrics.registry
    retries = registry.get_sample_value("clutchcall_pop_quic_retries_sent")
    assert retries is not None and retries >= FLOOD - THRESHOLD - 5


async def test_retry_always_still_admits_clients(make_pop: MakePop, tokens: Tokens) -> None:
    pop = await make_pop(quic_retry="always")
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with connect(
        f"moqt://127.0.0.1:{pop.quic_address[1]}", verify=False, options=options
    ) as conn:
        assert conn.session.setup_complete
    assert pop.metrics.registry.get_sample_value("clutchcall_pop_quic_retries_sent") == 1
