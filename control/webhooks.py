"""Webhooks: per-org endpoints, signed deliveries, retries that hold across nodes.

An org registers endpoints (``POST /v1/webhooks``); every event the control
plane emits (``asset.ready``, ``asset.errored``, ``live.started``,
``live.ended``; see :meth:`control.service.ControlService.emit_event`) becomes
one delivery row per subscribed endpoint, in the database, and is sent as::

    POST <url>
    Content-Type: application/json
    ClutchCall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>
    ClutchCall-Event: asset.ready
    ClutchCall-Delivery: dl_...

    {"id": "evt_...", "type": "asset.ready", "created_at": ..., "org_id": ..., "data": {...}}

Targets must be public addresses (:mod:`control.webhook_guard`, checked when the
endpoint is created and again at each connection). A 2xx answer delivers it; anything else (or no answer within the timeout) is
retried on an exponential schedule (``webhook_retry_base`` * 2^n, capped, with
jitter) until ``webhook_max_attempts``, then the delivery is ``failed``.
Every attempt is recorded on the row (``GET /v1/webhooks/{id}/deliveries``).

Which deliveries are due is a :class:`DueQueue`: a Redis sorted set (score =
due time) when the control plane runs with Redis, so any node may send a
retry scheduled by another, claimed atomically with a lease (a node that dies
mid-attempt leaves the delivery due again when the lease ends); in memory
otherwise. At start, pending rows of the database are put back in the queue,
so a restart (or a Redis that lost its data) loses no delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import json
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import redis.asyncio as aioredis
import structlog

from control.ids import new_id
from control.signing import KeySealer
from control.store import Conflict, Repository
from control.store._drivers import Driver
from control.webhook_guard import GuardedTransport

__all__ = [
    "EVENTS",
    "SIGNATURE_HEADER",
    "Delivery",
    "DueQueue",
    "MemoryDueQueue",
    "RedisDueQueue",
    "RetryPolicy",
    "Webhook",
    "WebhookDispatcher",
    "WebhookStore",
    "sign_payload",
]

_log = structlog.get_logger("control.webhooks")

EVENTS: tuple[str, ...] = ("asset.ready", "asset.errored", "live.started", "live.ended")
SIGNATURE_HEADER = "ClutchCall-Signature"
DUE_KEY = "clutchcall:webhooks:due"
DeliveryStatus = Literal["pending", "delivered", "failed"]
RETENTION = 30 * 24 * 3600.0  # settled deliveries are kept this long
_ERROR_MAX = 300


def sign_payload(secret: str, body: bytes, timestamp: int) -> str:
    """The ``ClutchCall-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256>`` over
    ``f"{timestamp}.".encode() + body`` (as Stripe, Mux and Cloudflare do)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# --- records and storage ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    org_id: str
    url: str
    events: tuple[str, ...]
    created_at: float
    secret: str = field(repr=False)  # sealed as stored (KeySealer), never logged


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    webhook_id: str
    org_id: str
    event: str
    event_id: str
    payload: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: float | None
    created_at: float
    updated_at: float


_HOOK_COLUMNS = "id, org_id, url, events, secret, created_at"
_DELIVERY_COLUMNS = (
    "id, webhook_id, org_id, event, event_id, payload, status, attempts, last_status_code, "
    "last_error, next_attempt_at, created_at, updated_at"
)


def _hook(row: dict[str, Any]) -> Webhook:
    return Webhook(
        id=row["id"],
        org_id=row["org_id"],
        url=row["url"],
        events=tuple(json.loads(row["events"])),
        created_at=float(row["created_at"]),
        secret=row["secret"],
    )


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery(**{**row, "attempts": int(row["attempts"])})


class WebhookStore:
    """The ``webhooks`` and ``webhook_deliveries`` tables (migration 4). Synchronous, one
    transaction per call: the dispatcher calls it through :func:`asyncio.to_thread`."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def create(self, hook: Webhook) -> None:
        with self.driver.transaction() as tx:
            tx.execute(
                f"INSERT INTO webhooks ({_HOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    hook.id,
                    hook.org_id,
                    hook.url,
                    json.dumps(list(hook.events)),
                    hook.secret,
                    hook.created_at,
                ),
            )

    def get(self, org_id: str, hook_id: str) -> Webhook | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                f"SELECT {_HOOK_COLUMNS} FROM webhooks WHERE org_id = ? AND id = ?",
                (org_id, hook_id),
            )
        return None if row is None else _hook(row)

    def endpoints(self, org_id: str) -> list[Webhook]:
        with self.driver.transaction() as tx:
            rows = tx.all(
                f"SELECT {_HOOK_COLUMNS} FROM webhooks WHERE org_id = ? ORDER BY id", (org_id,)
            )
        return [_hook(r) for r in rows]

    def delete(self, org_id: str, hook_id: str) -> bool:
        with self.driver.transaction() as tx:
            tx.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (hook_id,))
            count = tx.execute(
                "DELETE FROM webhooks WHERE org_id = ? AND id = ?", (org_id, hook_id)
            )
        return count > 0

    def insert_delivery(self, delivery: Delivery) -> bool:
        """False when this endpoint already has this event (another node emitted it too)."""
        try:
            with self.driver.transaction() as tx:
                tx.execute(
                    f"INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        delivery.id,
                        delivery.webhook_id,
                        delivery.org_id,
                        delivery.event,
                        delivery.event_id,
                        delivery.payload,
                        delivery.status,
                        delivery.attempts,
                        delivery.last_status_code,
                        delivery.last_error,
                        delivery.next_attempt_at,
                        delivery.created_at,
                        delivery.updated_at,
                    ),
                )
        except Conflict:
            return False
        return True

    def delivery(self, delivery_id: str) -> tuple[Delivery, Webhook] | None:
        with self.driver.transaction() as tx:
            row = tx.one(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
            )
            if row is None:
                return None
            hook = tx.one(
                f"SELECT {_HOOK_COLUMNS} FROM webhooks WHERE id = ?", (row["webhook_id"],)
            )
        return None if hook is None else (_delivery(row), _hook(hook))

    def record_attempt(
        self,
        delivery_id: str,
        *,
        status: DeliveryStatus,
        attempts: int,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
        now: float,
    ) -> None:
        with self.driver.transaction() as tx:
            tx.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, last_status_code = ?, "
                "last_error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (status, attempts, status_code, error, next_attempt_at, now, delivery_id),
            )

    def deliveries(self, webhook_id: str, *, limit: int) -> list[Delivery]:
        with self.driver.transaction() as tx:
            rows = tx.all(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ? "
                "ORDER BY id DESC LIMIT ?",
                (webhook_id, limit),
            )
        return [_delivery(r) for r in rows]

    def purge(self, before: float) -> int:
        """Delete delivered and failed deliveries last touched before ``before``."""
        with self.driver.transaction() as tx:
            return tx.execute(
                "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < ?",
                (before,),
            )

    def pending(self) -> list[tuple[str, float]]:
        """Every pending delivery and when it is due (to refill the queue at start)."""
        with self.driver.transaction() as tx:
            rows = tx.all(
                "SELECT id, next_attempt_at FROM webhook_deliveries WHERE status = 'pending'"
            )
        return [(r["id"], float(r["next_attempt_at"] or 0.0)) for r in rows]


# --- the queue of due deliveries -----------------------------------------------------------


class DueQueue(Protocol):
    shared: bool  # other nodes add to it too (poll it, do not only wait for local wake-ups)

    async def add(self, delivery_id: str, due: float, *, only_new: bool = False) -> None: ...

    async def claim(self, now: float, lease: float, limit: int) -> list[str]:
        """Deliveries due at ``now``, taken for ``lease`` seconds (due again after that)."""
        ...

    async def remove(self, delivery_id: str) -> None: ...

    async def next_due(self) -> float | None: ...

    async def close(self) -> None: ...


class MemoryDueQueue:
    """One process's queue (no Redis): a heap of (due, id) with the current due per id."""

    shared = False

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    async def add(self, delivery_id: str, due: float, *, only_new: bool = False) -> None:
        if only_new and delivery_id in self._due:
            return
        self._due[delivery_id] = due
        heapq.heappush(self._heap, (due, delivery_id))

    def _top(self) -> tuple[float, str] | None:
        while self._heap:
            due, did = self._heap[0]
            if self._due.get(did) == due:
                return due, did
            heapq.heappop(self._heap)  # stale entry (rescheduled or removed)
        return None

    async def claim(self, now: float, lease: float, limit: int) -> list[str]:
        taken: list[str] = []
        while len(taken) < limit:
            top = self._top()
            if top is None or top[0] > now:
                break
            heapq.heappop(self._heap)
            taken.append(top[1])
        for did in taken:
            await self.add(did, now + lease)
        return taken

    async def remove(self, delivery_id: str) -> None:
        self._due.pop(delivery_id, None)

    async def next_due(self) -> float | None:
        top = self._top()
        return None if top is None else top[0]

    async def close(self) -> None:
        return None


# Take up to ARGV[3] members due at ARGV[1] and push them to ARGV[2] (the lease's end),
# in one step: two nodes never claim the same delivery.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
"""


class RedisDueQueue:
    """The cluster's queue: sorted set ``clutchcall:webhooks:due`` (member = delivery id,
    score = due time in Unix seconds), claimed with a Lua script."""

    shared = True

    def __init__(self, url: str, key: str = DUE_KEY) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._key = key
        self._claim = self._redis.register_script(_CLAIM)

    async def add(self, delivery_id: str, due: float, *, only_new: bool = False) -> None:
        await self._redis.zadd(self._key, {delivery_id: due}, nx=only_new)

    async def claim(self, now: float, lease: float, limit: int) -> list[str]:
        ids = await self._claim(keys=[self._key], args=[repr(now), repr(now + lease), limit])
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def remove(self, delivery_id: str) -> None:
        await self._redis.zrem(self._key, delivery_id)

    async def next_due(self) -> float | None:
        first = await self._redis.zrange(self._key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()


# --- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based) failing waits ``base * 2**(n-1)`` (at most ``cap``, +-``jitter``)."""

    max_attempts: int = 8
    base: float = 10.0
    cap: float = 3600.0
    jitter: float = 0.1
    timeout: float = 10.0
    lease: float = 60.0  # a claimed delivery is due again after this (its node died)

    def delay(self, attempt: int) -> float:
        wait = min(self.cap, self.base * 2 ** (attempt - 1))
        return wait * (1 + random.uniform(-self.jitter, self.jitter))


class WebhookDispatcher:
    """Turns events into delivery rows and sends them (:meth:`run` is the worker)."""

    def __init__(
        self,
        repo: Repository,
        sealer: KeySealer,
        queue: DueQueue,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        batch: int = 16,
        allow_private: bool = False,
    ) -> None:
        self.store = WebhookStore(repo.driver)
        self._sealer = sealer
        self.queue = queue
        self.policy = policy
        self._clock = clock
        self._batch = batch
        self._wake = asyncio.Event()
        # Set after each refill of the queue from the database (tests and statistics wait on it).
        self.refilled = asyncio.Event()
        self.allow_private = allow_private
        self._http = httpx.AsyncClient(
            timeout=policy.timeout,
            follow_redirects=False,
            trust_env=False,
            # Public addresses only, checked at connect time (control.webhook_guard).
            transport=transport or GuardedTransport(allow_private=allow_private),
            headers={"User-Agent": "clutchcall-webhooks/1"},
        )

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- endpoints -------------------------------------------------------------------------

    async def create_endpoint(
        self, org_id: str, url: str, events: Sequence[str]
    ) -> tuple[Webhook, str]:
        """A new endpoint and its signing secret (returned once; stored sealed)."""
        secret = new_secret()
        hook = Webhook(
            id=new_id("wh"),
            org_id=org_id,
            url=url,
            events=tuple(events),
            created_at=self._clock(),
            secret=self._sealer.seal(secret.encode()),
        )
        await self._db(self.store.create, hook)
        _log.info("webhook_created", org=org_id, webhook=hook.id, events=list(hook.events))
        return hook, secret

    # -- events ----------------------------------------------------------------------------

    async def enqueue(self, org_id: str, event: str, data: dict[str, Any]) -> list[str]:
        """The event sink: one pending delivery per endpoint of ``org_id`` taking ``event``.

        ``data["event_id"]`` (optional) names the occurrence, so that two nodes
        emitting the same one deliver it once."""
        now = self._clock()
        data = dict(data)
        event_id = str(data.pop("event_id", None) or new_id("evt", now=now))
        body = json.dumps(
            {"id": event_id, "type": event, "created_at": now, "org_id": org_id, "data": data},
            separators=(",", ":"),
            default=str,
        )
        hooks = [h for h in await self._db(self.store.endpoints, org_id) if event in h.events]
        queued: list[str] = []
        for hook in hooks:
            delivery = Delivery(
                id=new_id("dl", now=now),
                webhook_id=hook.id,
                org_id=org_id,
                event=event,
                event_id=event_id,
                payload=body,
                status="pending",
                attempts=0,
                last_status_code=None,
                last_error=None,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            if await self._db(self.store.insert_delivery, delivery):
                await self.queue.add(delivery.id, now)
                queued.append(delivery.id)
        if queued:
            _log.info("webhook_event", org=org_id, event_type=event, deliveries=len(queued))
            self._wake.set()
        return queued

    # -- the worker ------------------------------------------------------------------------

    async def restore(self) -> int:
        """Put the database's pending deliveries back in the queue (keeping any claim)."""
        pending = await self._db(self.store.pending)
        for did, due in pending:
            await self.queue.add(did, due, only_new=True)
        return len(pending)

    async def run(self, *, poll: float = 1.0, refill_every: float = 30.0) -> None:
        """Send due deliveries until cancelled; survives Redis and database outages.

        Every ``refill_every`` seconds the database's pending deliveries are put back
        in the queue (a Redis restarted empty, an enqueue that met Redis down) and
        settled deliveries past the retention are purged."""
        refilled_at: float | None = None
        while True:
            try:
                now = time.monotonic()
                if refilled_at is None or now - refilled_at >= refill_every:
                    await self.restore()
                    await self._db(self.store.purge, self._clock() - RETENTION)
                    refilled_at = now
                    self.refilled.set()
                await self.run_once()
                wait = poll if self.queue.shared else refill_every
                due = await self.queue.next_due()
                if due is not None:
                    wait = min(wait, max(0.0, due - self._clock()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("webhook_worker_error", error=f"{type(exc).__name__}: {exc}")
                wait = poll
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.01))

    async def run_once(self) -> int:
        """Attempt every delivery due now; returns how many were attempted."""
        total = 0
        while True:
            ids = await self.queue.claim(self._clock(), self.policy.lease, self._batch)
            if not ids:
                return total
            await asyncio.gather(*(self._attempt(did) for did in ids))
            total += len(ids)

    async def _attempt(self, delivery_id: str) -> None:
        found = await self._db(self.store.delivery, delivery_id)
        if found is None or found[0].status != "pending":
            await self.queue.remove(delivery_id)  # endpoint deleted, or already settled
            return
        delivery, hook = found
        body = delivery.payload.encode()
        code: int | None = None
        error: str | None = None
        try:
            secret = self._sealer.open(hook.secret).decode()
            signature = sign_payload(secret, body, int(self._clock()))
            response = await self._http.post(
                hook.url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature,
                    "ClutchCall-Event": delivery.event,
                    "ClutchCall-Delivery": delivery.id,
                },
            )
            code = response.status_code
            if not response.is_success:
                error = f"HTTP {code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # a sealed secret we cannot open, ...
            error = f"{type(exc).__name__}: {exc}"
        attempts = delivery.attempts + 1
        now = self._clock()
        next_at: float | None = None
        status: DeliveryStatus
        if error is None:
            status = "delivered"
        elif attempts >= self.policy.max_attempts:
            status = "failed"
        else:
            status = "pending"
            next_at = now + self.policy.delay(attempts)
        await self._db(
            self.store.record_attempt,
            delivery.id,
            status=status,
            attempts=attempts,
            status_code=code,
            error=None if error is None else error[:_ERROR_MAX],
            next_attempt_at=next_at,
            now=now,
        )
        if next_at is None:
            await self.queue.remove(delivery.id)
        else:
            await self.queue.add(delivery.id, next_at)
        _log.info(
            "webhook_attempt",
            delivery=delivery.id,
            webhook=hook.id,
            event_type=delivery.event,
            attempt=attempts,
            status=status,
            code=code,
            error=error,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.queue.close()
