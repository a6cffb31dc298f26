"""picoquic listens on the address it is given, on a socket we bind (``_picoquic_socket.py``).

picoquic's own loop binds the wildcard address of the port; the server now hands
it a socket bound to ``host`` (with SO_REUSEPORT when asked), so another address of
the host is not answered and may be used by someone else.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from bench.quic_flood import handshake_initials
from moqt.aio import MoqtConnection, SessionOptions, connect, serve_picoquic

pytestmark = pytest.mark.timeout(60)


def answer(host: str, port: int, within: float) -> int | None:
    """Size of the first datagram the server sends back to a real Initial, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(within)
        sock.sendto(handshake_initials(1, port)[0], (host, port))
        try:
            return len(sock.recvfrom(4096)[0])
        except TimeoutError:
            return None


async def test_serves_only_the_address_given(certs: tuple[Path, Path]) -> None:
    sessions: list[MoqtConnection] = []
    kwargs = {"certificate": certs[0], "private_key": certs[1], "on_session": sessions.append}
    server = await serve_picoquic("127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
    port = server.address[1]
    try:
        run = asyncio.get_running_loop().run_in_executor
        assert await run(None, answer, "127.0.0.1", port, 10.0) is not None
        # Another address of the host: nothing listens there (picoquic used to answer).
        assert await run(None, answer, "127.0.0.2", port, 0.5) is None
        with pytest.raises(OSError):
            await serve_picoquic("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]
        other = await serve_picoquic("127.0.0.2", port, **kwargs)  # type: ignore[arg-type]
        other.close()
        for stack in ("aioquic", "picoquic"):
            async with connect(
                f"moqt://127.0.0.1:{port}", verify=False, options=SessionOptions(), stack=stack
            ) as conn:
                assert conn.session.setup_complete
    finally:
        server.close()


async def test_reuse_port_spreads_clients_over_servers(certs: tuple[Path, Path]) -> None:
    got: dict[str, list[MoqtConnection]] = {"a": [], "b": []}
    a = await serve_picoquic(
        "127.0.0.1", 0, certificate=certs[0], private_key=certs[1],
        on_session=got["a"].append, reuse_port=True,
    )  # fmt: skip
    b = await serve_picoquic(
        "127.0.0.1", a.address[1], certificate=certs[0], private_key=certs[1],
        on_session=got["b"].append, reuse_port=True,
    )  # fmt: skip
    try:
        for _ in range(12):
            async with connect(f"moqt://127.0.0.1:{a.address[1]}", verify=False) as conn:
                assert conn.session.setup_complete
        assert len(got["a"]) + len(got["b"]) == 12
        assert got["a"] and got["b"], {k: len(v) for k, v in got.items()}
    finally:
        a.close()
        b.close()
