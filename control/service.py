"""The control plane's behaviour, independent of HTTP.

:class:`ControlService` owns the repository (called in worker threads), the
cluster bus and the signing keys. Every change that origins or POPs must see is
written to the database first and then to the bus (docs/bus-contract.md); a periodic
resync re-writes the bus records from the database, so a bus outage or a Redis
restart converges without operator action.

Live status of an input: "live" while the mesh's route record
``clutchcall:route:<namespace>`` exists (the hosting origin's heartbeat keeps it).
Errors and other transitions may be reported on a channel owned here:

- ``clutchcall:input-status``: origins publish
  ``{"external_input_id", "status": "idle"|"live"|"error", "detail": str|None, "at": t}``;
  they may also keep the latest report as record ``clutchcall:input-status:<external_input_id>``,
  which the control plane reads after a bus resync. A ``live`` record carries a TTL
  refreshed by the origin's heartbeat, like the route, so neither outlives a dead origin.

Both are read the same way: "live" holds only while the route exists; once it is
gone a stored "live" (from a report of an origin that died without saying so) is
replaced by "idle", so the database never keeps a dead origin's input live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import structlog

from control.assets_service import AssetsMixin
from control.errors import Problem, not_found
from control.ids import new_api_key, new_id, new_jti, new_stream_key, sha256_hex, valid_id
from control.locks import RecordLocks
from control.metrics import ControlMetrics
from control.revocations import CH_REVOCATIONS, RevocationResult
from control.settings import MAX_PLAYBACK_TTL, MIN_PLAYBACK_TTL, ControlSettings
from control.signing import KeySealer, SealError, SignedToken, sign_playback_token
from control.signing_keys import KEY_JWKS, SigningKeysMixin
from control.store import (
    ApiKey,
    IdempotencyBinding,
    Ingest,
    LiveInput,
    Org,
    PlaybackToken,
    Repository,
)
from mesh.bus import Bus, BusMessage, BusUnavailable
from mesh.bus_contract import (
    INPUT_STATUS_CHANNEL,
    INPUT_STATUS_PREFIX,
    STREAMKEY_PREFIX,
    STREAMKEYS_CHANNEL,
    StreamKeyEvent,
    StreamKeyRecord,
    route_key,
    streamkey_key,
)

__all__ = [
    "CH_INPUT_STATUS",
    "CH_REVOCATIONS",
    "CH_STREAMKEYS",
    "KEY_JWKS",
    "ControlService",
    "PlaybackTicket",
    "RevocationResult",
]

CH_STREAMKEYS = STREAMKEYS_CHANNEL
# How often the database is checked for inputs changed by another process.
_INPUT_WATCH_INTERVAL = 1.0
CH_INPUT_STATUS = INPUT_STATUS_CHANNEL
_STATUSES = frozenset({"idle", "live", "error"})

_log = structlog.get_logger("control.service")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class PlaybackTicket:
    url: str
    token: str
    jti: str
    kid: str
    sub: str
    issued_at: float
    expires_at: int


class ControlService(AssetsMixin, SigningKeysMixin):
    def __init__(
        self,
        repo: Repository,
        bus: Bus,
        settings: ControlSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.bus = bus
        self.settings = settings
        self._clock = clock
        self._sealer = KeySealer(settings.key_secret)
        self.metrics = ControlMetrics()
        self._jwks_published: tuple[str, ...] = ()
        # Every change of a record kept in both stores holds its family's lock
        # ("streamkeys", "revocations", "signing-keys"; control.locks), so the database
        # and Redis change in the same order and cannot disagree.
        self.locks = RecordLocks(bus)
        # What the bus holds of each input (external id -> sha256), and the database's
        # change marker when it was last compared: see sync_changed_inputs.
        self._written: dict[str, str] = {}
        self._inputs_marker: tuple[int, float] | None = None
        # Receivers of emit_event (the webhook dispatcher registers itself here).
        self.event_sinks: list[Callable[[str, str, dict[str, Any]], Awaitable[object]]] = []

    async def _db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def emit_event(self, org_id: str, event: str, data: dict[str, Any]) -> None:
        """Hand ``event`` (``asset.ready``, ``live.started``, ...) to every sink; a failing
        sink is logged, never raised into the caller."""
        for sink in list(self.event_sinks):
            try:
                await sink(org_id, event, data)
            except Exception:
                _log.exception("event_sink_failed", org=org_id, event_type=event)

    async def _live_changed(self, li: LiveInput, status: str, at: float) -> None:
        """``live.started`` / ``live.ended`` when ``li`` (as stored before) changes to ``status``."""
        if (li.status == "live") == (status == "live"):
            return
        event = "live.started" if status == "live" else "live.ended"
        await self.emit_event(
            li.org_id,
            event,
            {
                "event_id": f"{event}:{li.external_input_id}:{round(at, 3)}",
                "id": li.id,
                "external_input_id": li.external_input_id,
                "name": li.name,
                "namespace": li.namespace,
                "status": status,
                "at": at,
            },
        )

    # -- orgs and API keys (also used by the admin CLI) -------------------------------

    async def create_org(self, name: str, *, org_id: str | None = None) -> tuple[Org, ApiKey, str]:
        """A new org and its first API key (``org_id`` lets an operator choose the id)."""
        now = self._clock()
        if org_id is not None and not valid_id(org_id, "org"):
            raise Problem(422, "validation", "org id must look like org_<1-64 letters/digits>")
        org = Org(org_id or new_id("org", now=now), name, now)
        await self._db(self.repo.create_org, org)
        key, secret = await self.create_api_key(org.id)
        return org, key, secret

    async def create_api_key(self, org_id: str) -> tuple[ApiKey, str]:
        if await self._db(self.repo.get_org, org_id) is None:
            raise not_found("org", org_id)
        secret = new_api_key()
        key = ApiKey(new_id("key"), org_id, sha256_hex(secret), self._clock())
        await self._db(self.repo.create_api_key, key)
        return key, secret

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The active API key with this secret, or None."""
        if not secret.startswith("ck_") or len(secret) > 256:
            return None
        key = await self._db(self.repo.find_api_key, sha256_hex(secret))
        if key is None or not key.active:
            return None
        return key

    # -- live inputs ----------------------------------------------------------------

    def rtmp_url(self, li: LiveInput) -> str:
        return f"rtmp://{self.settings.public_host}/live/{li.external_input_id}"

    async def _write_stream_key(self, li: LiveInput, event: str | None) -> None:
        await self.bus.set(
            streamkey_key(li.external_input_id),
            StreamKeyRecord(
                li.org_id, li.id, li.namespace, li.stream_key_sha256, li.stream_key_rotated_at
            ).encode(),
        )
        self._written[li.external_input_id] = li.stream_key_sha256
        if event is not None:
            await self.bus.publish(
                CH_STREAMKEYS,
                {"external_input_id": li.external_input_id, "event": event, "at": self._clock()},
            )

    async def create_input(
        self,
        org_id: str,
        name: str,
        ingest: str,
        *,
        input_id: str | None = None,
        external_input_id: str | None = None,
        answer: Callable[[LiveInput, str], IdempotencyBinding | None] | None = None,
    ) -> tuple[LiveInput, str]:
        """A new input and its stream key (operators may choose the ids, see admin CLI).

        ``answer`` renders the request's answer before the insert: its binding (an
        Idempotency-Key's) is committed in the input's own transaction."""
        now = self._clock()
        if input_id is not None and not valid_id(input_id, "li"):
            raise Problem(422, "validation", "input id must look like li_<1-64 letters/digits>")
        if external_input_id is not None and not valid_id(external_input_id, "lv"):
            raise Problem(422, "validation", "external id must look like lv_<1-64 letters/digits>")
        if ingest not in ("fmp4", "rtmp"):
            raise Problem(422, "validation", "ingest must be 'fmp4' or 'rtmp'")
        kind: Ingest = "rtmp" if ingest == "rtmp" else "fmp4"
        stream_key = new_stream_key()
        li = LiveInput(
            id=input_id or new_id("li", now=now),
            org_id=org_id,
            external_input_id=external_input_id or new_id("lv", now=now),
            name=name,
            ingest=kind,
            stream_key_sha256=sha256_hex(stream_key),
            stream_key_rotated_at=now,
            status="idle",
            status_detail=None,
            status_at=None,
            created_at=now,
            updated_at=now,
        )
        bound = None if answer is None else answer(li, stream_key)
        async with self.locks.hold("streamkeys"):
            await self._db(self.repo.insert_live_input, li, bound)
            try:
                await self._write_stream_key(li, None)
            except BusUnavailable:
                # Nobody has seen the key yet: undo, so a retry starts clean.
                await self._db(
                    self.repo.delete_live_input,
                    org_id,
                    li.id,
                    unbind=None if bound is None else bound.name,
                )
                raise
        _log.info("input_created", org=org_id, input=li.id, external_input_id=li.external_input_id)
        return li, stream_key

    async def _stored_input(self, org_id: str, input_id: str) -> LiveInput:
        if not valid_id(input_id, "li"):
            raise not_found("live input", input_id)
        li = await self._db(self.repo.get_live_input, org_id, input_id)
        if li is None:
            raise not_found("live input", input_id)
        return li

    async def get_input(self, org_id: str, input_id: str) -> LiveInput:
        """The input with its live status (see :meth:`with_live_status`)."""
        li = await self._stored_input(org_id, input_id)
        return (await self.with_live_status([li]))[0]

    async def with_live_status(self, inputs: list[LiveInput]) -> list[LiveInput]:
        """Fill in ``status`` from the mesh: an input is live while an origin routes its namespace.

        The route record (``clutchcall:route:<namespace>``, refreshed by the hosting
        origin's heartbeat) is the authority for "live"; otherwise an error reported
        on ``clutchcall:input-status`` stands until the next report, else "idle". If
        the bus is unreachable the last stored status is returned unchanged.
        """
        out: list[LiveInput] = []
        for li in inputs:
            try:
                route = await self.bus.get(route_key(li.namespace))
            except BusUnavailable:
                out.append(li)
                continue
            if route is not None:
                at = route.get("at")
                when = self._clock()
                if isinstance(at, int | float) and not isinstance(at, bool):
                    when = min(float(at), when)
                if li.status != "live":
                    # Remember the transition, so a stale error does not reappear later.
                    if await self._db(
                        self.repo.set_input_status, li.external_input_id, "live", None, when
                    ):
                        await self._live_changed(li, "live", when)
                out.append(replace(li, status="live", status_detail=None, status_at=when))
            elif li.status == "live":
                # The route expired (the origin ended or died): store the fall back to
                # idle too (a report stamped later than now still wins).
                when = self._clock()
                if await self._db(
                    self.repo.set_input_status, li.external_input_id, "idle", None, when
                ):
                    await self._live_changed(li, "idle", when)
                out.append(replace(li, status="idle", status_detail=None, status_at=when))
            else:
                out.append(li)
        return out

    async def list_inputs(
        self, org_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[LiveInput], str | None]:
        if cursor is not None and not valid_id(cursor, "li"):
            raise Problem(422, "validation", "cursor is not a value returned by this API")
        rows = await self._db(self.repo.list_live_inputs, org_id, limit=limit + 1, after=cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        return await self.with_live_status(rows), (rows[-1].id if more and rows else None)

    async def update_input(
        self, org_id: str, input_id: str, *, name: str | None, ingest: str | None
    ) -> LiveInput:
        await self._stored_input(org_id, input_id)
        li = await self._db(
            self.repo.update_live_input,
            org_id,
            input_id,
            name=name,
            ingest=ingest,
            now=self._clock(),
        )
        if li is None:
            raise not_found("live input", input_id)
        return (await self.with_live_status([li]))[0]

    async def delete_input(self, org_id: str, input_id: str) -> None:
        """Delete the input: origins end its broadcast, and its playback tokens are revoked.

        All of it or (BusUnavailable, StoreError) none: the revocation is written to both
        stores first, then the Redis stream-key record is deleted, then the database row;
        a failing step undoes the earlier ones before anything was announced."""
        li = await self._stored_input(org_id, input_id)
        record = streamkey_key(li.external_input_id)
        async with self.revoking_sub(org_id, li.external_input_id, "streamkeys"):
            await self.bus.delete(record)
            try:
                deleted = await self._db(self.repo.delete_live_input, org_id, input_id)
            except BaseException:
                with contextlib.suppress(BusUnavailable):  # else the resync restores it
                    await self._write_stream_key(li, None)
                raise
            self._written.pop(li.external_input_id, None)
            if deleted is None:  # deleted meanwhile by another process
                raise not_found("live input", input_id)
        try:
            await self.bus.publish(
                CH_STREAMKEYS,
                StreamKeyEvent(li.external_input_id, "deleted", self._clock()).encode(),
            )
        except BusUnavailable as exc:  # origins re-check their keys when the bus is back
            _log.warning("input_deleted_announce_failed", input=li.id, error=str(exc))
        _log.info("input_deleted", org=org_id, input=li.id)

    async def rotate_stream_key(self, org_id: str, input_id: str) -> tuple[LiveInput, str]:
        """A new key in the database and on the bus, or (BusUnavailable) neither changed.

        Rotations serialize; one that cannot write the bus record restores the old key in
        the database, so the old key keeps working and the unseen new one never does."""
        async with self.locks.hold("streamkeys"):
            old = await self._stored_input(org_id, input_id)
            stream_key = new_stream_key()
            li = await self._db(
                self.repo.set_stream_key, org_id, input_id, sha256_hex(stream_key), self._clock()
            )
            if li is None:
                raise not_found("live input", input_id)
            try:
                await self._write_stream_key(li, "rotated")
            except BusUnavailable:
                await self._db(
                    self.repo.set_stream_key, org_id, input_id,
                    old.stream_key_sha256, old.stream_key_rotated_at,
                )  # fmt: skip
                with contextlib.suppress(BusUnavailable):
                    await self._write_stream_key(old, None)  # if the record did get through
                raise
        self.metrics.stream_key_rotations.inc()
        _log.info("stream_key_rotated", org=org_id, input=li.id)
        return (await self.with_live_status([li]))[0], stream_key

    async def apply_status(self, data: dict[str, Any]) -> bool:
        """Apply one ``clutchcall:input-status`` report; malformed reports are ignored."""
        ext, status, at = data.get("external_input_id"), data.get("status"), data.get("at")
        detail = data.get("detail")
        if not isinstance(ext, str) or status not in _STATUSES:
            return False
        now = self._clock()
        if not isinstance(at, int | float) or isinstance(at, bool) or at != at:
            at = now
        # A node whose clock runs ahead must not pin the status against later reports.
        at = min(float(at), now + 5.0)
        if detail is not None and not isinstance(detail, str):
            detail = str(detail)
        before = await self._db(self.repo.live_input_by_external_id, ext)
        applied = await self._db(self.repo.set_input_status, ext, str(status), detail, at)
        self.metrics.status_reports.labels(str(applied).lower()).inc()
        if applied and before is not None:
            await self._live_changed(before, str(status), at)
        return applied

    # -- signing keys and playback --------------------------------------------------

    def playback_url(self, namespace: str, token: str) -> str:
        base = self.settings.relay_url.rstrip("/")
        return f"{base}/{namespace}?token={quote(token, safe='')}"

    async def mint_playback(self, org_id: str, input_id: str, ttl_seconds: int) -> PlaybackTicket:
        if not MIN_PLAYBACK_TTL <= ttl_seconds <= MAX_PLAYBACK_TTL:
            raise Problem(
                422,
                "ttl-out-of-range",
                f"ttl_seconds must be between {MIN_PLAYBACK_TTL} and {MAX_PLAYBACK_TTL}",
                title="TTL Out Of Range",
            )
        li = await self._stored_input(org_id, input_id)
        return await self.sign_ticket(
            org_id,
            resource_id=li.id,
            sub=li.external_input_id,
            namespace=li.namespace,
            ttl_seconds=ttl_seconds,
            url=lambda token: self.playback_url(li.namespace, token),
        )

    async def sign_ticket(
        self,
        org_id: str,
        *,
        resource_id: str,
        sub: str,
        namespace: str,
        ttl_seconds: int,
        url: Callable[[str], str],
    ) -> PlaybackTicket:
        """Sign and record a playback token for ``sub`` (a live input's lv_ or an asset's pb_)."""
        key = await self._active_key()
        try:
            signed: SignedToken = sign_playback_token(
                key,
                self._sealer,
                sub=sub,
                org=org_id,
                audience=self.settings.audience,
                namespace=namespace,
                jti=new_jti(),
                now=self._clock(),
                ttl_seconds=ttl_seconds,
            )
        except SealError as exc:
            _log.error("signing_key_unusable", kid=key.kid, error=str(exc))
            raise Problem(
                503,
                "signing-unavailable",
                "playback tokens cannot be signed right now (signing key unavailable)",
            ) from exc
        await self._db(
            self.repo.insert_playback_token,
            PlaybackToken(
                jti=signed.jti,
                org_id=org_id,
                input_id=resource_id,
                sub=sub,
                kid=signed.kid,
                issued_at=signed.issued_at,
                expires_at=signed.expires_at,
            ),
        )
        self.metrics.tokens_minted.inc()
        return PlaybackTicket(
            url=url(signed.token),
            token=signed.token,
            jti=signed.jti,
            kid=signed.kid,
            sub=sub,
            issued_at=signed.issued_at,
            expires_at=signed.expires_at,
        )

    async def revoke_input_playback(self, org_id: str, input_id: str) -> RevocationResult:
        """Revoke every token of the input issued up to now (later ones stay valid)."""
        li = await self._stored_input(org_id, input_id)
        result = await self._revoke_sub(org_id, li.external_input_id)
        _log.info("input_playback_revoked", org=org_id, input=li.id)
        return result

    # -- background work ----------------------------------------------------------------

    async def resync(self) -> None:
        """Re-write every bus record this service owns from the database."""
        now = self._clock()
        async with self.locks.hold("streamkeys"):  # no rotation between the read and the writes
            inputs = await self._db(self.repo.all_live_inputs)
            for li in inputs:
                await self._write_stream_key(li, None)
            known = {streamkey_key(li.external_input_id) for li in inputs}
            for key in await self.bus.keys(STREAMKEY_PREFIX + "*"):
                if key not in known:  # its input was deleted while the bus was away
                    await self.bus.delete(key)
        await self.resync_revocations()
        await self.resync_signing_keys()
        await self._db(self.repo.purge_expired, now)

    async def _read_status_records(self) -> None:
        for key in await self.bus.keys(INPUT_STATUS_PREFIX + "*"):
            record = await self.bus.get(key)
            if record is not None:
                await self.apply_status(record)

    async def run_status_listener(self) -> None:
        """Apply origin status reports until cancelled; survives bus outages."""
        while True:
            try:
                async with self.bus.subscribe(CH_INPUT_STATUS) as messages:
                    await self._read_status_records()
                    async for message in messages:
                        await self._on_status(message)
            except BusUnavailable as exc:
                _log.warning("status_listener_bus_unavailable", error=str(exc))
                await asyncio.sleep(1.0)

    async def _on_status(self, message: BusMessage) -> None:
        if message.resync:
            with contextlib.suppress(BusUnavailable):
                await self._read_status_records()
            return
        try:
            await self.apply_status(message.data)
        except Exception:
            _log.exception("status_report_failed", data=json.dumps(message.data, default=str))

    async def sync_changed_inputs(self) -> int:
        """Write the records of inputs another process created or changed in the database
        (``clutchcall admin create-live-input`` against a running stack); how many."""
        marker = await self._db(self.repo.live_inputs_marker)
        if marker == self._inputs_marker:
            return 0
        async with self.locks.hold("streamkeys"):
            inputs = await self._db(self.repo.all_live_inputs)
            changed = [
                li
                for li in inputs
                if self._written.get(li.external_input_id) != li.stream_key_sha256
            ]
            for li in changed:
                await self._write_stream_key(li, None)
            self._inputs_marker = marker
        if changed:
            _log.info("stream_keys_synced", inputs=len(changed))
        return len(changed)

    async def run_resync(self) -> None:
        """Re-write bus records every ``resync_interval`` (first pass immediately), and
        every second those of inputs changed in the database by someone else."""
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while True:
            try:
                if loop.time() >= next_full:
                    next_full = loop.time() + self.settings.resync_interval
                    await self.resync()
                else:
                    await self.sync_changed_inputs()
            except BusUnavailable as exc:
                _log.warning("resync_bus_unavailable", error=str(exc))
                # Converge quickly once the bus is back.
                next_full = min(next_full, loop.time() + 1.0)
            except Exception:
                _log.exception("resync_failed")
            await asyncio.sleep(min(_INPUT_WATCH_INTERVAL, self.settings.resync_interval))
