"""The upload URL: one capability speaking three resumable-upload forms (docs/vod.md).

1. the seed's form (``Tus-Resumable: 2.0.0``): ``HEAD`` answers ``Upload-Offset``,
   ``PATCH`` appends (``application/offset+octet-stream``);
2. tus 1.0.0: core, creation (+ with-upload, defer-length), termination,
   expiration, checksum (sha1, sha256);
3. IETF resumable uploads at ``Upload-Draft-Interop-Version`` 6, 7 and 8.

:class:`UploadEndpoint` takes a Starlette request and returns a response; the state
of an upload (its asset, declared length, expiry) lives behind :class:`UploadBackend`
(the control plane's database), its bytes in :class:`vod.storage.Storage`, and one
writer at a time is enforced with :mod:`vod.locks`. The offset is the size of the
stored file, answered only after ``fsync``, so an upload survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any, BinaryIO, Protocol

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from control.errors import Problem
from control.problems import problem_response
from vod._headers import (
    TUS_EXTENSIONS,
    TUS_VERSIONS,
    Form,
    inconsistent,
    mismatch,
    parse_bool,
    parse_checksum,
    parse_int,
    parse_metadata,
    request_form,
    require_content_type,
    sync_close,
    too_large,
)
from vod.completion import FRAGMENTS, INCOMPLETE, completion
from vod.locks import UploadLocks
from vod.metrics import VodMetrics
from vod.storage import Storage

__all__ = ["TOKEN_PATTERN", "UploadBackend", "UploadEndpoint", "UploadInfo"]

_log = structlog.get_logger("vod.uploads")

TOKEN_PATTERN = re.compile(r"^up_[A-Za-z0-9_-]{43}$")
# A second writer waits this long for the lock; a writer silent this long gives up
# when another request asks for the lock.
LOCK_WAIT = 2.5
DANGLING_AFTER = 2.0
_TICK = 0.25
_REFRESH_EVERY = 1.0
_IETF_VERSIONS = frozenset({"6", "7", "8"})


@dataclass(frozen=True, slots=True)
class UploadInfo:
    asset_id: str
    playback_id: str
    org_id: str
    length: int | None
    deferred: bool
    expires_at: float
    completed: bool
    activity_at: float
    # The asset's status: "errored" before completion means the upload expired.
    status: str = "uploading"


class UploadBackend(Protocol):
    """What the upload URL needs from the control plane."""

    async def find_upload(self, token: str) -> UploadInfo | None: ...

    async def upload_of_asset(self, asset_id: str) -> UploadInfo | None: ...

    async def open_uploads(self) -> list[UploadInfo]: ...

    async def create_upload(
        self, org_id: str, *, name: str, length: int | None, meta: dict[str, str]
    ) -> tuple[str, UploadInfo]:
        """A new asset waiting for its upload; returns the token and the upload."""
        ...

    async def bind_length(self, asset_id: str, length: int | None, deferred: bool) -> None: ...

    async def record_progress(self, asset_id: str, offset: int, length: int | None) -> None:
        """Bytes stored so far (also marks activity: resets the idle timer)."""
        ...

    async def complete_upload(self, asset_id: str, size: int) -> None:
        """The whole file is stored: hand it to packaging."""
        ...

    async def expire_upload(self, asset_id: str) -> None: ...

    async def cancel_upload(self, asset_id: str) -> None: ...


class UploadEndpoint:
    def __init__(
        self,
        backend: UploadBackend,
        storage: Storage,
        locks: UploadLocks,
        *,
        max_bytes: int,
        idle_seconds: float,
        idle_fragmented_seconds: float = 30.0,
        public_url: str | None = None,
        clock: Any = time.time,
        metrics: VodMetrics | None = None,
    ) -> None:
        self.backend = backend
        self.storage = storage
        self.locks = locks
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.idle_fragmented_seconds = max(idle_seconds, idle_fragmented_seconds)
        self.public_url = public_url.rstrip("/") if public_url else None
        self._clock = clock
        self._timers: dict[str, asyncio.Task[None]] = {}
        self.metrics = metrics
        # The form of the last append to uploads of unknown length (they complete later,
        # by the idle check: the completion is counted under that form).
        self._forms: dict[str, str] = {}

    # -- URLs and headers -------------------------------------------------------------

    def base_url(self, request: Request) -> str:
        return self.public_url or str(request.base_url).rstrip("/")

    def upload_url(self, request: Request, token: str) -> str:
        return f"{self.base_url(request)}/v1/uploads/{token}"

    def _limit(self, version: str, up: UploadInfo | None) -> str:
        """``Upload-Limit``; interop 6 (draft 05) names the lifetime ``expires``."""
        max_size = self.max_bytes if up is None or up.length is None else up.length
        if up is None:
            return f"max-size={max_size}, min-size=0"
        age = max(0, int(up.expires_at - self._clock()))
        return f"max-size={max_size}, {'expires' if version == '6' else 'max-age'}={age}"

    def _headers_for(
        self, form: Form, request: Request, up: UploadInfo | None, offset: int | None
    ) -> dict[str, str]:
        out: dict[str, str] = {"Cache-Control": "no-store"}
        if offset is not None:
            out["Upload-Offset"] = str(offset)
        if up is not None and up.length is not None:
            out["Upload-Length"] = str(up.length)
        if form == "tus" or form == "seed":
            out["Tus-Resumable"] = "1.0.0" if form == "tus" else "2.0.0"
            if up is not None:
                if up.length is None and up.deferred and form == "tus":
                    out["Upload-Defer-Length"] = "1"
                if not up.completed:
                    out["Upload-Expires"] = formatdate(up.expires_at, usegmt=True)
        else:
            version = request.headers.get("upload-draft-interop-version", "8").strip()
            if version in _IETF_VERSIONS:
                out["Upload-Draft-Interop-Version"] = version
            out["Upload-Complete"] = "?1" if up is not None and up.completed else "?0"
            out["Upload-Limit"] = self._limit(version, up)
        return out

    def _respond(self, request: Request, response: Response) -> Response:
        # CORS (settings.cors_origins) is the app's CORSMiddleware (control/web.py), which
        # exposes every upload header.
        return response

    def _problem(
        self, request: Request, form: Form | None, problem: Problem, up: UploadInfo | None
    ) -> Response:
        if self.metrics is not None:
            # Our types end in /<slug>; IANA's registered ones in #<slug>.
            reason = problem.type.rsplit("/", 1)[-1].rsplit("#", 1)[-1]
            self.metrics.upload_failures.labels(form or "unknown", reason).inc()
        if form is not None:
            extra = self._headers_for(form, request, up, None)
            extra.pop("Cache-Control", None)
            problem.headers = {**extra, **problem.headers}
        return self._respond(request, problem_response(problem, request))

    # -- entry points -----------------------------------------------------------------

    async def options(self, request: Request) -> Response:
        """tus/IETF discovery (no key, no token needed)."""
        headers = {
            "Tus-Resumable": "1.0.0",
            "Tus-Version": TUS_VERSIONS,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Checksum-Algorithm": "sha1,sha256",
            "Tus-Max-Size": str(self.max_bytes),
            "Upload-Limit": f"max-size={self.max_bytes}, min-size=0",
        }
        return self._respond(request, Response(status_code=204, headers=headers))

    async def create(self, request: Request, org_id: str) -> Response:
        """``POST /v1/uploads`` with an API key: a new asset and its upload (tus or IETF)."""
        form: Form | None = None
        try:
            form = request_form(request)
            if form == "seed":
                raise Problem(
                    400,
                    "use-create-upload",
                    "the Tus-Resumable 2.0.0 form has no creation: POST /v1/assets/uploads",
                )
            meta = parse_metadata(request.headers.get("upload-metadata"))
            name = (meta.get("name") or meta.get("filename") or "upload")[:200]
            length, deferred = self._declared_length(form, request, None)
            if length is not None and length > self.max_bytes:
                raise too_large(length, self.max_bytes)
            token, up = await self.backend.create_upload(
                org_id,
                name=name,
                length=length,
                meta={k: v[:500] for k, v in list(meta.items())[:16]},
            )
            if deferred:
                await self.backend.bind_length(up.asset_id, None, True)
                up = replace(up, deferred=True)
            return await self._create_on(request, form, token, up)
        except Problem as problem:
            return self._problem(request, form, problem, None)

    async def handle(self, request: Request, token: str) -> Response:
        """Every request on ``/v1/uploads/<token>``."""
        if request.method == "OPTIONS":
            return await self.options(request)
        form: Form | None = None
        up: UploadInfo | None = None
        try:
            form = request_form(request)
            up = await self.backend.find_upload(token) if TOKEN_PATTERN.match(token) else None
            if up is None:
                raise Problem(404, "not-found", "no such upload (or it was cancelled)")
            if not up.completed and (up.status == "errored" or self._clock() >= up.expires_at):
                await self.backend.expire_upload(up.asset_id)
                raise Problem(410, "upload-expired", "this upload expired; its bytes were removed")
            method = request.method
            if method == "HEAD" or (method == "GET" and form == "ietf"):
                return await self._head(request, form, up)
            if method == "PATCH":
                return await self._patch(request, form, up)
            if method == "POST" and form != "seed":
                return await self._create_on(request, form, token, up)
            if method == "DELETE" and form != "seed":
                return await self._cancel(request, form, up)
            raise Problem(
                405,
                "method-not-allowed",
                f"{method} is not part of this upload form",
                headers={"Allow": "HEAD, PATCH, POST, DELETE, OPTIONS"},
            )
        except Problem as problem:
            return self._problem(request, form, problem, up)

    # -- the operations ---------------------------------------------------------------

    def _declared_length(
        self, form: Form, request: Request, up: UploadInfo | None
    ) -> tuple[int | None, bool]:
        length = parse_int(request.headers, "upload-length")
        deferred = False
        if form == "tus" and request.method == "POST" and length is None:
            if request.headers.get("upload-defer-length") != "1":
                raise Problem(
                    400,
                    "length-required",
                    "tus creation needs Upload-Length or Upload-Defer-Length: 1",
                )
            deferred = True
        if up is not None and up.length is not None and length is not None:
            if length != up.length:
                raise inconsistent(up.length, length)
        return length, deferred

    async def _bind_from_request(self, form: Form, request: Request, up: UploadInfo) -> UploadInfo:
        length, deferred = self._declared_length(form, request, up)
        if length is not None and up.length is None:
            if length > self.max_bytes:
                raise too_large(length, self.max_bytes)
            size = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
            if length < size:
                raise inconsistent(size, length)
            await self.backend.bind_length(up.asset_id, length, False)
            return replace(up, length=length, deferred=False)
        if deferred and up.length is None and not up.deferred:
            await self.backend.bind_length(up.asset_id, None, True)
            return replace(up, deferred=True)
        return up

    async def _head(self, request: Request, form: Form, up: UploadInfo) -> Response:
        lock = await self.locks.acquire(up.asset_id, wait=LOCK_WAIT)
        if lock is None:
            raise self._locked(up)
        try:
            up = await self._bind_from_request(form, request, up)
            offset = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
            if not up.completed:
                await self.backend.record_progress(up.asset_id, offset, up.length)
        finally:
            await lock.release()
        if not up.completed:
            await self._maybe_complete(up, offset)
            up = await self.backend.upload_of_asset(up.asset_id) or up
        headers = self._headers_for(form, request, up, offset)
        status = 204 if form == "ietf" else 200
        return self._respond(request, Response(status_code=status, headers=headers))

    def _locked(self, up: UploadInfo) -> Problem:
        offset = self.storage.upload_size(up.asset_id)
        return Problem(
            423,
            "upload-locked",
            "another request is writing to this upload; retry shortly",
            title="Locked",
            headers={"Upload-Offset": str(offset), "Retry-After": "1"},
            extra={"offset": offset},
        )

    async def _create_on(
        self, request: Request, form: Form, token: str, up: UploadInfo
    ) -> Response:
        """POST to an upload URL (tus creation / IETF creation): bind the length, take a body."""
        up = await self._bind_from_request(form, request, up)
        has_body = (
            parse_int(request.headers, "content-length") or 0
        ) > 0 or "transfer-encoding" in request.headers
        offset = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
        complete_flag = parse_bool(request.headers, "upload-complete") if form == "ietf" else None
        if has_body or complete_flag:
            if form == "tus":
                require_content_type(request, "application/offset+octet-stream")
            up, offset = await self._append(request, form, up, claimed=0, complete=complete_flag)
        headers = self._headers_for(form, request, up, offset)
        headers["Location"] = self.upload_url(request, token)
        return self._respond(request, Response(status_code=201, headers=headers))

    async def _patch(self, request: Request, form: Form, up: UploadInfo) -> Response:
        claimed = parse_int(request.headers, "upload-offset")
        if claimed is None:
            raise Problem(400, "offset-required", "PATCH needs an Upload-Offset header")
        if form in ("seed", "tus"):
            require_content_type(request, "application/offset+octet-stream")
        elif request.headers.get("upload-draft-interop-version", "").strip() != "6":
            require_content_type(request, "application/partial-upload")
        complete_flag = None
        if form == "ietf":
            complete_flag = parse_bool(request.headers, "upload-complete")
            if complete_flag is None:
                raise Problem(400, "complete-required", "PATCH needs Upload-Complete (?0 or ?1)")
        up = await self._bind_from_request(form, request, up)
        up, offset = await self._append(request, form, up, claimed=claimed, complete=complete_flag)
        headers = self._headers_for(form, request, up, offset)
        if form == "ietf" and up.completed:
            body = {"assetId": up.asset_id, "playbackId": up.playback_id}
            return self._respond(request, JSONResponse(body, status_code=200, headers=headers))
        return self._respond(request, Response(status_code=204, headers=headers))

    async def _cancel(self, request: Request, form: Form, up: UploadInfo) -> Response:
        lock = await self.locks.acquire(up.asset_id, wait=LOCK_WAIT)
        if lock is None:
            raise self._locked(up)
        try:
            await self.backend.cancel_upload(up.asset_id)
            self._forms.pop(up.asset_id, None)
        finally:
            await lock.release()
        headers = {"Tus-Resumable": "1.0.0"} if form == "tus" else {}
        return self._respond(request, Response(status_code=204, headers=headers))

    # -- appending ----------------------------------------------------------------------

    async def _append(
        self,
        request: Request,
        form: Form,
        up: UploadInfo,
        *,
        claimed: int,
        complete: bool | None,
    ) -> tuple[UploadInfo, int]:
        """Append the request body at ``claimed``; returns the upload and the new offset."""
        checksum = parse_checksum(request.headers) if form == "tus" else None
        lock = await self.locks.acquire(up.asset_id, wait=LOCK_WAIT)
        if lock is None:
            raise self._locked(up)
        try:
            start = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
            if claimed != start:
                raise mismatch(start, claimed)
            limit = self.max_bytes if up.length is None else min(up.length, self.max_bytes)
            declared = parse_int(request.headers, "content-length")
            if up.completed:
                if declared:
                    raise Problem(
                        409,
                        "upload-complete",
                        "this upload is complete; nothing more can be appended",
                        headers={"Upload-Offset": str(start)},
                        extra={"offset": start},
                    )
                return up, start
            if complete and declared is not None:
                total = start + declared
                if up.length is not None and up.length != total:
                    raise inconsistent(up.length, total)
                limit = min(limit, total)
            if declared is not None and start + declared > limit:
                raise too_large(start + declared, limit)
            f = await asyncio.to_thread(self.storage.open_upload, up.asset_id)
            try:
                written, finished, digest = await self._receive_into(
                    request, f, lock, limit - start, checksum
                )
            finally:
                await asyncio.to_thread(sync_close, f)
            offset = start + written
            if checksum is not None and finished:
                algo, expected = checksum
                if digest != expected:
                    await asyncio.to_thread(self.storage.truncate_upload, up.asset_id, start)
                    raise Problem(
                        460,
                        "checksum-mismatch",
                        f"the {algo} checksum of the body does not match Upload-Checksum",
                        title="Checksum Mismatch",
                        headers={"Upload-Offset": str(start)},
                    )
            if self.metrics is not None and written:
                self.metrics.upload_bytes.labels(form).inc(written)
                if start == 0:
                    self.metrics.uploads_started.labels(form).inc()
            if finished and complete and up.length is None:
                await self.backend.bind_length(up.asset_id, offset, False)
                up = replace(up, length=offset)
            await self.backend.record_progress(up.asset_id, offset, up.length)
            if up.length is not None and offset == up.length:
                await self.backend.complete_upload(up.asset_id, offset)
                up = replace(up, completed=True)
                self._forms.pop(up.asset_id, None)
                self._count_completed(form)
        finally:
            await lock.release()
        if not up.completed and up.length is None:
            self._forms[up.asset_id] = form
            self.schedule_idle_check(up.asset_id)
        return up, offset

    async def _receive_into(
        self,
        request: Request,
        f: BinaryIO,
        lock: Any,
        room: int,
        checksum: tuple[str, bytes] | None,
    ) -> tuple[int, bool, bytes]:
        """Copy the body into ``f``: (bytes written, whole body received, its digest)."""
        hasher = hashlib.new(checksum[0]) if checksum else None
        written = 0
        last_bytes = last_refresh = time.monotonic()
        pending: asyncio.Future[Any] = asyncio.ensure_future(request.receive())
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=_TICK)
                now = time.monotonic()
                if not done:
                    if now - last_refresh >= _REFRESH_EVERY:
                        last_refresh = now
                        if not await lock.refresh():
                            return written, False, b""
                    if now - last_bytes >= DANGLING_AFTER and await lock.give_up_requested():
                        _log.info("upload_dangling_patch_gave_up", written=written)
                        return written, False, b""
                    continue
                message = pending.result()
                if message["type"] == "http.disconnect":
                    return written, False, b""
                chunk: bytes = message.get("body", b"")
                if chunk:
                    if written + len(chunk) > room:
                        f.flush()
                        await asyncio.to_thread(f.truncate, f.tell() - written)
                        raise too_large(written + len(chunk), room)
                    f.write(chunk)
                    written += len(chunk)
                    last_bytes = now
                    if hasher is not None:
                        hasher.update(chunk)
                    if now - last_refresh >= _REFRESH_EVERY:
                        last_refresh = now
                        if not await lock.refresh():
                            return written, False, b""
                if not message.get("more_body", False):
                    return written, True, hasher.digest() if hasher is not None else b""
                pending = asyncio.ensure_future(request.receive())
        finally:
            if not pending.done():
                pending.cancel()

    # -- completion of uploads of unknown length, expiry ---------------------------------

    def _count_completed(self, form: str) -> None:
        if self.metrics is not None:
            self.metrics.uploads_completed.labels(form).inc()

    def schedule_idle_check(self, asset_id: str, delay: float | None = None) -> None:
        """Complete the upload once it forms a whole MP4 and stayed idle (docs/vod.md)."""
        old = self._timers.pop(asset_id, None)
        if old is not None:
            old.cancel()
        wait = self.idle_seconds if delay is None else delay
        task = asyncio.get_running_loop().create_task(self._idle_check(asset_id, wait))
        self._timers[asset_id] = task
        task.add_done_callback(lambda t: self._forget_timer(asset_id, t))

    def _forget_timer(self, asset_id: str, task: asyncio.Task[None]) -> None:
        if self._timers.get(asset_id) is task:
            del self._timers[asset_id]

    async def _idle_check(self, asset_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            up = await self.backend.upload_of_asset(asset_id)
            if up is not None and not up.completed:
                await self._maybe_complete(up, None)
        except Exception:
            _log.exception("upload_idle_check_failed", asset=asset_id)

    async def _maybe_complete(self, up: UploadInfo, offset: int | None) -> None:
        if up.completed or up.length is not None:
            return
        if self._clock() - up.activity_at < self.idle_seconds - 0.01:
            self.schedule_idle_check(up.asset_id)
            return
        lock = await self.locks.acquire(up.asset_id, wait=0)
        if lock is None:
            return
        try:
            path = self.storage.upload_path(up.asset_id)
            size = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
            if size == 0:
                return
            verdict = await asyncio.to_thread(completion, path, size)
            if verdict == INCOMPLETE:
                return
            idle = self._clock() - up.activity_at
            if verdict == FRAGMENTS and idle < self.idle_fragmented_seconds - 0.01:
                # More fragments may come: wait the longer idle (docs/vod.md).
                self.schedule_idle_check(up.asset_id, self.idle_fragmented_seconds - idle)
                return
            await self.backend.bind_length(up.asset_id, size, False)
            await self.backend.complete_upload(up.asset_id, size)
            self._count_completed(self._forms.pop(up.asset_id, "unknown"))
            _log.info("upload_complete_by_boxes", asset=up.asset_id, size=size, kind=verdict)
        finally:
            await lock.release()

    async def _complete_if_full(self, up: UploadInfo) -> None:
        lock = await self.locks.acquire(up.asset_id, wait=0)
        if lock is None:
            return
        try:
            size = await asyncio.to_thread(self.storage.upload_size, up.asset_id)
            if up.length is not None and size == up.length:
                await self.backend.complete_upload(up.asset_id, size)
                self._count_completed(self._forms.pop(up.asset_id, "unknown"))
                _log.info("upload_complete_after_restart", asset=up.asset_id, size=size)
        finally:
            await lock.release()

    async def sweep(self) -> None:
        """Expire old uploads and complete idle whole ones (after a restart, too)."""
        now = self._clock()
        for up in await self.backend.open_uploads():
            try:
                if now >= up.expires_at:
                    await self.backend.expire_upload(up.asset_id)
                    form = self._forms.pop(up.asset_id, "unknown")
                    if self.metrics is not None:
                        self.metrics.upload_failures.labels(form, "expired").inc()
                elif now - up.activity_at < self.idle_seconds:
                    continue
                elif up.length is None:
                    await self._maybe_complete(up, None)
                else:  # all bytes stored, but the process stopped before completing it
                    await self._complete_if_full(up)
            except Exception:
                _log.exception("upload_sweep_failed", asset=up.asset_id)

    async def run_maintenance(self, interval: float = 5.0) -> None:
        """:meth:`sweep` until cancelled (in the control plane's lifespan)."""
        while True:
            await self.sweep()
            await asyncio.sleep(min(interval, max(self.idle_seconds, 0.5)))

    async def close(self) -> None:
        for task in list(self._timers.values()):
            task.cancel()
        for task in list(self._timers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
