"""Versioned schema migrations, applied in order, each in its own transaction.

Our own small runner (no alembic): ``schema_migrations`` records what ran.
Statements are written in the SQL both SQLite and PostgreSQL accept. Append new
migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "orgs, api keys, live inputs",
        (
            """CREATE TABLE orgs (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
                secret_sha256 TEXT NOT NULL UNIQUE,
                created_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )""",
            "CREATE INDEX api_keys_org ON api_keys (org_id)",
            """CREATE TABLE live_inputs (
                id TEXT PRIMARY KEY,
                org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
                external_input_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                ingest TEXT NOT NULL,
                stream_key_sha256 TEXT NOT NULL,
                stream_key_rotated_at DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL DEFAULT 'idle',
                status_detail TEXT,
                status_at DOUBLE PRECISION,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX live_inputs_org ON live_inputs (org_id, id)",
        ),
    ),
    Migration(
        2,
        "playback signing keys, issued tokens, revocations",
        (
            """CREATE TABLE signing_keys (
                kid TEXT PRIMARY KEY,
                private_key TEXT NOT NULL,
                public_jwk TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                retired_at DOUBLE PRECISION,
                expires_at DOUBLE PRECISION
            )""",
            """CREATE TABLE playback_tokens (
                jti TEXT PRIMARY KEY,
                org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
                input_id TEXT NOT NULL,
                sub TEXT NOT NULL,
                kid TEXT NOT NULL,
                issued_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX playback_tokens_exp ON playback_tokens (expires_at)",
            """CREATE TABLE revocations (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
                before DOUBLE PRECISION,
                expires_at DOUBLE PRECISION NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX revocations_exp ON revocations (expires_at)",
        ),
    ),
    Migration(
        3,
        "on-demand assets and their resumable uploads",
        (
            """CREATE TABLE assets (
                id TEXT PRIMARY KEY,
                org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
                playback_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                progress DOUBLE PRECISION,
                error_code TEXT,
                error_message TEXT,
                size BIGINT,
                duration DOUBLE PRECISION,
                renditions TEXT NOT NULL DEFAULT '[]',
                require_signed INTEGER NOT NULL DEFAULT 0,
                meta TEXT NOT NULL DEFAULT '{}',
                max_duration DOUBLE PRECISION,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                ready_at DOUBLE PRECISION,
                upload_expires_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX assets_org ON assets (org_id, id)",
            """CREATE TABLE uploads (
                token_sha256 TEXT PRIMARY KEY,
                asset_id TEXT NOT NULL UNIQUE REFERENCES assets(id) ON DELETE CASCADE,
                org_id TEXT NOT NULL,
                length BIGINT,
                length_deferred INTEGER NOT NULL DEFAULT 0,
                expires_at DOUBLE PRECISION NOT NULL,
                completed_at DOUBLE PRECISION,
                activity_at DOUBLE PRECISION NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX uploads_open ON uploads (completed_at, expires_at)",
        ),
    ),
    Migration(
        4,
        "webhook endpoints and their deliveries",
        (
            """CREATE TABLE webhooks (
                id TEXT PRIMARY KEY,
                org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
                url TEXT NOT NULL,
                events TEXT NOT NULL,
                secret TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX webhooks_org ON webhooks (org_id, id)",
            """CREATE TABLE webhook_deliveries (
                id TEXT PRIMARY KEY,
                webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
                org_id TEXT NOT NULL,
                event TEXT NOT NULL,
                event_id TEXT NOT NULL,
                payload TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_status_code INTEGER,
                last_error TEXT,
                next_attempt_at DOUBLE PRECISION,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                UNIQUE (webhook_id, event_id)
            )""",
            "CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id)",
            "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (status)",
        ),
    ),
    Migration(
        5,
        "idempotency keys kept with the records they made",
        (
            # The sealed answer (base64 of control.idempotency's record), written in the
            # transaction of the record the request made: a crash after the commit cannot
            # lose the answer, so a retry replays instead of making the record again.
            """CREATE TABLE idempotency_keys (
                name TEXT PRIMARY KEY,
                org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
                answer TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX idempotency_keys_exp ON idempotency_keys (expires_at)",
        ),
    ),
)
