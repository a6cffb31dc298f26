"""Cluster certificate pinning: each node publishes its self-signed certificate's hash on
the bus, the control plane answers it per relay, and a renewal is served and published
(the old hash listed until it expires) while established sessions keep going."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import pytest

from mesh.bus import MemoryBus
from mesh.certificates import NodeCertificate, stack_reloads
from mesh.settings import PopSettings
from moqt.aio import HandshakeError, certificate_sha256, connect, write_self_signed
from pop import PopNode
from tests.control.conftest import open_api
from tests.pop.conftest import CLUSTER_KEY
from tests.pop.lab import Tokens

DAY = 86400.0
Stack = Literal["aioquic", "picoquic"]


async def until(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _pop(
    node_id: str, tmp: Path, tokens: Tokens, bus: MemoryBus, quic_stack: Stack = "aioquic"
) -> PopNode:
    tmp.mkdir()
    cert, key = write_self_signed(tmp)
    settings = PopSettings(
        node_id=node_id, region="eu", quic="127.0.0.1:0", http="127.0.0.1:0",
        jwks=str(tokens.jwks_path), heartbeat_interval=0.5, node_ttl=1.5,
        drain_timeout=1.0, cluster_key=CLUSTER_KEY, quic_stack=quic_stack,
    )  # fmt: skip
    return PopNode(settings, certificate=cert, private_key=key, bus=bus)


def _hex(cert: Path) -> str:
    return certificate_sha256(cert.read_bytes()).hex()


@pytest.mark.parametrize("quic_stack", ["aioquic", "picoquic"])
async def test_control_plane_answers_each_pops_hash_and_follows_a_renewal(
    tmp_path: Path, tokens: Tokens, bus: MemoryBus, quic_stack: Stack
) -> None:
    if not stack_reloads(quic_stack):
        pytest.skip(f"{quic_stack} cannot reload a certificate on this platform")
    shift = 0.0

    def clock() -> float:
        return time.time() + shift

    p1 = _pop("pop1", tmp_path / "p1", tokens, bus, quic_stack)
    p2 = _pop("pop2", tmp_path / "p2", tokens, bus, quic_stack)
    assert p1.certificate is not None
    cert1, key1 = p1.certificate.certificate, p1.certificate.private_key
    p1.certificate = NodeCertificate(cert1, key1, clock=clock)
    first = _hex(cert1)
    await p1.start()
    await p2.start()
    try:
        url1 = f"https://127.0.0.1:{p1.quic_address[1]}"
        url2 = f"https://127.0.0.1:{p2.quic_address[1]}"
        async with open_api(f"sqlite:///{tmp_path / 'control.db'}", bus) as api:

            async def hashes(relay: str | None = None) -> list[str]:
                params = {"relay": relay} if relay else {}
                res = await api.client.get("/v1/relay/certificate", params=params)
                if res.status_code == 404:
                    return []
                assert res.status_code == 200, res.text
                assert res.headers["access-control-allow-origin"] == "*"
                return [h["value"] for h in res.json()["certificate_hashes"]]

            await until(lambda: _nonempty(hashes(url2)))
            assert await hashes(url1) == [first]
            assert await hashes(url2) == [_hex(p2.certificate.certificate)]  # type: ignore[union-attr]
            # relay_url (relay.test) is no node's address: every relay's hash, to pin any.
            assert sorted(await hashes()) == sorted([first, *await hashes(url2)])

            res = await api.client.get("/v1/relay/certificate", params={"relay": "https://nope:1"})
            assert res.status_code == 404 and res.json()["type"].endswith("unknown-relay")
            res = await api.client.get("/v1/relay/certificate", params={"relay": "not a url"})
            assert res.status_code == 404 and res.json()["type"].endswith("unknown-relay")

            cafile = str(cert1)
            old_copy = tmp_path / "old.pem"
            old_copy.write_bytes(cert1.read_bytes())
            async with connect(f"moqt://127.0.0.1:{p1.quic_address[1]}/", cafile=cafile) as before:
                # Nine days later (2/3 of 13 days passed): the node renews.
                shift = 9 * DAY
                p1.certificate.wake()
                await until(lambda: _true(p1.certificate.renewals > 0))  # type: ignore[union-attr]
                shift = 0.0
                second = _hex(cert1)
                assert second != first

                async def both_listed() -> bool:
                    listed = await hashes(url1)
                    return len(listed) >= 2 and listed[0] != first and first in listed

                await until(both_listed)  # new first, old still pinnable
                assert second in await hashes(url1)
                # A new connection gets the new certificate; one that trusts only the
                # old certificate is refused; the session opened before goes on.
                async with connect(
                    f"moqt://127.0.0.1:{p1.quic_address[1]}/", cafile=str(cert1)
                ) as after:
                    assert after.session.setup_complete
                with pytest.raises(HandshakeError):
                    async with connect(
                        f"moqt://127.0.0.1:{p1.quic_address[1]}/",
                        cafile=str(old_copy),
                        setup_timeout=5.0,
                    ):
                        pass
                assert not before.is_closed
    finally:
        await p1.stop()
        await p2.stop()


async def _nonempty(values: Awaitable[list[str]]) -> bool:
    return bool(await values)


async def _true(value: bool) -> bool:
    return value
