"""The control plane's one repository, over either database driver.

Every public method is one transaction and is synchronous: the async service
layer calls them through :func:`asyncio.to_thread`. Org scoping is part of each
query (``WHERE org_id = ?``), so a lookup with another org's id finds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from control.store._assets import AssetQueries
from control.store._drivers import Driver, open_driver
from control.store._idempotency import bind_idempotency
from control.store._migrations import MIGRATIONS, Migration
from control.store._records import (
    ApiKey,
    IdempotencyBinding,
    LiveInput,
    Org,
    PlaybackToken,
    Revocation,
    SigningKey,
)

__all__ = ["Repository", "open_repository"]

_INPUT_COLUMNS = (
    "id, org_id, external_input_id, name, ingest, stream_key_sha256, stream_key_rotated_at, "
    "status, status_detail, status_at, created_at, updated_at"
)


def _input(row: dict[str, Any]) -> LiveInput:
    return LiveInput(**row)


class Repository(AssetQueries):
    def __init__(self, driver: Driver, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.driver = driver
        self._migrations = tuple(migrations)

    @property
    def dialect(self) -> str:
        return self.driver.dialect

    def close(self) -> None:
        self.driver.close()

    # -- schema -----------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now."""
        applied: list[int] = []
        with self.driver.transaction(lock_schema=True) as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at DOUBLE PRECISION NOT NULL)"
            )
        for migration in self._migrations:
            with self.driver.transaction(lock_schema=True) as tx:
                done = tx.one(
                    "SELECT version FROM schema_migrations WHERE version = ?",
                    (migration.version,),
                )
                if done is not None:
                    continue
                for statement in migration.statements:
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
                applied.append(migration.version)
        return applied

    def schema_version(self) -> int:
        with self.driver.transaction() as tx:
            row = tx.one("SELECT MAX(version) AS v FROM schema_migrations")
        return int(row["v"]) if row and row["v"] is not None else 0

    # -- orgs and API keys --------------------------------------------------------

    def create_org(self, org: Org) -> None:
        with self.driver.transaction() as tx:
            tx.execute(
                "INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)",
                (org.id, org.name, org.created_at),
            )

    def get_org(self, org_id: str) -> Org | None:
        with self.driver.transaction() as tx:
            row = tx.one("SELECT id, name, created_at FROM orgs WHERE id = ?", (org_id,))
        return None if row is None else Org(**row)

    def create_api_key(self, key: ApiKey) -> None:
        with self.driver.transaction() as tx:
            tx.execute(
                "INSERT INTO api_keys (id, org_id, secret_sha256, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key.id, key.org_id, key.secret_sha256, key.created_at, key.revoked_at),
            )

    def find_api_key(self, secret_sha256: str) -> ApiKey | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                "SELECT id, org_id, secret_sha256, created_at, revoked_at FROM api_keys "
                "WHERE secret_sha256 = ?",
                (secret_sha256,),
            )
        return None if row is None else ApiKey(**row)

    def revoke_api_key(self, key_id: str, now: float) -> bool:
        """Mark a key revoked; False if there is no such (unrevoked) key."""
        with self.driver.transaction() as tx:
            count = tx.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
        return count > 0

    # -- live inputs --------------------------------------------------------------

    def insert_live_input(self, li: LiveInput, bound: IdempotencyBinding | None = None) -> None:
        with self.driver.transaction() as tx:
            bind_idempotency(tx, bound)
            tx.execute(
                f"INSERT INTO live_inputs ({_INPUT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    li.id,
                    li.org_id,
                    li.external_input_id,
                    li.name,
                    li.ingest,
                    li.stream_key_sha256,
                    li.stream_key_rotated_at,
                    li.status,
                    li.status_detail,
                    li.status_at,
                    li.created_at,
                    li.updated_at,
                ),
            )

    def get_live_input(self, org_id: str, input_id: str) -> LiveInput | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                f"SELECT {_INPUT_COLUMNS} FROM live_inputs WHERE org_id = ? AND id = ?",
                (org_id, input_id),
            )
        return None if row is None else _input(row)

    def list_live_inputs(self, org_id: str, *, limit: int, after: str | None) -> list[LiveInput]:
        """Oldest first; ``after`` is the last id of the previous page (ids sort by time)."""
        with self.driver.transaction() as tx:
            if after is None:
                rows = tx.all(
                    f"SELECT {_INPUT_COLUMNS} FROM live_inputs WHERE org_id = ? "
                    "ORDER BY id LIMIT ?",
                    (org_id, limit),
                )
            else:
                rows = tx.all(
                    f"SELECT {_INPUT_COLUMNS} FROM live_inputs WHERE org_id = ? AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (org_id, after, limit),
                )
        return [_input(r) for r in rows]

    def update_live_input(
        self, org_id: str, input_id: str, *, name: str | None, ingest: str | None, now: float
    ) -> LiveInput | None:
        with self.driver.transaction() as tx:
            count = tx.execute(
                "UPDATE live_inputs SET name = COALESCE(?, name), ingest = COALESCE(?, ingest), "
                "updated_at = ? WHERE org_id = ? AND id = ?",
                (name, ingest, now, org_id, input_id),
            )
            if count == 0:
                return None
            row = tx.one(
                f"SELECT {_INPUT_COLUMNS} FROM live_inputs WHERE org_id = ? AND id = ?",
                (org_id, input_id),
            )
        return None if row is None else _input(row)

    def set_stream_key(
        self, org_id: str, input_id: str, stream_key_sha256: str, now: float
    ) -> LiveInput | None:
        with self.driver.transaction() as tx:
            count = tx.execute(
                "UPDATE live_inputs SET stream_key_sha256 = ?, stream_key_rotated_at = ?, "
                "updated_at = ? WHERE org_id = ? AND id = ?",
                (stream_key_sha256, now, now, org_id, input_id),
            )
            if count == 0:
                return None
            row = tx.one(
                f"SELECT {_INPUT_COLUMNS} FROM live_inputs WHERE org_id = ? AND id = ?",
                (org_id, input_id),
            )
        return None if row is None else _input(row)

    def delete_live_input(
        self, org_id: str, input_id: str, *, unbind: str | None = None
    ) -> LiveInput | None:
        """Delete the input; ``unbind``: and forget that idempotency key's answer (the
        creation undone)."""
        with self.driver.transaction() as tx:
            if unbind is not None:
                tx.execute("DELETE FROM idempotency_keys WHERE name = ?", (unbind,))
            row = tx.one(
                f"SELECT {_INPUT_COLUMNS} FROM live_inputs WHERE org_id = ? AND id = ?",
                (org_id, input_id),
            )
            if row is None:
                return None
            tx.execute("DELETE FROM live_inputs WHERE id = ?", (input_id,))
        return _input(row)

    def all_live_inputs(self) -> list[LiveInput]:
        """Every input of every org (to re-publish stream-key records at start)."""
        with self.driver.transaction() as tx:
            rows = tx.all(f"SELECT {_INPUT_COLUMNS} FROM live_inputs ORDER BY id")
        return [_input(r) for r in rows]

    def live_inputs_marker(self) -> tuple[int, float]:
        """(count, newest updated_at) of the inputs: changes when any input is created,
        changed or deleted, by this process or another (``clutchcall admin``)."""
        with self.driver.transaction() as tx:
            row = tx.one("SELECT COUNT(*) AS n, MAX(updated_at) AS newest FROM live_inputs")
        if row is None:
            return 0, 0.0
        return int(row["n"] or 0), float(row["newest"] or 0.0)

    def live_input_by_external_id(self, external_input_id: str) -> LiveInput | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                f"SELECT {_INPUT_COLUMNS} FROM live_inputs WHERE external_input_id = ?",
                (external_input_id,),
            )
        return None if row is None else _input(row)

    def set_input_status(
        self, external_input_id: str, status: str, detail: str | None, at: float
    ) -> bool:
        """Record a status reported by an origin; reports older than the stored one lose."""
        with self.driver.transaction() as tx:
            count = tx.execute(
                "UPDATE live_inputs SET status = ?, status_detail = ?, status_at = ? "
                "WHERE external_input_id = ? AND (status_at IS NULL OR status_at <= ?)",
                (status, detail, at, external_input_id, at),
            )
        return count > 0

    # -- signing keys -------------------------------------------------------------

    def insert_signing_key(self, key: SigningKey) -> None:
        with self.driver.transaction() as tx:
            tx.execute(
                "INSERT INTO signing_keys (kid, private_key, public_jwk, created_at, retired_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key.kid,
                    key.private_key,
                    key.public_jwk,
                    key.created_at,
                    key.retired_at,
                    key.expires_at,
                ),
            )

    def rotate_signing_key(self, new: SigningKey, *, retire_expires_at: float) -> None:
        """Insert ``new`` as the active key and retire every other active key, atomically."""
        with self.driver.transaction() as tx:
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?, expires_at = ? WHERE retired_at IS NULL",
                (new.created_at, retire_expires_at),
            )
            tx.execute(
                "INSERT INTO signing_keys (kid, private_key, public_jwk, created_at, retired_at, "
                "expires_at) VALUES (?, ?, ?, ?, NULL, NULL)",
                (new.kid, new.private_key, new.public_jwk, new.created_at),
            )

    def signing_keys(self, now: float) -> list[SigningKey]:
        """Keys still published: the active one and retired ones whose tokens may be valid."""
        with self.driver.transaction() as tx:
            rows = tx.all(
                "SELECT kid, private_key, public_jwk, created_at, retired_at, expires_at "
                "FROM signing_keys WHERE expires_at IS NULL OR expires_at > ? "
                "ORDER BY created_at DESC",
                (now,),
            )
        return [SigningKey(**r) for r in rows]

    def purge_signing_keys(self, now: float) -> int:
        with self.driver.transaction() as tx:
            return tx.execute(
                "DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now,),
            )

    # -- playback tokens and revocations -------------------------------------------

    def insert_playback_token(self, token: PlaybackToken) -> None:
        with self.driver.transaction() as tx:
            tx.execute(
                "INSERT INTO playback_tokens (jti, org_id, input_id, sub, kid, issued_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token.jti,
                    token.org_id,
                    token.input_id,
                    token.sub,
                    token.kid,
                    token.issued_at,
                    token.expires_at,
                ),
            )

    def get_playback_token(self, org_id: str, jti: str) -> PlaybackToken | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                "SELECT jti, org_id, input_id, sub, kid, issued_at, expires_at "
                "FROM playback_tokens WHERE org_id = ? AND jti = ?",
                (org_id, jti),
            )
        return None if row is None else PlaybackToken(**row)

    def upsert_revocation(self, rev: Revocation) -> None:
        with self.driver.transaction() as tx:
            tx.execute("DELETE FROM revocations WHERE id = ?", (rev.id,))
            tx.execute(
                "INSERT INTO revocations (id, kind, target, org_id, before, expires_at, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rev.id,
                    rev.kind,
                    rev.target,
                    rev.org_id,
                    rev.before,
                    rev.expires_at,
                    rev.created_at,
                ),
            )

    def get_revocation(self, rev_id: str) -> Revocation | None:
        """The stored revocation ``<kind>:<target>`` (expired or not), or None."""
        with self.driver.transaction() as tx:
            row = tx.one(
                "SELECT kind, target, org_id, before, expires_at, created_at FROM revocations "
                "WHERE id = ?",
                (rev_id,),
            )
        return None if row is None else Revocation(**row)

    def delete_revocation(self, rev_id: str) -> bool:
        with self.driver.transaction() as tx:
            return tx.execute("DELETE FROM revocations WHERE id = ?", (rev_id,)) > 0

    def active_revocations(self, now: float) -> list[Revocation]:
        with self.driver.transaction() as tx:
            rows = tx.all(
                "SELECT kind, target, org_id, before, expires_at, created_at FROM revocations "
                "WHERE expires_at > ? ORDER BY created_at",
                (now,),
            )
        return [Revocation(**r) for r in rows]

    def purge_expired(self, now: float) -> int:
        """Forget tokens, revocations and idempotent answers past their expiry; returns
        rows removed."""
        with self.driver.transaction() as tx:
            removed = tx.execute("DELETE FROM playback_tokens WHERE expires_at <= ?", (now,))
            removed += tx.execute("DELETE FROM revocations WHERE expires_at <= ?", (now,))
            removed += tx.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
        return removed

    # -- idempotency keys (control.idempotency) ---------------------------------------

    def idempotent_answer(self, name: str, now: float) -> str | None:
        """The sealed answer kept for the key named ``name``, unless it expired."""
        with self.driver.transaction() as tx:
            row = tx.one(
                "SELECT answer FROM idempotency_keys WHERE name = ? AND expires_at > ?",
                (name, now),
            )
        return None if row is None else str(row["answer"])


def open_repository(url: str, *, migrate: bool = True) -> Repository:
    """Open the database at ``url`` and bring its schema up to date."""
    repo = Repository(open_driver(url))
    if migrate:
        try:
            repo.migrate()
        except BaseException:
            repo.close()
            raise
    return repo
