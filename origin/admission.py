"""Publisher admission at the origin: stream keys checked against the cluster bus.

The control plane writes ``clutchcall:streamkey:<external_input_id>`` records
(org, input, namespace and the sha256 of the key; docs/bus-contract.md, ``mesh.bus_contract``) and
announces rotations and deletions on ``clutchcall:streamkeys``.
:class:`BusStreamKeyAuthorizer` compares the sha256 of a presented key with the
record in constant time, caches records, and while :meth:`~BusStreamKeyAuthorizer.run`
follows the channel it calls ``on_key_revoked(external_input_id, event)`` as soon
as the key a live broadcast was admitted with stops being valid, so the origin
ends that broadcast (well within the contract's 1 s).

While Redis is unreachable, inputs whose record is cached keep being admitted
with the cached record; unknown ones are refused with "retry later".  After the
subscription reconnects (``resync``) the keys of live broadcasts are re-checked:
a record with a different hash ends the broadcast, a missing one does not (a
Redis restarted without persistence lost every record; a deletion missed during
the gap is enforced at the next publish).
:class:`AllowAllAuthorizer` (``--publish-auth none``) admits anyone and says so
loudly; it is for local development only.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import msgpack
import redis.exceptions
import structlog

from mesh.bus import Bus, BusUnavailable
from mesh.bus_contract import (
    STREAMKEY_PREFIX,
    STREAMKEYS_CHANNEL,
    MalformedLog,
    MalformedRecord,
    StreamKeyEvent,
    StreamKeyRecord,
    streamkey_key,
)
from origin.rtmp.publish import Admission as RtmpAdmission
from origin.rtmp.publish import Authorizer as RtmpAuthorizer

__all__ = [
    "STREAMKEYS_CHANNEL",
    "STREAMKEY_PREFIX",
    "Admission",
    "AdmissionStatistics",
    "AllowAllAuthorizer",
    "BusStreamKeyAuthorizer",
    "Refusal",
    "StreamKeyAuthorizer",
    "hash_stream_key",
    "rtmp_authorizer",
]


_INPUT_ID: Final = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_MAX_KEY: Final = 512
_BUS_DOWN = (BusUnavailable, redis.exceptions.RedisError, OSError)
_BAD_RECORD = (ValueError, TypeError, msgpack.UnpackException)
_log = structlog.get_logger(__name__)


class Refusal(enum.StrEnum):
    """Why a publisher was refused (logs and metrics; the encoder sees ``reason``)."""

    MALFORMED = "malformed"
    UNKNOWN_INPUT = "unknown_input"
    WRONG_KEY = "wrong_key"
    UNAVAILABLE = "unavailable"
    MISCONFIGURED = "misconfigured"


@dataclass(frozen=True, slots=True)
class Admission:
    """An authorizer's answer; ``reason`` is a human sentence when refused."""

    ok: bool
    reason: str = ""
    org_id: str = ""
    namespace: str = ""
    input_id: str = ""
    refusal: Refusal | None = None

    @classmethod
    def deny(cls, refusal: Refusal, reason: str) -> Admission:
        return cls(False, reason, refusal=refusal)


class StreamKeyAuthorizer(Protocol):
    async def authorize(self, external_input_id: str, stream_key: str) -> Admission: ...

    async def __call__(self, external_input_id: str, stream_key: str) -> Admission: ...


def hash_stream_key(stream_key: str) -> str:
    """The hex sha256 of the UTF-8 key, as stored in the record."""
    return hashlib.sha256(stream_key.encode("utf-8")).hexdigest()


def rtmp_authorizer(authorizer: StreamKeyAuthorizer) -> RtmpAuthorizer:
    """Adapt an authorizer to the RTMP server's callback type."""

    async def authorize(external_input_id: str, stream_key: str) -> RtmpAdmission:
        a = await authorizer.authorize(external_input_id, stream_key)
        return RtmpAdmission(a.ok, a.reason, a.org_id, a.namespace)

    return authorize


def _check_input(external_input_id: str, stream_key: str) -> Admission | None:
    if not _INPUT_ID.fullmatch(external_input_id):
        return Admission.deny(Refusal.MALFORMED, "malformed live input id")
    if not stream_key or len(stream_key) > _MAX_KEY:
        return Admission.deny(Refusal.MALFORMED, "missing or oversized stream key")
    return None


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    admitted: int
    refused: int
    cached: int
    live: int
    revoked: int
    bus_errors: int


KeyRevoked = Callable[[str, str], Awaitable[None] | None]


class BusStreamKeyAuthorizer:
    """Stream-key admission from bus records (see the module docstring)."""

    requires_key: Final = True

    def __init__(
        self,
        bus: Bus,
        *,
        on_key_revoked: KeyRevoked | None = None,
        cache_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._on_key_revoked = on_key_revoked
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._cache: dict[str, tuple[StreamKeyRecord, float]] = {}
        self._live: dict[str, str] = {}  # external input id -> sha256 it was admitted with
        self._admitted = self._refused = self._revoked = self._bus_errors = 0
        self._tasks: asyncio.TaskGroup | None = None
        self._malformed = MalformedLog()

    async def __call__(self, external_input_id: str, stream_key: str) -> Admission:
        return await self.authorize(external_input_id, stream_key)

    async def authorize(self, external_input_id: str, stream_key: str) -> Admission:
        admission = await self._authorize(external_input_id, stream_key)
        if admission.ok:
            self._admitted += 1
            self._live[external_input_id] = hash_stream_key(stream_key)
            _log.info("publisher_admitted", input=external_input_id, org=admission.org_id)
        else:
            self._refused += 1
            _log.warning(
                "publisher_refused",
                input=external_input_id[:128],
                refusal=admission.refusal.value if admission.refusal else "",
            )
        return admission

    def release(self, external_input_id: str) -> None:
        """The broadcast admitted for this input ended: stop watching its key."""
        self._live.pop(external_input_id, None)

    async def _authorize(self, external_input_id: str, stream_key: str) -> Admission:
        if (bad := _check_input(external_input_id, stream_key)) is not None:
            return bad
        try:
            record = await self._record(external_input_id)
        except _BUS_DOWN:
            return Admission.deny(Refusal.UNAVAILABLE, "stream key check unavailable, retry later")
        except _BAD_RECORD as exc:
            _log.error("bad_streamkey_record", input=external_input_id, error=str(exc))
            return Admission.deny(Refusal.MISCONFIGURED, "live input is misconfigured")
        if record is None:
            return Admission.deny(
                Refusal.UNKNOWN_INPUT, f"invalid stream key for {external_input_id}"
            )
        if not hmac.compare_digest(hash_stream_key(stream_key), record.sha256.lower()):
            return Admission.deny(Refusal.WRONG_KEY, f"invalid stream key for {external_input_id}")
        return Admission(True, "", record.org, record.namespace, record.input)

    async def _record(self, external_input_id: str) -> StreamKeyRecord | None:
        cached = self._cache.get(external_input_id)
        if cached is not None and self._clock() - cached[1] < self._cache_ttl:
            return cached[0]
        try:
            raw = await self._bus.get(streamkey_key(external_input_id))
        except _BUS_DOWN:
            self._bus_errors += 1
            if cached is not None:
                return cached[0]  # keep admitting from what we knew while Redis is away
            raise
        if raw is None:
            self._cache.pop(external_input_id, None)
            return None
        record = StreamKeyRecord.decode(raw)
        self._cache[external_input_id] = (record, self._clock())
        return record

    async def run(self) -> None:
        """Follow ``clutchcall:streamkeys`` until cancelled (revocation callbacks run here)."""
        async with asyncio.TaskGroup() as tg, self._bus.subscribe(STREAMKEYS_CHANNEL) as messages:
            self._tasks = tg
            try:
                async for message in messages:
                    if message.resync:
                        # Rotations may have been missed: forget the cache, re-check live inputs.
                        self._cache.clear()
                        for external_input_id in list(self._live):
                            await self._recheck(external_input_id, "resync")
                        continue
                    try:
                        change = StreamKeyEvent.decode(message.data)
                    except MalformedRecord as exc:
                        self._malformed.report(
                            "bad_streamkey_message", repr(message.data)[:120], exc
                        )
                        continue
                    input_id, event = change.external_input_id, change.event
                    self._cache.pop(input_id, None)
                    if input_id in self._live:
                        await self._recheck(input_id, event)
            finally:
                self._tasks = None

    async def _recheck(self, external_input_id: str, event: str) -> None:
        admitted_with = self._live.get(external_input_id)
        if admitted_with is None:
            return
        try:
            record = await self._record(external_input_id)
            if record is None:
                # After a resync a missing record is ambiguous (a Redis restarted without
                # persistence has lost every record): only a definite change ends a
                # broadcast then. Otherwise "deleted" means what it says.
                still_valid = event == "resync"
            else:
                still_valid = hmac.compare_digest(admitted_with, record.sha256.lower())
        except _BUS_DOWN:
            # We cannot tell; an explicit rotation/deletion message means the old key is gone.
            still_valid = event == "resync"
        except _BAD_RECORD:
            still_valid = False
        if still_valid:
            return
        del self._live[external_input_id]
        self._revoked += 1
        _log.warning("stream_key_revoked", input=external_input_id, cause=event)
        if self._on_key_revoked is None:
            return
        result = self._on_key_revoked(external_input_id, event)
        if inspect.isawaitable(result) and self._tasks is not None:
            self._tasks.create_task(_guard(result, external_input_id))
        elif inspect.isawaitable(result):
            await _guard(result, external_input_id)

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            admitted=self._admitted,
            refused=self._refused,
            cached=len(self._cache),
            live=len(self._live),
            revoked=self._revoked,
            bus_errors=self._bus_errors,
        )


async def _guard(result: Awaitable[None], external_input_id: str) -> None:
    try:
        await result
    except Exception:
        _log.exception("key_revoked_callback_failed", input=external_input_id)


class AllowAllAuthorizer:
    """``--publish-auth none``: admits every well-formed publisher, with a stream key or
    without one. Development only."""

    requires_key: Final = False

    def __init__(self, *, org_id: str = "org_dev") -> None:
        self._org_id = org_id
        _log.warning(
            "publish_auth_disabled",
            message="PUBLISHER AUTHENTICATION IS DISABLED (--publish-auth none): anyone who "
            "can reach this origin can publish. Never run this in production.",
        )

    async def __call__(self, external_input_id: str, stream_key: str) -> Admission:
        return await self.authorize(external_input_id, stream_key)

    async def authorize(self, external_input_id: str, stream_key: str) -> Admission:
        if not _INPUT_ID.fullmatch(external_input_id):
            return Admission.deny(Refusal.MALFORMED, "malformed live input id")
        _log.warning("publisher_admitted_without_auth", input=external_input_id)
        namespace = f"stream/{self._org_id}/{external_input_id}"
        return Admission(True, "", self._org_id, namespace, external_input_id)
