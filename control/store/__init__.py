"""Storage of the control plane: SQLite (embedded default) or PostgreSQL, one repository."""

from control.store._drivers import Conflict, StoreError, open_driver
from control.store._idempotency import KeyAlreadyBound
from control.store._migrations import MIGRATIONS, Migration
from control.store._records import (
    ApiKey,
    IdempotencyBinding,
    Ingest,
    InputStatus,
    LiveInput,
    Org,
    PlaybackToken,
    Revocation,
    SigningKey,
)
from control.store._repository import Repository, open_repository

__all__ = [
    "MIGRATIONS",
    "ApiKey",
    "Conflict",
    "IdempotencyBinding",
    "Ingest",
    "InputStatus",
    "KeyAlreadyBound",
    "LiveInput",
    "Migration",
    "Org",
    "PlaybackToken",
    "Repository",
    "Revocation",
    "SigningKey",
    "StoreError",
    "open_driver",
    "open_repository",
]
