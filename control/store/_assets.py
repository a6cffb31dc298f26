"""On-demand assets and their uploads: rows and the repository's queries (migration 3).

:class:`AssetQueries` is mixed into :class:`control.store.Repository`; like the rest
of it, every method is one transaction, synchronous, and org-scoped where an org
is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from control.store._idempotency import bind_idempotency
from control.store._records import IdempotencyBinding

if TYPE_CHECKING:
    from control.store._drivers import Driver

__all__ = ["Asset", "AssetQueries", "AssetStatus", "UploadRecord"]

AssetStatus = Literal["waiting_upload", "uploading", "processing", "ready", "errored"]


@dataclass(frozen=True, slots=True)
class Asset:
    id: str
    org_id: str
    playback_id: str
    name: str
    status: AssetStatus
    progress: float | None
    error_code: str | None
    error_message: str | None
    size: int | None
    duration: float | None
    renditions: list[dict[str, Any]]
    require_signed: bool
    meta: dict[str, str]
    max_duration: float | None
    created_at: float
    updated_at: float
    ready_at: float | None
    upload_expires_at: float

    @property
    def namespace(self) -> str:
        return f"stream/{self.org_id}/{self.playback_id}"


@dataclass(frozen=True, slots=True)
class UploadRecord:
    token_sha256: str
    asset_id: str
    org_id: str
    length: int | None
    length_deferred: bool
    expires_at: float
    completed_at: float | None
    activity_at: float
    created_at: float


_ASSET_COLUMNS = (
    "id, org_id, playback_id, name, status, progress, error_code, error_message, size, "
    "duration, renditions, require_signed, meta, max_duration, created_at, updated_at, "
    "ready_at, upload_expires_at"
)
_UPLOAD_COLUMNS = (
    "token_sha256, asset_id, org_id, length, length_deferred, expires_at, completed_at, "
    "activity_at, created_at"
)


def _asset(row: dict[str, Any]) -> Asset:
    row = dict(row)
    row["renditions"] = json.loads(row["renditions"] or "[]")
    row["meta"] = json.loads(row["meta"] or "{}")
    row["require_signed"] = bool(row["require_signed"])
    return Asset(**row)


def _upload(row: dict[str, Any]) -> UploadRecord:
    row = dict(row)
    row["length_deferred"] = bool(row["length_deferred"])
    return UploadRecord(**row)


class AssetQueries:
    driver: Driver

    def insert_asset(
        self, asset: Asset, upload: UploadRecord, bound: IdempotencyBinding | None = None
    ) -> None:
        with self.driver.transaction() as tx:
            bind_idempotency(tx, bound)
            tx.execute(
                f"INSERT INTO assets ({_ASSET_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    asset.id,
                    asset.org_id,
                    asset.playback_id,
                    asset.name,
                    asset.status,
                    asset.progress,
                    asset.error_code,
                    asset.error_message,
                    asset.size,
                    asset.duration,
                    json.dumps(asset.renditions),
                    int(asset.require_signed),
                    json.dumps(asset.meta),
                    asset.max_duration,
                    asset.created_at,
                    asset.updated_at,
                    asset.ready_at,
                    asset.upload_expires_at,
                ),
            )
            tx.execute(
                f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    upload.token_sha256,
                    upload.asset_id,
                    upload.org_id,
                    upload.length,
                    int(upload.length_deferred),
                    upload.expires_at,
                    upload.completed_at,
                    upload.activity_at,
                    upload.created_at,
                ),
            )

    def get_asset(self, org_id: str, asset_id: str) -> Asset | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                f"SELECT {_ASSET_COLUMNS} FROM assets WHERE org_id = ? AND id = ?",
                (org_id, asset_id),
            )
        return None if row is None else _asset(row)

    def asset_by_id(self, asset_id: str) -> Asset | None:
        """Any org's asset (for the upload URL and the packaging queue, which carry no org)."""
        with self.driver.transaction() as tx:
            row = tx.one(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE id = ?", (asset_id,))
        return None if row is None else _asset(row)

    def asset_by_playback_id(self, playback_id: str) -> Asset | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                f"SELECT {_ASSET_COLUMNS} FROM assets WHERE playback_id = ?", (playback_id,)
            )
        return None if row is None else _asset(row)

    def list_assets(self, org_id: str, *, limit: int, before: str | None) -> list[Asset]:
        """Newest first; ``before`` is the last id of the previous page (ids sort by time)."""
        with self.driver.transaction() as tx:
            if before is None:
                rows = tx.all(
                    f"SELECT {_ASSET_COLUMNS} FROM assets WHERE org_id = ? "
                    "ORDER BY id DESC LIMIT ?",
                    (org_id, limit),
                )
            else:
                rows = tx.all(
                    f"SELECT {_ASSET_COLUMNS} FROM assets WHERE org_id = ? AND id < ? "
                    "ORDER BY id DESC LIMIT ?",
                    (org_id, before, limit),
                )
        return [_asset(r) for r in rows]

    def delete_asset(self, org_id: str | None, asset_id: str) -> Asset | None:
        with self.driver.transaction() as tx:
            if org_id is None:
                row = tx.one(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE id = ?", (asset_id,))
            else:
                row = tx.one(
                    f"SELECT {_ASSET_COLUMNS} FROM assets WHERE org_id = ? AND id = ?",
                    (org_id, asset_id),
                )
            if row is None:
                return None
            tx.execute("DELETE FROM uploads WHERE asset_id = ?", (asset_id,))
            tx.execute("DELETE FROM assets WHERE id = ?", (asset_id,))
        return _asset(row)

    def update_asset(self, asset_id: str, now: float, **fields: Any) -> Asset | None:
        """Set columns of an asset (``renditions``/``meta`` as Python values)."""
        allowed = {
            "status",
            "progress",
            "error_code",
            "error_message",
            "size",
            "duration",
            "renditions",
            "ready_at",
        }
        if not fields.keys() <= allowed:
            raise ValueError(f"unknown asset fields {sorted(fields.keys() - allowed)}")
        values = [json.dumps(v) if k == "renditions" else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.driver.transaction() as tx:
            tx.execute(
                f"UPDATE assets SET {sets}, updated_at = ? WHERE id = ?",
                (*values, now, asset_id),
            )
            row = tx.one(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE id = ?", (asset_id,))
        return None if row is None else _asset(row)

    def upload_by_token(self, token_sha256: str) -> UploadRecord | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE token_sha256 = ?", (token_sha256,)
            )
        return None if row is None else _upload(row)

    def upload_of_asset(self, asset_id: str) -> UploadRecord | None:
        with self.driver.transaction() as tx:
            row = tx.one(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE asset_id = ?", (asset_id,))
        return None if row is None else _upload(row)

    def open_uploads(self) -> list[UploadRecord]:
        """Uploads not complete yet (to finish or expire after a restart)."""
        with self.driver.transaction() as tx:
            rows = tx.all(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE completed_at IS NULL AND "
                "asset_id IN (SELECT id FROM assets WHERE status IN "
                "('waiting_upload', 'uploading')) ORDER BY created_at"
            )
        return [_upload(r) for r in rows]

    def assets_to_package(self, now: float) -> list[Asset]:
        """Assets whose packaging job a stopped control plane may have lost (at start-up).

        ``processing`` ones, and those whose upload was recorded complete while the
        asset stayed ``waiting_upload``/``uploading`` (these are moved to ``processing``).
        """
        with self.driver.transaction() as tx:
            tx.execute(
                "UPDATE assets SET status = 'processing', progress = 0, updated_at = ? "
                "WHERE status IN ('waiting_upload', 'uploading') AND id IN "
                "(SELECT asset_id FROM uploads WHERE completed_at IS NOT NULL)",
                (now,),
            )
            rows = tx.all(
                f"SELECT {_ASSET_COLUMNS} FROM assets WHERE status = 'processing' "
                "ORDER BY created_at"
            )
        return [_asset(r) for r in rows]

    def update_upload(self, asset_id: str, **fields: Any) -> UploadRecord | None:
        allowed = {"length", "length_deferred", "completed_at", "activity_at"}
        if not fields.keys() <= allowed:
            raise ValueError(f"unknown upload fields {sorted(fields.keys() - allowed)}")
        values = [int(v) if k == "length_deferred" else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.driver.transaction() as tx:
            tx.execute(f"UPDATE uploads SET {sets} WHERE asset_id = ?", (*values, asset_id))
            row = tx.one(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE asset_id = ?", (asset_id,))
        return None if row is None else _upload(row)

    def complete_upload(self, asset_id: str, now: float, size: int) -> bool:
        """Mark the upload complete and the asset processing, once (False if it already was)."""
        with self.driver.transaction() as tx:
            count = tx.execute(
                "UPDATE uploads SET completed_at = ?, activity_at = ? "
                "WHERE asset_id = ? AND completed_at IS NULL",
                (now, now, asset_id),
            )
            if count == 0:
                return False
            tx.execute(
                "UPDATE assets SET status = 'processing', progress = 0, size = ?, "
                "updated_at = ? WHERE id = ?",
                (size, now, asset_id),
            )
        return True
