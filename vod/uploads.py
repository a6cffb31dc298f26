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

Beside this module: :mod:`vod.uploads_forms` (what differs between the forms),
:mod:`vod.uploads_body` (a request body into the file), :mod:`vod.uploads_maintenance`
(idle completion, expiry), :mod:`vod.uploads_backend` (:class:`UploadInfo`,
:class:`UploadBackend`).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from control.errors import Problem
from control.problems import problem_response
from vod._headers import (
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
from vod.locks import UploadLocks
from vod.metrics import VodMetrics
from vod.storage import Storage
from vod.uploads_backend import UploadBackend, UploadInfo
from vod.uploads_body import DANGLING_AFTER, receive_into
from vod.uploads_forms import (
    declared_length,
    discovery_headers,
    patch_complete_flag,
    response_headers,
)
from vod.uploads_maintenance import UploadMaintenance

__all__ = ["DANGLING_AFTER", "TOKEN_PATTERN", "UploadBackend", "UploadEndpoint", "UploadInfo"]

TOKEN_PATTERN = re.compile(r"^up_[A-Za-z0-9_-]{43}$")
# A second writer waits this long for the lock (a writer silent DANGLING_AFTER seconds
# gives up when another request asks for it: vod.uploads_body).
LOCK_WAIT = 2.5


class UploadEndpoint(UploadMaintenance):
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
        self._forms: dict[str, str] = {}  # see UploadMaintenance

    # -- URLs and headers -------------------------------------------------------------

    def base_url(self, request: Request) -> str:
        return self.public_url or str(request.base_url).rstrip("/")

    def upload_url(self, request: Request, token: str) -> str:
        return f"{self.base_url(request)}/v1/uploads/{token}"

    def _headers_for(
        self, form: Form, request: Request, up: UploadInfo | None, offset: int | None
    ) -> dict[str, str]:
        return response_headers(
            form, request, up, offset, max_bytes=self.max_bytes, now=self._clock()
        )

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
        headers = discovery_headers(self.max_bytes)
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
            length, deferred = declared_length(form, request, None)
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

    async def _bind_from_request(self, form: Form, request: Request, up: UploadInfo) -> UploadInfo:
        length, deferred = declared_length(form, request, up)
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
        complete_flag = patch_complete_flag(form, request)
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
                written, finished, digest = await receive_into(
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
