"""Relay links authenticate as nodes: ``?hops=`` alone makes nobody a relay link.

A relay link is multiplexed, so its session is not closed when a viewer's token
is revoked or expires. A viewer that names another POP in ``?hops=`` must not
get that treatment: only a session whose CLIENT_SETUP carries a node credential
signed with the cluster key (``mesh.node_credential``) is a relay link.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mesh.bus import MemoryBus
from mesh.node_credential import (
    AUDIENCE,
    CREDENTIAL_TYPE,
    NodeCredentialError,
    credential_node,
    mint_node_credential,
    verify_node_credential,
)
from mesh.revocation import Revocation, publish_revocation
from moqt.types import AuthToken
from pop import PopNode
from tests.pop.conftest import CLUSTER_KEY, MakePop
from tests.pop.lab import Origin, Tokens, Viewer, namespace_name, namespace_of
from tests.pop.test_admission import assert_auth_failed, url

NS = namespace_of("lv_a")


@pytest.fixture
async def two_pops(
    make_pop: MakePop, bus: MemoryBus, certs: tuple[Path, Path]
) -> tuple[PopNode, PopNode]:
    origin = Origin(bus, "origin1", "eu", certs[0], certs[1], (NS,), group_ms=200)
    async with origin.running():
        pop = await make_pop(node_id="pop-a")
        other = await make_pop(node_id="pop-b")
        assert pop.topology is not None
        topology = pop.topology
        for _ in range(200):
            if "pop-b" in topology.nodes() and topology.route(namespace_name("lv_a")):
                break
            await asyncio.sleep(0.05)
        yield pop, other


async def _watch_until_closed(viewer: Viewer, token: str, within: float) -> None:
    task = asyncio.create_task(viewer.watch(subscribe_token=token))
    try:
        await asyncio.wait_for(viewer.got_object.wait(), 10)
        await asyncio.wait_for(asyncio.shield(task), within)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_hops_without_credential_is_a_viewer_revocation_closes_it(
    two_pops: tuple[PopNode, PopNode], bus: MemoryBus, tokens: Tokens
) -> None:
    pop, _ = two_pops
    claims = tokens.claims()
    viewer = Viewer(url(pop, "/relay?hops=pop-b"), NS)
    task = asyncio.create_task(viewer.watch(subscribe_token=tokens.key.sign(claims)))
    try:
        await asyncio.wait_for(viewer.got_object.wait(), 10)
        assert pop.statistics().relay_links == 0
        await publish_revocation(bus, Revocation("jti", claims["jti"], claims["exp"]))
        await asyncio.wait_for(asyncio.shield(task), 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert_auth_failed(viewer.closed)


async def test_hops_without_credential_is_a_viewer_expiry_closes_it(
    two_pops: tuple[PopNode, PopNode], tokens: Tokens
) -> None:
    pop, _ = two_pops
    exp = int(time.time()) + 2
    viewer = Viewer(url(pop, "/relay?hops=pop-b"), NS)
    await _watch_until_closed(viewer, tokens.mint(exp=exp), 6)
    assert_auth_failed(viewer.closed)
    assert time.time() >= exp - 0.05


async def test_forged_credential_is_a_viewer(
    two_pops: tuple[PopNode, PopNode], tokens: Tokens
) -> None:
    pop, _ = two_pops
    forged = mint_node_credential("another-cluster-key-0123456789abcdef", "pop-b")
    viewer = Viewer(url(pop, "/relay?hops=pop-b"), NS)
    await asyncio.wait_for(viewer.watch(setup_token=forged), 5)
    # Not a node: its setup token is taken as a playback token, which it is not.
    assert_auth_failed(viewer.closed)


async def test_credential_of_another_node_than_the_last_hop_is_refused(
    two_pops: tuple[PopNode, PopNode],
) -> None:
    pop, _ = two_pops
    credential = mint_node_credential(CLUSTER_KEY, "pop-c")
    viewer = Viewer(url(pop, "/relay?hops=pop-b"), NS)
    await asyncio.wait_for(viewer.watch(setup_token=credential), 5)
    assert_auth_failed(viewer.closed)


async def test_a_pop_with_the_cluster_key_is_a_relay_link(
    two_pops: tuple[PopNode, PopNode], tokens: Tokens
) -> None:
    pop, _ = two_pops
    credential = mint_node_credential(CLUSTER_KEY, "pop-b")
    claims = tokens.claims()
    link = Viewer(url(pop, "/relay?hops=pop-b"), NS)
    task = asyncio.create_task(
        link.watch(setup_token=credential, subscribe_token=tokens.key.sign(claims))
    )
    try:
        await asyncio.wait_for(link.got_object.wait(), 10)
        assert pop.statistics().relay_links == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_credential_round_trip_and_refusals() -> None:
    now = time.time()
    token = mint_node_credential(CLUSTER_KEY, "pop-b", now=now)
    assert verify_node_credential(CLUSTER_KEY, token, now=now) == "pop-b"
    with pytest.raises(NodeCredentialError, match="expired"):
        verify_node_credential(CLUSTER_KEY, token, now=now + 3600)
    with pytest.raises(NodeCredentialError):
        verify_node_credential(CLUSTER_KEY + "x", token, now=now)
    with pytest.raises(NodeCredentialError):
        verify_node_credential(CLUSTER_KEY, "a.b.c", now=now)
    with pytest.raises(ValueError, match="32"):
        mint_node_credential("short", "pop-b")
    tokens = (AuthToken(0, token.encode()),)
    assert credential_node(CLUSTER_KEY, tokens, now=now) == "pop-b"
    assert credential_node("", tokens, now=now) is None
    assert credential_node(CLUSTER_KEY, (), now=now) is None


@pytest.mark.parametrize("exp", [float("nan"), float("inf"), 1e18])
def test_a_credential_that_never_expires_is_refused(exp: float) -> None:
    """A node credential is short-lived: a non-finite exp, or one far past LIFETIME, would
    make a leaked credential a relay link forever (found by the mesh_jwt fuzz target)."""
    import jwt

    now = time.time()
    claims = {"sub": "pop-b", "iat": now, "exp": exp, "aud": AUDIENCE, "iss": AUDIENCE}
    forged = jwt.encode(claims, CLUSTER_KEY, algorithm="HS256", headers={"typ": CREDENTIAL_TYPE})
    with pytest.raises(NodeCredentialError, match="exp"):
        verify_node_credential(CLUSTER_KEY, forged, now=now)
