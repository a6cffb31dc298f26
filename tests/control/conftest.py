"""Fixtures for the control plane: a database of each engine, fresh per test."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from control.app import create_app
from control.service import ControlService
from control.settings import ControlSettings
from mesh.bus import Bus, connect_bus

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A private schema in the ``test`` database, dropped afterwards."""
    schema = f"cc_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'control.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@dataclass
class Api:
    """An app on a real database and bus, an HTTP client for it, and one org's key."""

    app: FastAPI
    service: ControlService
    bus: Bus
    client: httpx.AsyncClient
    org_id: str
    api_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.api_key}"}

    async def new_org(self, name: str = "other") -> tuple[str, str]:
        org, _key, secret = await self.service.create_org(name)
        return org.id, secret


@contextlib.asynccontextmanager
async def open_api(db_url: str, bus: Bus, **settings: Any) -> AsyncIterator[Api]:
    app = create_app(
        ControlSettings(db=db_url, relay_url="https://relay.test:4443", **settings),
        bus=bus,
        background=False,
    )
    service: ControlService = app.state.service
    org, _key, secret = await service.create_org("acme")
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://control.test") as client:
        try:
            yield Api(app, service, bus, client, org.id, secret)
        finally:
            service.repo.close()


@pytest.fixture
async def redis_bus(redis_url: str) -> AsyncIterator[Bus]:
    bus = connect_bus(redis_url)
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def api(db_url: str, redis_bus: Bus) -> AsyncIterator[Api]:
    async with open_api(db_url, redis_bus) as a:
        yield a


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
