"""Database connections: one small driver per engine behind the same interface.

A driver hands out a cursor inside one transaction (``with driver.transaction()
as tx``). Queries use ``?`` placeholders; the PostgreSQL driver rewrites them to
psycopg's ``%s``. Rows come back as dicts. Engine errors are translated into
:class:`StoreError` / :class:`Conflict` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import psycopg
import psycopg.errors
from psycopg.rows import dict_row

__all__ = [
    "Conflict",
    "Driver",
    "PostgresDriver",
    "SqliteDriver",
    "StoreError",
    "Tx",
    "open_driver",
]

Row = dict[str, Any]


class StoreError(Exception):
    """The database failed or cannot be reached."""


class Conflict(StoreError):
    """A uniqueness constraint refused the write."""


class Tx(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of affected rows."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Driver(Protocol):
    dialect: str
    url: str

    def transaction(self, *, lock_schema: bool = False) -> contextlib.AbstractContextManager[Tx]:
        """A transaction; ``lock_schema`` serialises migrators across processes."""
        ...

    def close(self) -> None: ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self._conn.execute(sql, tuple(params)).fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self._conn.execute(sql, tuple(params)).fetchall()]


class SqliteDriver:
    """One shared connection (WAL, foreign keys on) serialised by a lock."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.url = f"sqlite:///{path}"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA busy_timeout = 10000")
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def transaction(self, *, lock_schema: bool = False) -> Iterator[Tx]:
        with self._lock:
            try:
                # IMMEDIATE takes the write lock up front: no upgrade deadlocks
                # between this process and an admin CLI writing the same file.
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: {exc}") from exc
            try:
                yield _SqliteTx(self._conn)
            except BaseException as exc:
                # SQLite may already have rolled back (e.g. after SQLITE_FULL); never let
                # a failing ROLLBACK hide the original error.
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise Conflict(str(exc)) from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"sqlite: {exc}") from exc
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise StoreError(f"sqlite commit: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    # psycopg types queries as LiteralString; ours are constants of this package with
    # "?" rewritten below, never user text (values always go in as parameters).
    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(self._sql(sql), tuple(params)).rowcount  # type: ignore[arg-type]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self._conn.execute(self._sql(sql), tuple(params)).fetchone()  # type: ignore[arg-type]

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(self._sql(sql), tuple(params)).fetchall()  # type: ignore[arg-type]


class PostgresDriver:
    """A bounded pool of psycopg 3 connections (autocommit + explicit transactions)."""

    dialect = "postgresql"
    _SCHEMA_LOCK = 0x636C7574  # pg_advisory_xact_lock id for migrations ("clut")

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout: float = 5.0) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._pool: queue.LifoQueue[psycopg.Connection[Row] | None] = queue.LifoQueue(pool_size)
        for _ in range(pool_size):
            self._pool.put(None)  # lazily connected slots
        self._closed = False
        # Fail fast on a wrong URL instead of at the first request.
        with self.transaction() as tx:
            tx.one("SELECT 1 AS ok")

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, int(self._connect_timeout)),
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self, *, lock_schema: bool = False) -> Iterator[Tx]:
        if self._closed:
            raise StoreError("database driver is closed")
        conn = self._pool.get()
        try:
            if conn is None or conn.closed:
                conn = self._connect()
            try:
                with conn.transaction():
                    if lock_schema:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._SCHEMA_LOCK,))
                    yield _PgTx(conn)
            except psycopg.errors.UniqueViolation as exc:
                raise Conflict(str(exc)) from exc
            except psycopg.errors.IntegrityError as exc:
                raise Conflict(str(exc)) from exc
            except psycopg.Error as exc:
                if conn.broken:
                    conn = None
                raise StoreError(f"postgresql: {exc}") from exc
        finally:
            self._pool.put(conn)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                break
            if conn is not None:
                conn.close()


def open_driver(url: str) -> Driver:
    """``sqlite:///path``, ``sqlite:///:memory:``, a bare file path, or ``postgresql://...``."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDriver(url)
    if url.startswith("sqlite:"):
        # sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:
        if not url.startswith("sqlite:///"):
            raise StoreError(f"sqlite URL must be sqlite:///PATH (got {url!r})")
        path = unquote(url[len("sqlite:///") :].split("?", 1)[0])
        if not path:
            raise StoreError(f"sqlite URL has no path: {url!r}")
        return SqliteDriver(path)
    if "://" in url:
        raise StoreError(f"unsupported database URL {url!r} (sqlite:///PATH or postgresql://...)")
    return SqliteDriver(url)
