"""The webhook SSRF guard (control.webhook_guard): private, loopback, link-local and
metadata targets are refused when the endpoint is created and again at delivery."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from control.webhook_guard import forbidden_reason
from mesh.bus import MemoryBus
from tests.control.conftest import Api, open_api
from tests.control.webhook_receiver import Receiver

from .test_api import assert_problem

pytestmark = pytest.mark.timeout(60)

REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://127.8.9.10/",
    "http://localhost:6379/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/admin",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0:8080/",
    "http://2130706433/",  # 127.0.0.1 in decimal
    "http://0x7f000001/",
    "https://224.0.0.1/",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_private_targets_are_refused_at_creation(sqlite_url: str, url: str) -> None:
    async with open_api(sqlite_url, MemoryBus()) as api:
        r = await api.client.post("/v1/webhooks", json={"url": url}, headers=api.auth())
        body = assert_problem(r, 422)
        assert body["type"].endswith("/webhook-target-forbidden"), body
        assert "webhook_allow_private" in body["detail"]
        listed = await api.client.get("/v1/webhooks", headers=api.auth())
        assert listed.json()["data"] == []


@pytest.mark.parametrize(
    "url", ["http://[::1]/", "http://[fd00:ec2::254]/", "http://[::ffff:a9fe:a9fe]/"]
)
async def test_ip_v6_literal_urls_are_refused(sqlite_url: str, url: str) -> None:
    # Not accepted as URLs at all (names only; an IPv6 target needs a name), so the
    # address check below never sees them; a name resolving to one is checked.
    async with open_api(sqlite_url, MemoryBus()) as api:
        r = await api.client.post("/v1/webhooks", json={"url": url}, headers=api.auth())
        assert_problem(r, 422)


@pytest.mark.parametrize("url", ["https://93.184.215.14/hook", "https://example.com/hook"])
async def test_public_targets_and_unresolved_names_are_accepted(sqlite_url: str, url: str) -> None:
    # A name that does not resolve (yet) is accepted: each delivery checks it again.
    async with open_api(sqlite_url, MemoryBus()) as api:
        r = await api.client.post("/v1/webhooks", json={"url": url}, headers=api.auth())
        assert r.status_code == 201, r.text


async def test_the_setting_allows_private_targets(sqlite_url: str) -> None:
    async with open_api(sqlite_url, MemoryBus(), webhook_allow_private=True) as api:
        r = await api.client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=api.auth()
        )
        assert r.status_code == 201, r.text


async def _attempted(api: Api, hook_id: str) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        r = await api.client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=api.auth())
        rows = r.json()["data"]
        if rows and rows[0]["attempts"] >= 1:
            row: dict[str, object] = rows[0]
            return row
        assert loop.time() < deadline, rows
        await asyncio.sleep(0.05)


async def test_a_target_that_resolves_to_a_private_address_at_delivery_is_not_contacted(
    sqlite_url: str,
) -> None:
    """DNS rebinding: the name passed (or was not yet resolvable) at creation and now
    resolves to loopback. The endpoint row is written directly, as such a name would
    have left it; the delivery resolves, checks and refuses without connecting."""
    receiver = Receiver()
    try:
        async with open_api(sqlite_url, MemoryBus(), webhook_max_attempts=1) as api:
            dispatcher = api.app.state.webhooks
            port = receiver.url.split(":")[2].split("/")[0]
            hook, _secret = await dispatcher.create_endpoint(
                api.org_id, f"http://localhost:{port}/hook", ["live.started"]
            )
            await dispatcher.enqueue(api.org_id, "live.started", {"id": "li_x"})
            await dispatcher.run_once()
            row = await _attempted(api, hook.id)
            assert row["status"] == "failed"
            assert "loopback" in str(row["last_error"]), row
            assert receiver.requests == []
    finally:
        receiver.close()


async def test_a_local_receiver_gets_deliveries_when_allowed(sqlite_url: str) -> None:
    receiver = Receiver()
    try:
        async with open_api(sqlite_url, MemoryBus(), webhook_allow_private=True) as api:
            dispatcher = api.app.state.webhooks
            hook, _secret = await dispatcher.create_endpoint(
                api.org_id, receiver.url, ["live.started"]
            )
            await dispatcher.enqueue(api.org_id, "live.started", {"id": "li_x"})
            await dispatcher.run_once()
            row = await _attempted(api, hook.id)
            assert row["status"] == "delivered", row
            assert len(receiver.requests) == 1
    finally:
        receiver.close()


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("10.255.255.255", True),
        ("172.15.255.255", False),
        ("172.32.0.1", False),
        ("100.63.255.255", False),
        ("100.127.255.255", True),
        ("169.254.0.1", True),
        ("0.0.0.0", True),
        ("::", True),
        ("fdff::1", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:8.8.8.8", False),
        ("::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("::ffff:169.254.169.254", True),
    ],
)
def test_forbidden_reason(address: str, refused: bool) -> None:
    assert (forbidden_reason(ipaddress.ip_address(address)) is not None) is refused
