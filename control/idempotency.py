"""``Idempotency-Key`` on the control plane's POSTs: a create whose response is lost can be
retried without doing it twice (the Stripe / Mux convention, docs/control-api.md).

The first request with a key claims ``(org, key)`` with the request's fingerprint (method,
path, query and a hash of the JSON body, key order and spacing ignored); when it has been
answered, the answer (status, the headers that matter, body) is kept for
``idempotency_ttl`` seconds (24 h by default). Then, for the same org and key:

* the same request again: the stored answer, with ``Idempotent-Replayed: true``;
* another method, path or body: 422 ``idempotency-key-reused``;
* while the first is still running: 409 ``idempotency-key-in-use`` with ``Retry-After``.

Answers of 5xx are not kept (the claim is released: the client may retry), nor refusals
of the request's shape (422 ``validation``, 413), which did not run the operation. A key
is 1-255 printable ASCII characters (else 400 ``idempotency-key-invalid``); keys are
per org, so another org's identical key never meets this one.

A stored answer can hold a shown-once secret (a stream key in the create or rotate
answer): that is the point, a lost answer must not lose the key. So the answer is sealed
(AES-256-GCM) with a key derived from the Idempotency-Key itself (HKDF, salted with the
control plane's ``key_secret`` when it has one): the store alone, without the client's
key, cannot open it. It lives where the stream-key records live (Redis, or this process
for the in-memory bus) and expires with its TTL.

Shared by every control plane replica when the bus is Redis: the claim is ``SET NX PX``
on ``clutchcall:idempotency:<org>:<sha256 of the key>`` (a lease of :data:`LEASE`
seconds, renewed every third of it while the request runs), replaced by the sealed answer
with the TTL (``PX``) only by its own claimer (a Lua compare-and-set, as
:mod:`control.locks`). Without Redis the same records live in this process
(:class:`MemoryIdempotencyStore`, bounded). A replica killed mid-request leaves its
claim until the lease runs out. The creates (live inputs, asset uploads) render their
answer first (:class:`Answer`) and commit it, sealed, in their record's own database
transaction (``idempotency_keys``): a retry that claims the key looks there first and
replays a committed answer, so a kill between the commit and storing the answer here
cannot make the record twice. Other POSTs run again after a lost answer.

Wiring: :func:`install_idempotency` adds :class:`IdempotencyMiddleware` (keeps the
answer, sends it after it is stored) and :func:`idempotency_dependency` is each POST
route's dependency (after authentication, so the org is known: it claims or replays).
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency's annotations,
# which name a closure variable (the principal dependency).
import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Protocol

import msgpack
import redis.exceptions
import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from control.errors import PROBLEM_BASE, Problem
from control.locks import RELEASE_IF_OWNER, RENEW_IF_OWNER
from control.problems import problem_response
from control.store import ApiKey, IdempotencyBinding, KeyAlreadyBound, Repository
from mesh.bus import Bus, BusUnavailable, RedisBus
from mesh.bus_contract import idempotency_record_key

__all__ = [
    "HEADER",
    "LEASE",
    "REPLAYED_HEADER",
    "Answer",
    "Idempotency",
    "IdempotencyMiddleware",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "RedisIdempotencyStore",
    "idempotency_dependency",
    "install_idempotency",
    "valid_key",
]

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
#: Seconds a claim lives without renewal (renewed every third while its request runs).
LEASE: Final = 30.0
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_KEY_PATTERN: Final = r"^[!-~]([ -~]{0,253}[!-~])?$"
# Response headers worth replaying (others are per response: date, content-length, CORS).
_KEPT_HEADERS: Final = frozenset({"content-type", "location", "link", "etag", "cache-control"})
_SLOT: Final = "clutchcall.idempotency"
_HEADER_BYTES: Final = HEADER.lower().encode()
_VALIDATION: Final = PROBLEM_BASE + "validation"
_IN_USE: Final = PROBLEM_BASE + "idempotency-key-in-use"
_log = structlog.get_logger(__name__)
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# KEYS[1] record; ARGV our claim, the answer, ttl ms. Only the claimer stores (or nobody
# claimed it since our lease ran out).
_FINISH: Final = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


def valid_key(value: str) -> bool:
    """1-255 printable ASCII characters (space to tilde)."""
    return _KEY.fullmatch(value) is not None


# --- stores: opaque values under a name, with expiry -----------------------------------------


class IdempotencyStore(Protocol):
    async def claim(self, name: str, value: bytes, lease: float) -> bytes | None:
        """Set ``name`` to ``value`` for ``lease`` s if it is free (None); else its value."""
        ...

    async def finish(self, name: str, claim: bytes, value: bytes, ttl: float) -> bool:
        """Replace our ``claim`` (or a lapsed one) by ``value`` for ``ttl`` s."""
        ...

    async def renew(self, name: str, claim: bytes, lease: float) -> None: ...

    async def release(self, name: str, claim: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryIdempotencyStore:
    """This process's records (the in-memory bus): at most ``max_records``, the oldest
    forgotten first."""

    def __init__(
        self, *, max_records: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max = max_records
        self._clock = clock

    def _get(self, name: str) -> bytes | None:
        entry = self._data.get(name)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._data[name]
            return None
        return entry[0]

    def _set(self, name: str, value: bytes, ttl: float) -> None:
        self._data[name] = (value, self._clock() + ttl)
        self._data.move_to_end(name)
        now = self._clock()
        while self._data:  # the front expires first (every entry's TTL is one of two)
            oldest, (_, expires) = next(iter(self._data.items()))
            if expires > now and len(self._data) <= self._max:
                break
            del self._data[oldest]

    async def claim(self, name: str, value: bytes, lease: float) -> bytes | None:
        current = self._get(name)
        if current is None:
            self._set(name, value, lease)
        return current

    async def finish(self, name: str, claim: bytes, value: bytes, ttl: float) -> bool:
        current = self._get(name)
        if current is not None and current != claim:
            return False
        self._set(name, value, ttl)
        return True

    async def renew(self, name: str, claim: bytes, lease: float) -> None:
        if self._get(name) == claim:
            self._set(name, claim, lease)

    async def release(self, name: str, claim: bytes) -> None:
        if self._get(name) == claim:
            del self._data[name]

    async def close(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class RedisIdempotencyStore:
    """Records in Redis, shared by every replica; Redis down: :class:`BusUnavailable`."""

    def __init__(self, client: Any) -> None:
        self._redis = client

    async def _call(self, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except _REDIS_DOWN as exc:
            raise BusUnavailable(f"redis unavailable for idempotency keys: {exc}") from exc

    async def claim(self, name: str, value: bytes, lease: float) -> bytes | None:
        px = max(1, int(lease * 1000))
        for _ in range(8):  # the record may vanish between SET NX and GET: claim again
            if await self._call(self._redis.set(name, value, nx=True, px=px)):
                return None
            current = await self._call(self._redis.get(name))
            if current is not None:
                return bytes(current)
        raise BusUnavailable(f"idempotency record {name} keeps changing")

    async def finish(self, name: str, claim: bytes, value: bytes, ttl: float) -> bool:
        px = max(1, int(ttl * 1000))
        done = await self._call(self._redis.eval(_FINISH, 1, name, claim, value, px))  # type: ignore[misc]
        return bool(done)

    async def renew(self, name: str, claim: bytes, lease: float) -> None:
        await self._call(
            self._redis.eval(RENEW_IF_OWNER, 1, name, claim, max(1, int(lease * 1000)))
        )  # type: ignore[misc]

    async def release(self, name: str, claim: bytes) -> None:
        await self._call(self._redis.eval(RELEASE_IF_OWNER, 1, name, claim))  # type: ignore[misc]

    async def close(self) -> None:
        return None


# --- the records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def response(self) -> Response:
        headers = dict(self.headers)
        headers[REPLAYED_HEADER] = "true"
        media_type = headers.pop("content-type", None)
        return Response(self.body, self.status, headers=headers, media_type=media_type)


@dataclass(frozen=True, slots=True)
class Claim:
    name: str  # the store's record name
    value: bytes  # our claim record (compared to know it is still ours)
    fingerprint: str
    seal: bytes  # AES-256 key of the answer


class Replayed(Exception):
    """Raised by the dependency: answer with the stored response (no handler runs)."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replayed")
        self.stored = stored


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests "the same": method, path, query and the body (a JSON body
    compared by value: key order and spacing do not matter)."""
    canonical = body
    if body:
        try:
            canonical = json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode("utf-8")
        except (ValueError, UnicodeDecodeError):
            pass
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    digest.update(canonical)
    return digest.hexdigest()


def _seal_key(secret: str | None, org_id: str, key: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=(secret or "").encode("utf-8"),
        info=b"clutchcall idempotency v1\x00" + org_id.encode("utf-8"),
    )
    return hkdf.derive(key.encode("ascii"))


def _running(token: str, fp: str) -> bytes:
    return msgpack.packb({"s": "running", "t": token, "fp": fp}, use_bin_type=True)  # type: ignore[no-any-return]


def _done(claim: Claim, stored: StoredResponse) -> bytes:
    nonce = os.urandom(12)
    plain = msgpack.packb(
        [stored.status, [list(h) for h in stored.headers], stored.body], use_bin_type=True
    )
    sealed = AESGCM(claim.seal).encrypt(nonce, plain, _aad(claim.name, claim.fingerprint))
    return msgpack.packb(  # type: ignore[no-any-return]
        {"s": "done", "fp": claim.fingerprint, "n": nonce, "c": sealed}, use_bin_type=True
    )


def _aad(name: str, fp: str) -> bytes:
    return f"{name}\x00{fp}".encode()


def _open(record: dict[str, Any], name: str, seal: bytes) -> StoredResponse:
    plain = AESGCM(seal).decrypt(record["n"], record["c"], _aad(name, record["fp"]))
    status, headers, body = msgpack.unpackb(plain, raw=False)
    return StoredResponse(int(status), tuple((str(k), str(v)) for k, v in headers), bytes(body))


# --- the request path -----------------------------------------------------------------------


@dataclass
class _Slot:
    """Per request, in the ASGI scope: what the dependency claimed, for the middleware."""

    layer: "Idempotency"
    claim: Claim | None = None
    org_id: str = ""
    renewal: asyncio.Task[None] | None = field(default=None, repr=False)


class Idempotency:
    """The records of one control plane: claim, replay, store, release."""

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        ttl: float,
        secret: str | None = None,
        lease: float = LEASE,
        repo: Repository | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.lease = lease
        self._secret = secret
        self.repo = repo  # where creates commit their answer with their record
        self.clock = clock  # wall clock: the database's expiry times

    def binding(self, claim: Claim, org_id: str, stored: StoredResponse) -> IdempotencyBinding:
        """``stored`` sealed, to commit in the transaction of the record it answers."""
        now = self.clock()
        return IdempotencyBinding(
            name=claim.name,
            org_id=org_id,
            answer=base64.b64encode(_done(claim, stored)).decode("ascii"),
            expires_at=now + self.ttl,
            created_at=now,
        )

    async def _committed(self, name: str, claim: bytes) -> bytes | None:
        """The answer a create committed with its record under this key (its process may
        have died before it stored the answer here); freed claim if the lookup fails."""
        if self.repo is None:
            return None
        try:
            kept = await asyncio.to_thread(self.repo.idempotent_answer, name, self.clock())
        except BaseException:
            with contextlib.suppress(BusUnavailable):
                await self.store.release(name, claim)
            raise
        if kept is None:
            return None
        try:
            record = base64.b64decode(kept, validate=True)
        except (binascii.Error, ValueError) as exc:
            with contextlib.suppress(BusUnavailable):
                await self.store.release(name, claim)
            raise _unusable() from exc
        try:  # the next retry finds it in the fast store
            await self.store.finish(name, claim, record, self.ttl)
        except BusUnavailable as exc:
            _log.warning("idempotency_store_failed", record=name, error=str(exc))
        return record

    async def begin(self, slot: _Slot, org_id: str, key: str, fp: str) -> None:
        """Claim ``key`` for this request, or raise what answers it instead."""
        name = idempotency_record_key(org_id, hashlib.sha256(key.encode("ascii")).hexdigest())
        seal = _seal_key(self._secret, org_id, key)
        mine = _running(secrets.token_hex(16), fp)
        current = await self.store.claim(name, mine, self.lease)
        if current is None:
            current = await self._committed(name, mine)
        if current is None:
            slot.claim = Claim(name, mine, fp, seal)
            slot.org_id = org_id
            slot.renewal = asyncio.create_task(self._renew(name, mine))
            return
        try:
            record = msgpack.unpackb(current, raw=False)
            state, stored_fp = record["s"], record["fp"]
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
            _log.warning("idempotency_record_malformed", record=name, error=str(exc)[:200])
            raise _unusable() from exc
        if stored_fp != fp:
            raise Problem(
                422,
                "idempotency-key-reused",
                f"this {HEADER} was used with a different request (method, path or body): "
                "use a new key for a new request",
            )
        if state != "done":
            raise _in_use()
        try:
            stored = _open(record, name, seal)
        except (InvalidTag, ValueError, KeyError, TypeError) as exc:
            raise _unusable() from exc
        raise Replayed(stored)

    async def _renew(self, name: str, claim: bytes) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.store.renew(name, claim, self.lease)
            except BusUnavailable as exc:
                _log.warning("idempotency_renew_failed", record=name, error=str(exc))

    async def end(self, slot: _Slot, stored: StoredResponse | None) -> None:
        """Keep ``stored`` as the key's answer, or (None) free the key for a retry."""
        claim = slot.claim
        if claim is None:
            return
        slot.claim = None
        if slot.renewal is not None:
            slot.renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slot.renewal
        try:
            if stored is None:
                await self.store.release(claim.name, claim.value)
            elif not await self.store.finish(
                claim.name, claim.value, _done(claim, stored), self.ttl
            ):
                _log.warning("idempotency_claim_lost", record=claim.name)
        except BusUnavailable as exc:  # the claim lapses with its lease
            _log.warning("idempotency_store_failed", record=claim.name, error=str(exc))


def _in_use() -> Problem:
    return Problem(
        409,
        "idempotency-key-in-use",
        f"a request with this {HEADER} is still in progress; retry shortly",
        headers={"Retry-After": "1"},
    )


def _unusable() -> Problem:
    return Problem(
        422,
        "idempotency-key-unusable",
        f"the answer stored for this {HEADER} cannot be read (was the control plane's key "
        "secret changed?); check whether the first request took effect, then use a new key",
    )


class Answer:
    """The JSON answer of a create, rendered before its record is written.

    With an ``Idempotency-Key``, :meth:`bind` seals it into the binding that the record's
    own transaction commits: a control plane that dies after that commit, before the
    answer reached the claim store, still has it for the retry (which replays it rather
    than making the record twice). Without a key, :meth:`bind` returns None.
    """

    def __init__(self, request: Request, status: int = 200) -> None:
        self._request = request
        self.status = status
        self.body: bytes | None = None

    def bind(self, model: BaseModel) -> IdempotencyBinding | None:
        body = bytes(JSONResponse(jsonable_encoder(model)).body)
        self.body = body
        slot = self._request.scope.get(_SLOT)
        if not isinstance(slot, _Slot) or slot.claim is None:
            return None
        stored = StoredResponse(self.status, (("content-type", "application/json"),), body)
        return slot.layer.binding(slot.claim, slot.org_id, stored)

    def response(self) -> Response:
        """The answer :meth:`bind` rendered (the bytes a replay returns)."""
        if self.body is None:
            raise RuntimeError("Answer.bind was not called")
        return Response(self.body, self.status, media_type="application/json")


def idempotency_dependency(
    principal: Callable[..., Awaitable[ApiKey]],
) -> Callable[..., Awaitable[None]]:
    """The dependency of a POST route that honours ``Idempotency-Key`` (after ``principal``:
    the key belongs to the caller's org)."""

    async def idempotency_key(
        request: Request,
        key: Annotated[ApiKey, Depends(principal)],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias=HEADER,
                # Documented, checked below (400, not FastAPI's 422): a header value cannot
                # begin or end with a space, so neither can a key that arrives intact.
                json_schema_extra={"pattern": _KEY_PATTERN, "minLength": 1, "maxLength": 255},
                description=(
                    "1-255 printable ASCII characters (a UUID v4 is a good one). A retry with "
                    "the same key and request gets the first answer again (Idempotent-"
                    "Replayed: true) instead of doing it twice; kept 24 h, per org."
                ),
            ),
        ] = None,
    ) -> None:
        if idempotency_key is None:
            return
        if not valid_key(idempotency_key):
            raise Problem(
                400,
                "idempotency-key-invalid",
                f"{HEADER} must be 1 to 255 printable ASCII characters",
            )
        slot = request.scope.get(_SLOT)
        if not isinstance(slot, _Slot):
            raise RuntimeError("IdempotencyMiddleware is not installed")
        fp = fingerprint(request.method, request.url.path, request.url.query, await request.body())
        await slot.layer.begin(slot, key.org_id, idempotency_key, fp)

    return idempotency_key


def _storable(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """Answers that ran the operation: no 5xx (retry), no refusal of the request's shape,
    no "in use" (another request's answer is committed under the key: the retry gets it)."""
    if status >= 500 or status == 413:
        return False
    if status in (409, 422):
        kind = dict(headers).get(b"content-type", b"")
        if b"json" in kind:
            try:
                problem_type = json.loads(body).get("type")
            except (ValueError, AttributeError):
                return True
            return problem_type != (_VALIDATION if status == 422 else _IN_USE)
    return True


class IdempotencyMiddleware:
    """Holds back the answer of a claimed request until it is stored, then sends it.

    Only POSTs that carry the header (upload URLs aside) come here. Such a request runs in
    a task of its own, shielded: a client that goes away mid-request does not cancel it,
    so its answer is still stored for the retry.
    """

    def __init__(self, app: Any, layer: Idempotency) -> None:
        self.app = app
        self.layer = layer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or path == "/v1/uploads"
            or path.startswith("/v1/uploads/")
            or not any(name.lower() == _HEADER_BYTES for name, _ in scope.get("headers") or ())
        ):
            await self.app(scope, receive, send)
            return
        slot = _Slot(self.layer)
        scope[_SLOT] = slot  # in place: outer middleware read what the router adds (route)
        task = asyncio.ensure_future(self._run(scope, receive, send, slot))
        task.add_done_callback(_retrieve)
        await asyncio.shield(task)

    async def _run(self, scope: dict[str, Any], receive: Any, send: Any, slot: _Slot) -> None:
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        complete = False

        async def keep(message: dict[str, Any]) -> None:
            nonlocal start, complete
            if slot.claim is None:
                await send(message)
            elif message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)

        try:
            await self.app(scope, receive, keep)
        except BaseException:
            await self.layer.end(slot, None)
            raise
        if slot.claim is None:
            return
        body = b"".join(chunks)
        if start is None or not complete:
            await self.layer.end(slot, None)
            return
        headers = list(start.get("headers") or [])
        if _storable(start["status"], headers, body):
            kept = tuple(
                (k.decode("latin-1").lower(), v.decode("latin-1"))
                for k, v in headers
                if k.decode("latin-1").lower() in _KEPT_HEADERS
            )
            await self.layer.end(slot, StoredResponse(start["status"], kept, body))
        else:
            await self.layer.end(slot, None)
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # seen: no "never retrieved" warning when the caller went away


def install_idempotency(
    app: FastAPI,
    bus: Bus,
    *,
    ttl: float,
    secret: str | None,
    repo: Repository | None = None,
) -> Idempotency:
    """Add the middleware and the replay handler; the store follows the bus (Redis or not);
    ``repo``: where creates commit their answers with their records."""
    store: IdempotencyStore = (
        RedisIdempotencyStore(bus.client) if isinstance(bus, RedisBus) else MemoryIdempotencyStore()
    )
    layer = Idempotency(store, ttl=ttl, secret=secret, repo=repo)
    app.state.idempotency = layer
    app.add_middleware(IdempotencyMiddleware, layer=layer)

    async def replay(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Replayed)
        return exc.stored.response()

    app.add_exception_handler(Replayed, replay)

    async def taken(request: Request, exc: Exception) -> Response:
        return problem_response(_in_use(), request)

    app.add_exception_handler(KeyAlreadyBound, taken)
    return app.state.idempotency  # type: ignore[no-any-return]
