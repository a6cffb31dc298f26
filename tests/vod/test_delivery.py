"""``/vod/<pb_id>/…`` over HTTP: tokens, revocation, Range, ETag/304, caching, CORS, HLS via HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm

from control.problems import install_problem_handlers
from media.catalog import Catalog
from media.ladder import AudioSpec, LadderSpec
from mesh.bus import MemoryBus
from mesh.revocation import Revocation, RevocationSet, publish_revocation
from tests.conftest import free_port
from vod.delivery import AssetLocation, control_plane_verifier, delivery_router
from vod.packaging import PackagingJob, package_asset

from ._clips import decode_playlist, make_clip

ORG = "org_test"
PUBLIC = "pb_public1"
SIGNED = "pb_signed1"
OTHER = "pb_other1"
AUD = "clutchcall-playback"


class Keys:
    def __init__(self) -> None:
        self.kid = "k1"
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.document = {"keys": [{**public, "kid": self.kid, "alg": "ES256", "use": "sig"}]}
        self.reads = 0

    async def jwks(self) -> dict[str, Any]:
        self.reads += 1
        return self.document

    def mint(self, sub: str, *, org: str = ORG, ttl: float = 600, key: Any = None,
             iat: float | None = None) -> tuple[str, str]:  # fmt: skip
        now = time.time() if iat is None else iat
        jti = "jt_" + secrets.token_hex(8)
        claims = {"sub": sub, "org": org, "aud": AUD, "iat": now, "exp": int(now + ttl), "jti": jti}
        token = jwt.encode(claims, key or self._key, algorithm="ES256", headers={"kid": self.kid})
        return token, jti


@dataclass
class Env:
    client: httpx.AsyncClient
    keys: Keys
    bus: MemoryBus
    revocations: RevocationSet
    asset: Path


@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("delivery")
    clip = make_clip(root / "c.mp4", seconds=4)
    out = root / "assets" / "as_1"
    job = PackagingJob("as_1", PUBLIC, f"stream/{ORG}/{PUBLIC}", clip, out, None)
    asyncio.run(package_asset(job, ladder=LadderSpec.single(360, 400_000, audio=AudioSpec())))
    return out


def build_app(asset: Path, keys: Keys, bus: MemoryBus, revocations: RevocationSet) -> FastAPI:
    locations = {
        PUBLIC: AssetLocation(asset, ORG, PUBLIC, False),
        SIGNED: AssetLocation(asset, ORG, SIGNED, True),
        OTHER: AssetLocation(asset, ORG, OTHER, True),
    }

    async def resolve(pb_id: str) -> AssetLocation | None:
        return locations.get(pb_id)

    app = FastAPI()
    install_problem_handlers(app)
    verifier = control_plane_verifier(keys.jwks, revocations)
    app.include_router(delivery_router(resolve, verifier, revocations=revocations, bus=bus))
    return app


@pytest.fixture
async def env(asset: Path) -> AsyncIterator[Env]:
    keys, bus, revocations = Keys(), MemoryBus(), RevocationSet(settle=0.0)
    app = build_app(asset, keys, bus, revocations)
    async with app.router.lifespan_context(app):
        await revocations.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vod.test") as client:
            yield Env(client, keys, bus, revocations, asset)


def assert_auth_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("auth_failed") and body["status"] == status
    assert response.headers["access-control-allow-origin"] == "*"


async def test_public_asset_files(env: Env):
    c = env.client
    catalog = await c.get(f"/vod/{PUBLIC}/catalog.json")
    assert catalog.status_code == 200
    assert catalog.headers["content-type"] == "application/json"
    assert catalog.headers["cache-control"] == "public, max-age=10"
    assert catalog.headers["access-control-allow-origin"] == "*"
    parsed = Catalog.parse(catalog.content)
    assert {t.name for t in parsed.tracks} == {"360p", "audio"}
    master = await c.get(f"/vod/{PUBLIC}/master.m3u8")
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert "360p/index.m3u8" in master.text and "token=" not in master.text
    init = await c.get(f"/vod/{PUBLIC}/360p/init.mp4")
    assert init.content == (env.asset / "360p" / "init.mp4").read_bytes()
    assert init.headers["content-type"] == "video/mp4"
    seg = await c.get(f"/vod/{PUBLIC}/360p/1.m4s")
    assert seg.status_code == 200
    assert seg.content == (env.asset / "360p" / "1.m4s").read_bytes()
    assert seg.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert seg.headers["content-type"] == "video/iso.segment"
    assert seg.headers["accept-ranges"] == "bytes"
    assert re.fullmatch(r'"[0-9a-f-]+"', seg.headers["etag"])  # strong
    head = await c.head(f"/vod/{PUBLIC}/360p/1.m4s")
    assert head.status_code == 200 and head.headers["etag"] == seg.headers["etag"]
    assert int(head.headers["content-length"]) == len(seg.content)


@pytest.mark.parametrize(
    "path",
    ["360p/9.m4s", "../as_1/catalog.json", "..%2F..%2Fc.mp4", ".hidden/init.mp4",
     "360p/01.m4s", "360p/init.mp4.bak", "uploads.bin", "360p/index.m3u8/x"],
)  # fmt: skip
async def test_unknown_files_are_404(env: Env, path: str):
    response = await env.client.get(f"/vod/{PUBLIC}/{path}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("pb_id", ["pb_nothere", "as_1", "pb_../x"])
async def test_unknown_playback_ids_are_404(env: Env, pb_id: str):
    response = await env.client.get(f"/vod/{pb_id}/catalog.json")
    assert response.status_code == 404
    assert response.json()["status"] == 404


async def test_range_requests(env: Env):
    c = env.client
    whole = (env.asset / "360p" / "0.m4s").read_bytes()
    part = await c.get(f"/vod/{PUBLIC}/360p/0.m4s", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206
    assert part.content == whole[10:100]
    assert part.headers["content-range"] == f"bytes 10-99/{len(whole)}"
    tail = await c.get(f"/vod/{PUBLIC}/360p/0.m4s", headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == whole[-16:]
    past = await c.get(f"/vod/{PUBLIC}/360p/0.m4s", headers={"Range": f"bytes={len(whole)}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(whole)}"
    etag = part.headers["etag"]
    same = await c.get(f"/vod/{PUBLIC}/360p/0.m4s",
                       headers={"Range": "bytes=0-3", "If-Range": etag})  # fmt: skip
    assert same.status_code == 206 and same.content == whole[:4]
    changed = await c.get(f"/vod/{PUBLIC}/360p/0.m4s",
                          headers={"Range": "bytes=0-3", "If-Range": '"other"'})  # fmt: skip
    assert changed.status_code == 200 and changed.content == whole


async def test_etag_and_304(env: Env):
    c = env.client
    for path in ("360p/0.m4s", "360p/init.mp4", "catalog.json", "master.m3u8"):
        first = await c.get(f"/vod/{PUBLIC}/{path}")
        etag = first.headers["etag"]
        again = await c.get(f"/vod/{PUBLIC}/{path}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == first.headers["cache-control"]
        listed = await c.get(f"/vod/{PUBLIC}/{path}",
                             headers={"If-None-Match": f'"nope", W/{etag}'})  # fmt: skip
        assert listed.status_code == 304
        other = await c.get(f"/vod/{PUBLIC}/{path}", headers={"If-None-Match": '"nope"'})
        assert other.status_code == 200 and other.content == first.content


async def test_cors_preflight(env: Env):
    response = await env.client.options(
        f"/vod/{SIGNED}/360p/0.m4s",
        headers={"Origin": "https://player.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization, range"},
    )  # fmt: skip
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "range" in allowed
    assert "access-control-allow-credentials" not in response.headers


async def test_signed_asset_needs_a_token_on_every_request(env: Env):
    c = env.client
    for path in ("catalog.json", "master.m3u8", "360p/index.m3u8", "360p/init.mp4", "360p/0.m4s"):
        missing = await c.get(f"/vod/{SIGNED}/{path}")
        assert_auth_problem(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
    token, _ = env.keys.mint(SIGNED)
    by_query = await c.get(f"/vod/{SIGNED}/360p/0.m4s", params={"token": token})
    assert by_query.status_code == 200
    assert by_query.headers["cache-control"] == "private, max-age=31536000, immutable"
    by_header = await c.get(
        f"/vod/{SIGNED}/catalog.json", headers={"Authorization": f"Bearer {token}"}
    )
    assert by_header.status_code == 200
    assert by_header.headers["cache-control"] == "private, max-age=10"


async def test_wrong_tokens_are_refused(env: Env):
    c = env.client
    other_key = ec.generate_private_key(ec.SECP256R1())
    for token in (
        env.keys.mint(OTHER)[0],  # another pb id's token
        env.keys.mint(SIGNED, org="org_else")[0],  # the right id, another org
        env.keys.mint(SIGNED, key=other_key)[0],  # not signed by our key
        env.keys.mint(SIGNED, iat=time.time() - 1000, ttl=100)[0],  # expired
        "not.a.jwt",
    ):
        refused = await c.get(f"/vod/{SIGNED}/360p/0.m4s", params={"token": token})
        assert_auth_problem(refused, 403)
    unsigned = jwt.encode({"sub": SIGNED, "org": ORG, "aud": AUD}, "s" * 32, algorithm="HS256")
    assert_auth_problem(await c.get(f"/vod/{SIGNED}/catalog.json", params={"token": unsigned}), 403)
    basic = await c.get(f"/vod/{SIGNED}/catalog.json", headers={"Authorization": "Basic eDp5"})
    assert_auth_problem(basic, 401)
    good, _ = env.keys.mint(SIGNED)
    both = await c.get(f"/vod/{SIGNED}/catalog.json", params={"token": good},
                       headers={"Authorization": f"Bearer {env.keys.mint(SIGNED)[0]}"})  # fmt: skip
    assert_auth_problem(both, 403)


async def test_a_public_asset_ignores_tokens(env: Env):
    response = await env.client.get(f"/vod/{PUBLIC}/catalog.json", params={"token": "garbage"})
    assert response.status_code == 200


async def test_revoked_tokens_are_refused(env: Env):
    c = env.client
    token, jti = env.keys.mint(SIGNED)
    later, _ = env.keys.mint(SIGNED)
    assert (await c.get(f"/vod/{SIGNED}/360p/0.m4s", params={"token": token})).status_code == 200
    applied = asyncio.Event()
    env.revocations.add_listener(lambda _rev: applied.set())
    await publish_revocation(env.bus, Revocation("jti", jti, time.time() + 600))
    async with asyncio.timeout(5):
        await applied.wait()
    assert_auth_problem(await c.get(f"/vod/{SIGNED}/360p/0.m4s", params={"token": token}), 403)
    assert (await c.get(f"/vod/{SIGNED}/360p/0.m4s", params={"token": later})).status_code == 200
    # "revoke every token of the asset": by sub, for tokens minted until now
    applied.clear()
    await publish_revocation(env.bus, Revocation("sub", SIGNED, time.time() + 600, time.time()))
    async with asyncio.timeout(5):
        await applied.wait()
    assert_auth_problem(await c.get(f"/vod/{SIGNED}/catalog.json", params={"token": later}), 403)
    fresh, _ = env.keys.mint(SIGNED, iat=time.time() + 0.01)
    assert (await c.get(f"/vod/{SIGNED}/catalog.json", params={"token": fresh})).status_code == 200


async def test_signed_playlists_carry_the_token(env: Env):
    c = env.client
    token, _ = env.keys.mint(SIGNED)
    master = await c.get(f"/vod/{SIGNED}/master.m3u8", params={"token": token})
    assert master.status_code == 200
    uris = [ln for ln in master.text.splitlines() if ln and not ln.startswith("#")]
    uris += re.findall(r'URI="([^"]+)"', master.text)
    assert uris and all(u.endswith(f"?token={token}") for u in uris)
    media = await c.get(f"/vod/{SIGNED}/360p/index.m3u8", params={"token": token})
    assert f'#EXT-X-MAP:URI="init.mp4?token={token}"' in media.text
    assert f"0.m4s?token={token}" in media.text
    # the same playlist fetched with a header gets no token rewritten into it
    plain = await c.get(f"/vod/{SIGNED}/master.m3u8", headers={"Authorization": f"Bearer {token}"})
    assert "token=" not in plain.text
    assert plain.headers["etag"] != master.headers["etag"]


@pytest.fixture
async def server(asset: Path) -> AsyncIterator[tuple[str, Keys]]:
    keys, bus, revocations = Keys(), MemoryBus(), RevocationSet(settle=0.0)
    app = build_app(asset, keys, bus, revocations)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    async with asyncio.timeout(10):
        while not srv.started:  # noqa: ASYNC110 - uvicorn exposes no event
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", keys
    finally:
        srv.should_exit = True
        await task


async def test_ffmpeg_plays_a_signed_asset_over_http(server: tuple[str, Keys]):
    base, keys = server
    token, _ = keys.mint(SIGNED)
    url = f"{base}/vod/{SIGNED}/master.m3u8?token={token}"
    played = await asyncio.to_thread(decode_playlist, url)
    assert played.returncode == 0, played.stderr[-2000:]
    assert "Video: h264" in played.stderr and "Audio: aac" in played.stderr
    assert re.findall(r"frame=\s*(\d+)", played.stderr)[-1] == "120"  # 4 s at 30 fps
    refused = await asyncio.to_thread(decode_playlist, f"{base}/vod/{SIGNED}/master.m3u8")
    assert refused.returncode != 0 and "401" in refused.stderr


def test_catalog_json_from_disk_is_what_is_served(asset: Path):
    raw = json.loads((asset / "catalog.json").read_bytes())
    assert all(t["isLive"] is False for t in raw["tracks"])


async def test_locations_are_resolved_once_per_ttl(asset: Path):
    calls: list[str] = []

    async def resolve(pb_id: str) -> AssetLocation | None:
        calls.append(pb_id)
        return AssetLocation(asset, ORG, PUBLIC, False) if pb_id == PUBLIC else None

    keys = Keys()
    app = FastAPI()
    install_problem_handlers(app)
    verifier = control_plane_verifier(keys.jwks, None)
    app.include_router(delivery_router(resolve, verifier, location_ttl=60))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vod.test") as client:
        for path in ("catalog.json", "360p/0.m4s", "360p/1.m4s"):
            assert (await client.get(f"/vod/{PUBLIC}/{path}")).status_code == 200
        for _ in range(2):
            assert (await client.get("/vod/pb_missing/catalog.json")).status_code == 404
    assert calls == [PUBLIC, "pb_missing", "pb_missing"]  # not-found is never cached
