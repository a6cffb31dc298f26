"""A real control plane process for the SDK tests, and orgs in it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from control.service import ControlService
from control.settings import ControlSettings
from control.store import open_repository
from mesh.bus import MemoryBus
from tests.control.server import ControlServer

OrgMaker = Callable[[str], tuple[str, str]]


@pytest.fixture(scope="module")
def control_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sdk') / 'control.db'}"


@pytest.fixture(scope="module")
def control_server(control_db: str) -> Iterator[ControlServer]:
    server = ControlServer(
        control_db, "--relay-url", "https://relay.test:4443", "--auth-failure-limit", "1000"
    )
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def make_org(control_db: str, control_server: ControlServer) -> OrgMaker:
    """Create an org straight in the server's database; returns (org_id, api_key)."""

    def make(name: str = "acme") -> tuple[str, str]:
        async def go() -> tuple[str, str]:
            repo = open_repository(control_db)
            try:
                svc = ControlService(repo, MemoryBus(), ControlSettings(db=control_db))
                org, _key, secret = await svc.create_org(name)
                return org.id, secret
            finally:
                repo.close()

        return asyncio.run(go())

    return make
