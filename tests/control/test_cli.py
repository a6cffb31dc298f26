"""The admin and control commands as real processes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jwt
import pytest

from tests.control.server import ControlServer, clutchcall, create_org

# Each `clutchcall` call is a fresh Python process (about a second of imports).
pytestmark = pytest.mark.e2e


def test_admin_bootstrap(tmp_path: Path, redis_url: str) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    org = create_org(db, "Acme")
    assert org["org_id"].startswith("org_") and org["api_key"].startswith("ck_")

    extra = json.loads(
        clutchcall("admin", "create-api-key", org["org_id"], "--json", "--db", db).stdout
    )
    assert extra["org_id"] == org["org_id"] and extra["api_key"] != org["api_key"]
    missing = clutchcall("admin", "create-api-key", "org_missing", "--db", db, check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr

    seeded = json.loads(
        clutchcall(
            "admin", "create-org", "Seed", "--org-id", "org_abc", "--json", "--db", db
        ).stdout
    )
    assert seeded["org_id"] == "org_abc"
    made = json.loads(
        clutchcall(
            "admin",
            "create-live-input",
            "org_abc",
            "Demo",
            "--id",
            "li_xyz",
            "--redis",
            redis_url,
            "--json",
            "--db",
            db,
        ).stdout
    )
    assert made["id"] == "li_xyz" and made["stream_key"].startswith("sk_")
    assert made["rtmp_url"] == f"rtmp://127.0.0.1/live/{made['external_input_id']}"
    revoked = clutchcall("admin", "revoke-api-key", extra["key_id"], "--db", db)
    assert revoked.returncode == 0
    again = clutchcall("admin", "revoke-api-key", extra["key_id"], "--db", db, check=False)
    assert again.returncode == 1 and "no active API key" in again.stderr


def test_control_server_follows_admin_changes(tmp_path: Path, redis_url: str) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    org = create_org(db, "Acme")
    seeded = create_org(db, "Seed")
    clutchcall("admin", "create-live-input", seeded["org_id"], "Demo", "--id", "li_xyz", "--db", db)
    server = ControlServer(db, "--public-host", "ingest.test:1935", redis_url=redis_url)
    try:
        h = {"Authorization": f"Bearer {org['api_key']}"}
        r = httpx.post(f"{server.base_url}/v1/live_inputs", json={"name": "cam"}, headers=h)
        assert r.status_code == 201
        assert r.json()["input"]["rtmp_url"].startswith("rtmp://ingest.test:1935/live/lv_")
        r = httpx.get(f"{server.base_url}/v1/live_inputs/li_xyz", headers=h)
        assert r.status_code == 404  # another org's input
        h2 = {"Authorization": f"Bearer {seeded['api_key']}", "X-ClutchCall-Org": seeded["org_id"]}
        r = httpx.post(
            f"{server.base_url}/v1/live_inputs/li_xyz/playback_urls",
            json={"ttl_seconds": 120},
            headers=h2,
        )
        assert r.status_code == 201
        old_kid = r.json()["kid"]

        rotated = json.loads(
            clutchcall(
                "admin", "rotate-signing-key", "--db", db, "--redis", redis_url, "--json"
            ).stdout
        )
        assert rotated["kid"] != old_kid
        r = httpx.post(
            f"{server.base_url}/v1/live_inputs/li_xyz/playback_urls",
            json={"ttl_seconds": 120},
            headers=h2,
        )
        assert r.json()["kid"] == rotated["kid"]  # the running server signs with the new key
        jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json").json()
        assert {k["kid"] for k in jwks["keys"]} == {old_kid, rotated["kid"]}
        key = jwt.PyJWKSet.from_dict(jwks)[rotated["kid"]]
        claims = jwt.decode(
            r.json()["token"], key.key, algorithms=["ES256"], audience="clutchcall-playback"
        )
        assert claims["org"] == seeded["org_id"]

        clutchcall("admin", "revoke-api-key", org["key_id"], "--db", db)
        assert httpx.get(f"{server.base_url}/v1/live_inputs", headers=h).status_code == 401
    finally:
        server.close()


def test_control_refuses_a_bad_database_url(tmp_path: Path) -> None:
    out = clutchcall("control", "--http", "127.0.0.1:0", "--db", "mysql://nope", check=False)
    assert out.returncode == 2 and "unsupported database URL" in out.stderr


def test_control_on_postgresql_end_to_end(pg_url: str, redis_url: str) -> None:
    org = create_org(pg_url, "Acme")
    server = ControlServer(pg_url, redis_url=redis_url)
    try:
        h = {"Authorization": f"Bearer {org['api_key']}", "X-ClutchCall-Org": org["org_id"]}
        made = httpx.post(f"{server.base_url}/v1/live_inputs", json={"name": "pg"}, headers=h)
        assert made.status_code == 201
        li = made.json()["input"]
        ticket = httpx.post(
            f"{server.base_url}/v1/live_inputs/{li['id']}/playback_urls",
            json={"ttl_seconds": 60},
            headers=h,
        )
        assert ticket.status_code == 201
        assert httpx.get(f"{server.base_url}/readyz").json()["schema_version"] >= 2
        listed = httpx.get(f"{server.base_url}/v1/live_inputs", headers=h).json()["data"]
        assert [x["id"] for x in listed] == [li["id"]]
    finally:
        server.close()


def test_control_settings_layers_reject_unknown_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "cc.toml"
    cfg.write_text('[control]\ndb = "mysql://from-file"\n')
    out = clutchcall("control", "--config", str(cfg), check=False)
    assert out.returncode == 2 and "mysql://from-file" in out.stderr  # the file's db was used
    cfg.write_text('[control]\ndatabase = "sqlite:///x"\n')
    out = clutchcall("control", "--config", str(cfg), check=False)
    assert out.returncode == 2 and "unknown setting 'database'" in out.stderr
