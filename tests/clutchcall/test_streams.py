"""The Python SDK against a real control plane process (uvicorn on a free port)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

import clutchcall.streams as sdk
from clutchcall.streams import (
    AsyncStreams,
    ConfigurationError,
    ConnectionFailed,
    LiveInput,
    NotFound,
    PlaybackTicket,
    RateLimited,
    Streams,
    Unauthorized,
    ValidationError,
)
from control.service import ControlService
from control.settings import ControlSettings
from control.store import open_repository
from mesh.bus import MemoryBus
from tests.clutchcall.conftest import OrgMaker
from tests.control.server import ControlServer, free_port


@pytest.fixture
def org(make_org: OrgMaker) -> tuple[str, str]:
    return make_org("acme")


@pytest.fixture
def streams(control_server: ControlServer, org: tuple[str, str]) -> Iterator[Streams]:
    org_id, key = org
    with Streams(base_url=control_server.base_url, api_key=key, org_id=org_id) as s:
        yield s


def _claims(base_url: str, ticket: PlaybackTicket) -> dict[str, object]:
    jwks = httpx.get(f"{base_url}/.well-known/jwks.json").json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(ticket.token)["kid"]]
    claims: dict[str, object] = jwt.decode(
        ticket.token, key.key, algorithms=["ES256"], audience="clutchcall-playback"
    )
    return claims


def test_seed_recipe_shape(control_server: ControlServer, streams: Streams) -> None:
    # Recipe 1 step 1: const { input, streamKey } = await streams.liveInputs.create(...)
    created = streams.live_inputs.create(name="Live Demo", ingest="fmp4")
    input, stream_key = created
    assert created.input is input and created.stream_key == stream_key
    assert stream_key.startswith("sk_") and "sk_" not in repr(created).replace("'sk_…'", "")
    assert isinstance(input, LiveInput) and input.id.startswith("li_")
    assert input.namespace == f"stream/{streams.org_id}/{input.external_input_id}"
    assert input.rtmp_url.endswith(f"/live/{input.external_input_id}")
    assert input.status == "idle" and input.created_at.tzinfo is not None

    # Recipe 4: inp = streams.live_inputs.get(id=...); ticket = inp.signed_playback_url(ttl_seconds=3600)
    inp = streams.live_inputs.get(id=input.id)
    assert inp == input
    ticket = inp.signed_playback_url(ttl_seconds=3600)
    parts = urlsplit(ticket.url)
    assert ticket.url.startswith(f"https://relay.test:4443/{input.namespace}?")
    assert parse_qs(parts.query)["token"] == [ticket.token]
    now = datetime.now(UTC)
    assert now + timedelta(seconds=3590) < ticket.expires_at <= now + timedelta(seconds=3601)
    claims = _claims(control_server.base_url, ticket)
    assert claims["sub"] == input.external_input_id == ticket.sub and claims["jti"] == ticket.jti

    # Recipe 2: const { streamKey } = await input.rotateStreamKey()
    rotated = inp.rotate_stream_key()
    assert rotated.stream_key != stream_key and rotated.input.id == input.id
    assert rotated.input.stream_key_rotated_at > input.stream_key_rotated_at


def test_list_update_delete(streams: Streams) -> None:
    made = [streams.live_inputs.create(name=f"cam {i}").input for i in range(5)]
    page = streams.live_inputs.list(limit=2)
    assert len(page) == 2 and page.next_cursor is not None
    assert [x.id for x in page] == [made[0].id, made[1].id]
    assert [x.id for x in streams.live_inputs.iter_all(page_size=2)] == [x.id for x in made]
    assert streams.live_inputs.list().data == made

    renamed = made[0].update(name="Keynote 2026", ingest="rtmp")
    assert (renamed.name, renamed.ingest) == ("Keynote 2026", "rtmp")
    assert renamed.refresh() == renamed
    made[1].delete()
    with pytest.raises(NotFound) as info:
        streams.live_inputs.get(id=made[1].id)
    err = info.value
    assert err.status == 404 and err.type.endswith("/not-found") and err.title and err.detail


def test_revocations(streams: Streams) -> None:
    inp = streams.live_inputs.create(name="x").input
    ticket = inp.signed_playback_url(ttl_seconds=600)
    one = streams.playback_tokens.revoke(jti=ticket.jti)
    assert (one.kind, one.jti, one.sub) == ("jti", ticket.jti, None)
    assert abs((one.expires_at - ticket.expires_at).total_seconds()) < 1
    every = inp.revoke_playback()
    assert (every.kind, every.sub) == ("sub", inp.external_input_id)
    assert every.before is not None and every.expires_at > every.before + timedelta(hours=23)
    with pytest.raises(NotFound):
        streams.playback_tokens.revoke(jti="jt_does_not_exist")


def test_typed_errors(control_server: ControlServer, streams: Streams, make_org: OrgMaker) -> None:
    inp = streams.live_inputs.create(name="x").input
    with pytest.raises(ValidationError) as info:
        inp.signed_playback_url(ttl_seconds=30)
    assert info.value.status == 422 and info.value.errors[0]["loc"][-1] == "ttl_seconds"
    with pytest.raises(ValidationError):
        inp.signed_playback_url(ttl_seconds=86401)
    with pytest.raises(ValidationError):
        streams.live_inputs.create(name="", ingest="fmp4")

    other_id, other_key = make_org("other")
    with Streams(base_url=control_server.base_url, api_key=other_key, org_id=other_id) as other:
        with pytest.raises(NotFound):
            other.live_inputs.get(id=inp.id)
        assert list(other.live_inputs.iter_all()) == []
    with Streams(base_url=control_server.base_url, api_key=other_key, org_id=streams.org_id) as s:
        with pytest.raises(NotFound):  # a key of another org than the one named
            s.live_inputs.list()
    with Streams(base_url=control_server.base_url, api_key="ck_wrong") as bad:
        with pytest.raises(Unauthorized) as unauth:
            bad.live_inputs.list()
        assert unauth.value.status == 401 and unauth.value.headers["www-authenticate"]
    with Streams(base_url=f"http://127.0.0.1:{free_port()}", api_key="ck_x") as gone:
        with pytest.raises(ConnectionFailed):
            gone.live_inputs.list()


def test_rate_limited_is_typed(tmp_path_factory: pytest.TempPathFactory) -> None:
    db = f"sqlite:///{tmp_path_factory.mktemp('rl') / 'c.db'}"
    server = ControlServer(db, "--auth-failure-limit", "2")
    try:
        with Streams(base_url=server.base_url, api_key="ck_wrong") as s:
            for _ in range(2):
                with pytest.raises(Unauthorized):
                    s.live_inputs.list()
            with pytest.raises(RateLimited) as info:
                s.live_inputs.list()
        assert info.value.status == 429 and info.value.retry_after is not None
        assert 0 < info.value.retry_after <= 60
    finally:
        server.close()


def test_data_plane_constructors() -> None:
    secretive = Streams(base_url="http://a", api_key="ck_secret", token="eyJsecret")
    assert "secret" not in repr(secretive) + repr(secretive.config)
    relay = Streams(relay_url="https://relay.clutchcall.dev")
    assert relay.relay_url == "https://relay.clutchcall.dev" and relay.base_url is None
    viewer = Streams(api_base="", token="eyJ...")
    assert viewer.token == "eyJ..." and viewer.base_url is None
    with pytest.raises(ConfigurationError):
        viewer.live_inputs.get(id="li_x")
    with pytest.raises(ConfigurationError):
        Streams(base_url="http://a", api_base="http://b")
    with pytest.raises(ConfigurationError):
        Streams(base_url="ftp://a")
    with pytest.raises(ConfigurationError):
        Streams(base_url="http://a").live_inputs.list()  # no api key


async def test_async_twin(control_server: ControlServer, org: tuple[str, str]) -> None:
    org_id, key = org
    async with AsyncStreams(base_url=control_server.base_url, api_key=key, org_id=org_id) as s:
        input, stream_key = await s.live_inputs.create(name="Live Demo", ingest="rtmp")
        assert stream_key.startswith("sk_") and input.ingest == "rtmp"
        inp = await s.live_inputs.get(id=input.id)
        ticket = await inp.signed_playback_url(ttl_seconds=900)
        assert _claims(control_server.base_url, ticket)["sub"] == input.external_input_id
        assert (await inp.rotate_stream_key()).stream_key != stream_key
        assert (await s.playback_tokens.revoke(jti=ticket.jti)).jti == ticket.jti
        assert (await inp.revoke_playback()).sub == input.external_input_id
        assert [x.id async for x in s.live_inputs.iter_all()] == [input.id]
        assert (await inp.update(name="y")).name == "y"
        await inp.delete()
        with pytest.raises(NotFound):
            await inp.refresh()
        with pytest.raises(ValidationError):
            await inp.signed_playback_url(ttl_seconds=59)


def test_exports_and_import_boundary() -> None:
    assert set(sdk.__all__) >= {
        "Streams",
        "AsyncStreams",
        "ApiError",
        "NotFound",
        "Unauthorized",
        "ValidationError",
        "RateLimited",
        "PlaybackTicket",
        "LiveInput",
    }
    # The SDK may import moqt and media only, never a server package.
    code = (
        "import sys, clutchcall.streams\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'control','mesh','origin','pop','cli','fastapi','psycopg'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# The control-plane half of the seed's Recipe 4, verbatim except base_url (the viewer
# half needs BroadcastViewer, which the data-plane SDK adds).
RECIPE_4 = """
import os, time
from clutchcall.streams import Streams

streams = Streams(
    base_url="https://app.clutchcall.dev",
    api_key=os.environ["CLUTCHCALL_CREDENTIALS"],
    org_id="org_abc",
)

inp    = streams.live_inputs.get(id="li_xyz")
ticket = inp.signed_playback_url(ttl_seconds=3600)
print(ticket.url, ticket.token, ticket.expires_at.isoformat())
"""


def test_seed_recipe_4_control_plane_half_runs_as_printed(
    control_server: ControlServer, control_db: str
) -> None:
    async def seed() -> str:
        repo = open_repository(control_db)
        try:
            svc = ControlService(repo, MemoryBus(), ControlSettings(db=control_db))
            org, _key, secret = await svc.create_org("Seed", org_id="org_abc")
            await svc.create_input(org.id, "Keynote", "rtmp", input_id="li_xyz")
            return secret
        finally:
            repo.close()

    secret = asyncio.run(seed())
    code = RECIPE_4.replace("https://app.clutchcall.dev", control_server.base_url)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CLUTCHCALL_CREDENTIALS": secret},
        check=True,
    )
    url, token, expires_at = out.stdout.split()
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    assert url == f"https://relay.test:4443/stream/org_abc/{sub}?token={token}"
    assert datetime.fromisoformat(expires_at) > datetime.now(UTC) + timedelta(minutes=59)
