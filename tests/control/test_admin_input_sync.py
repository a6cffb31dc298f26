"""A live input made with ``clutchcall admin`` against a running stack's database works at once.

The admin command writes the database (and the bus record only when given
``--redis``); the running control plane notices the new input within a second
and writes its stream-key record, instead of at its next full resync (60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from mesh.bus import Bus
from origin.admission import BusStreamKeyAuthorizer
from tests.control.server import clutchcall

from .conftest import Api

pytestmark = pytest.mark.e2e


async def test_admin_created_input_is_admitted_within_seconds(
    api: Api, redis_bus: Bus, db_url: str
) -> None:
    syncing = asyncio.create_task(api.service.run_resync())
    try:
        out = await asyncio.to_thread(
            clutchcall, "admin", "create-live-input", api.org_id, "cam", "--json", "--db", db_url
        )
        created = json.loads(out.stdout)
        authorizer = BusStreamKeyAuthorizer(redis_bus, cache_ttl=0.0)
        admission = None
        for _ in range(100):  # 5 s, while the full resync is 60 s away
            admission = await authorizer.authorize(
                created["external_input_id"], created["stream_key"]
            )
            if admission.ok:
                break
            await asyncio.sleep(0.05)
        assert admission is not None and admission.ok, admission
    finally:
        syncing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await syncing
