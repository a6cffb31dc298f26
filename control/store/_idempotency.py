"""An ``Idempotency-Key``'s answer kept in the transaction of the record it made
(migration 5; the records and the request path: :mod:`control.idempotency`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from control.store._drivers import Conflict
from control.store._records import IdempotencyBinding

if TYPE_CHECKING:
    from control.store._drivers import Tx

__all__ = ["KeyAlreadyBound", "bind_idempotency"]


class KeyAlreadyBound(Conflict):
    """Another request committed an answer under this key first (its claim's lease ran out
    while it ran): this one's record is not made; a retry replays that answer."""


def bind_idempotency(tx: Tx, binding: IdempotencyBinding | None) -> None:
    """Keep ``binding`` in ``tx``, the transaction of the record its request makes (a key
    whose answer expired may be used again; one still kept: :class:`KeyAlreadyBound`)."""
    if binding is None:
        return
    tx.execute(
        "DELETE FROM idempotency_keys WHERE name = ? AND expires_at <= ?",
        (binding.name, binding.created_at),
    )
    if tx.one("SELECT 1 AS taken FROM idempotency_keys WHERE name = ?", (binding.name,)):
        raise KeyAlreadyBound(f"idempotency key {binding.name} already has an answer")
    tx.execute(
        "INSERT INTO idempotency_keys (name, org_id, answer, expires_at, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            binding.name,
            binding.org_id,
            binding.answer,
            binding.expires_at,
            binding.created_at,
        ),
    )
