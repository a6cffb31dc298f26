"""The repository against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import threading
import time

import pytest

from control.ids import new_id, sha256_hex
from control.store import (
    MIGRATIONS,
    ApiKey,
    Conflict,
    LiveInput,
    Org,
    PlaybackToken,
    Repository,
    Revocation,
    SigningKey,
    StoreError,
    open_driver,
    open_repository,
)


def _org(repo: Repository, name: str = "acme") -> Org:
    org = Org(new_id("org"), name, time.time())
    repo.create_org(org)
    return org


def _input(org: Org, name: str = "cam", now: float | None = None) -> LiveInput:
    t = time.time() if now is None else now
    return LiveInput(
        id=new_id("li", now=t),
        org_id=org.id,
        external_input_id=new_id("lv"),
        name=name,
        ingest="fmp4",
        stream_key_sha256=sha256_hex("sk_x"),
        stream_key_rotated_at=t,
        status="idle",
        status_detail=None,
        status_at=None,
        created_at=t,
        updated_at=t,
    )


def test_migrations_apply_once_and_record_versions(db_url: str) -> None:
    repo = open_repository(db_url)
    try:
        assert repo.schema_version() == MIGRATIONS[-1].version
        assert repo.migrate() == []  # idempotent
    finally:
        repo.close()
    again = open_repository(db_url)  # a second process/replica starting later
    try:
        assert again.migrate() == []
    finally:
        again.close()


def test_concurrent_migrators_do_not_collide(db_url: str) -> None:
    repos = [Repository(open_driver(db_url)) for _ in range(3)]
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run(r: Repository) -> None:
        try:
            results.append(r.migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in repos]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in repos:
        r.close()
    assert errors == []
    applied = sorted(v for batch in results for v in batch)
    assert applied == [m.version for m in MIGRATIONS]


def test_live_inputs_are_scoped_by_org_and_paginate(db_url: str) -> None:
    repo = open_repository(db_url)
    try:
        a, b = _org(repo, "a"), _org(repo, "b")
        base = time.time()
        made = [_input(a, f"in{i}", now=base + i) for i in range(5)]
        for li in made:
            repo.insert_live_input(li)
        other = _input(b)
        repo.insert_live_input(other)

        assert repo.get_live_input(a.id, made[0].id) == made[0]
        assert repo.get_live_input(b.id, made[0].id) is None
        page1 = repo.list_live_inputs(a.id, limit=2, after=None)
        page2 = repo.list_live_inputs(a.id, limit=2, after=page1[-1].id)
        page3 = repo.list_live_inputs(a.id, limit=2, after=page2[-1].id)
        assert [x.id for x in page1 + page2 + page3] == [x.id for x in made]
        assert repo.list_live_inputs(b.id, limit=10, after=None) == [other]

        assert repo.update_live_input(b.id, made[0].id, name="x", ingest=None, now=base) is None
        updated = repo.update_live_input(a.id, made[0].id, name="renamed", ingest="rtmp", now=base)
        assert updated is not None and updated.name == "renamed" and updated.ingest == "rtmp"

        rotated = repo.set_stream_key(a.id, made[1].id, sha256_hex("sk_new"), base + 10)
        assert rotated is not None and rotated.stream_key_sha256 == sha256_hex("sk_new")
        assert repo.set_stream_key(b.id, made[1].id, "00", base) is None

        assert repo.delete_live_input(b.id, made[2].id) is None
        deleted = repo.delete_live_input(a.id, made[2].id)
        assert deleted is not None and deleted.id == made[2].id
        assert repo.get_live_input(a.id, made[2].id) is None
    finally:
        repo.close()


def test_status_reports_apply_in_time_order(db_url: str) -> None:
    repo = open_repository(db_url)
    try:
        org = _org(repo)
        li = _input(org)
        repo.insert_live_input(li)
        assert repo.set_input_status(li.external_input_id, "live", None, 100.0)
        assert not repo.set_input_status(li.external_input_id, "idle", None, 99.0)  # stale
        assert repo.set_input_status(li.external_input_id, "error", "encoder gone", 101.0)
        got = repo.get_live_input(org.id, li.id)
        assert got is not None
        assert (got.status, got.status_detail, got.status_at) == ("error", "encoder gone", 101.0)
        assert not repo.set_input_status("lv_unknown", "live", None, 1.0)
    finally:
        repo.close()


def test_api_keys_unique_hash_and_revocation(db_url: str) -> None:
    repo = open_repository(db_url)
    try:
        org = _org(repo)
        key = ApiKey(new_id("key"), org.id, sha256_hex("ck_1"), time.time())
        repo.create_api_key(key)
        assert repo.find_api_key(sha256_hex("ck_1")) == key
        with pytest.raises(Conflict):
            repo.create_api_key(ApiKey(new_id("key"), org.id, sha256_hex("ck_1"), time.time()))
        assert repo.revoke_api_key(key.id, 5.0)
        assert not repo.revoke_api_key(key.id, 6.0)
        found = repo.find_api_key(sha256_hex("ck_1"))
        assert found is not None and found.revoked_at == 5.0 and not found.active
        with pytest.raises(Conflict):  # foreign key: no such org
            repo.create_api_key(ApiKey(new_id("key"), "org_missing", "ab", time.time()))
    finally:
        repo.close()


def test_signing_key_rotation_keeps_old_key_until_expiry(db_url: str) -> None:
    repo = open_repository(db_url)
    try:
        k1 = SigningKey("k1", "pem1", "{}", 100.0)
        repo.insert_signing_key(k1)
        repo.rotate_signing_key(SigningKey("k2", "pem2", "{}", 200.0), retire_expires_at=300.0)
        keys = repo.signing_keys(now=250.0)
        assert [k.kid for k in keys] == ["k2", "k1"]
        assert keys[1].retired_at == 200.0 and keys[1].expires_at == 300.0
        assert [k.kid for k in repo.signing_keys(now=300.0)] == ["k2"]
        assert repo.purge_signing_keys(now=301.0) == 1
    finally:
        repo.close()


def test_tokens_and_revocations_expire(db_url: str) -> None:
    repo = open_repository(db_url)
    try:
        org, other = _org(repo), _org(repo, "other")
        tok = PlaybackToken("jt_a", org.id, "li_x", "lv_x", "k1", 10.0, 100.0)
        repo.insert_playback_token(tok)
        assert repo.get_playback_token(org.id, "jt_a") == tok
        assert repo.get_playback_token(other.id, "jt_a") is None
        rev = Revocation("sub", "lv_x", org.id, 50.0, 200.0, 50.0)
        repo.upsert_revocation(rev)
        repo.upsert_revocation(Revocation("sub", "lv_x", org.id, 60.0, 210.0, 60.0))  # replaces
        repo.upsert_revocation(Revocation("jti", "jt_a", org.id, None, 100.0, 60.0))
        active = repo.active_revocations(now=90.0)
        assert {(r.id, r.before) for r in active} == {("sub:lv_x", 60.0), ("jti:jt_a", None)}
        assert repo.purge_expired(now=150.0) == 2  # token + jti revocation
        assert [r.id for r in repo.active_revocations(now=150.0)] == ["sub:lv_x"]
    finally:
        repo.close()


def test_bad_urls_are_clear_errors(tmp_path: object) -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        open_repository("mysql://x")
    with pytest.raises(StoreError, match="cannot connect"):
        open_repository("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
