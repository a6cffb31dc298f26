"""The assets API (``/v1/assets``) and the upload URL (``/v1/uploads``), docs/vod.md.

:func:`install_assets` adds the routes to the control plane's app, builds the upload
endpoint (storage, locks, packaging queue) and runs its background work in the
app's lifespan: the packaging worker and the upload sweeper (expiry, completion of
idle whole files, including uploads left open by a restart).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from control.assets_models import AssetList, AssetOut, CreateUpload, CreateUploadOut
from control.idempotency import Answer, idempotency_dependency
from control.models import PlaybackTicketOut, PlaybackUrlRequest, RevocationOut, at, ts
from control.service import ControlService, RevocationResult
from control.store import ApiKey
from vod.jobs import open_queue
from vod.locks import open_locks
from vod.uploads import UploadEndpoint

__all__ = ["install_assets"]

_log = structlog.get_logger("control.assets")
PAGE_MAX = 100
_ID = r"^as_[A-Za-z0-9]{1,64}$"


def _revocation(result: RevocationResult) -> RevocationOut:
    return RevocationOut(
        kind=result.kind,
        jti=result.target if result.kind == "jti" else None,
        sub=result.target if result.kind == "sub" else None,
        before=ts(result.before),
        expires_at=at(result.expires_at),
        revoked_at=at(result.revoked_at),
    )


def install_assets(
    app: FastAPI,
    service: ControlService,
    principal: Callable[..., Awaitable[ApiKey]],
    *,
    background: bool = True,
) -> UploadEndpoint:
    """Routes, upload endpoint and background work of on-demand assets."""
    settings = service.settings
    locks = open_locks(settings.redis)
    endpoint = UploadEndpoint(
        service,
        service.storage,
        locks,
        max_bytes=settings.max_upload_bytes,
        idle_seconds=settings.upload_idle_seconds,
        idle_fragmented_seconds=settings.upload_idle_fragmented_seconds,
        public_url=settings.public_url,
        metrics=service.metrics.vod,
    )
    app.state.uploads = endpoint
    queue = open_queue(
        settings.redis, concurrency=settings.packaging_concurrency, metrics=service.metrics.vod
    )
    service.packaging = queue
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            tasks = []
            if background:
                try:  # before the worker starts: jobs a stopped control plane lost
                    await service.recover_packaging()
                except Exception:
                    _log.exception("packaging_recovery_failed")
                tasks.append(asyncio.ensure_future(endpoint.run_maintenance()))
                tasks.append(asyncio.ensure_future(queue.run(service.on_packaging_event)))
            try:
                yield state
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await endpoint.close()
                await locks.close()
                close = getattr(queue, "close", None)
                if close is not None:
                    await close()

    app.router.lifespan_context = lifespan
    app.include_router(_router(endpoint, principal))
    return endpoint


def _router(endpoint: UploadEndpoint, principal: Callable[..., Awaitable[ApiKey]]) -> APIRouter:
    router = APIRouter()
    Key = Annotated[ApiKey, Depends(principal)]
    idempotent = [Depends(idempotency_dependency(principal))]  # control.idempotency

    def svc(request: Request) -> ControlService:
        service: ControlService = request.app.state.service
        return service

    Service = Annotated[ControlService, Depends(svc)]

    def base(request: Request) -> str:
        return endpoint.base_url(request)

    @router.post(
        "/v1/assets/uploads",
        status_code=201,
        tags=["assets"],
        dependencies=idempotent,
        response_model=CreateUploadOut,
    )
    async def create_asset_upload(
        body: CreateUpload, key: Key, service: Service, request: Request
    ) -> Response:
        # The answer is committed with the asset (Idempotency-Key: control.idempotency).
        answer = Answer(request, 201)
        await service.create_asset_upload(
            key.org_id,
            name=body.name,
            max_duration=body.maxDurationSeconds,
            expires_in=body.expiresInSeconds,
            require_signed=body.requireSignedUrls,
            meta=body.meta,
            size=body.size,
            answer=lambda token, asset: answer.bind(
                CreateUploadOut(
                    uploadUrl=endpoint.upload_url(request, token),
                    assetId=asset.id,
                    playbackId=asset.playback_id,
                    expiresAt=at(asset.upload_expires_at),
                    asset=service.asset_out(asset, base(request)),
                )
            ),
        )
        return answer.response()

    @router.get("/v1/assets", tags=["assets"])
    async def list_assets(
        key: Key,
        service: Service,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
        cursor: Annotated[
            str | None, Query(pattern=_ID, description="next_cursor of the previous page")
        ] = None,
    ) -> AssetList:
        rows, next_cursor = await service.list_assets(key.org_id, limit=limit, cursor=cursor)
        return AssetList(
            data=[service.asset_out(a, base(request)) for a in rows], next_cursor=next_cursor
        )

    @router.get("/v1/assets/{asset_id}", tags=["assets"])
    async def get_asset(asset_id: str, key: Key, service: Service, request: Request) -> AssetOut:
        return service.asset_out(await service.get_asset(key.org_id, asset_id), base(request))

    @router.delete("/v1/assets/{asset_id}", status_code=204, tags=["assets"])
    async def delete_asset(asset_id: str, key: Key, service: Service) -> Response:
        await service.delete_asset(key.org_id, asset_id)
        return Response(status_code=204)

    @router.post(
        "/v1/assets/{asset_id}/playback_urls",
        status_code=201,
        tags=["assets"],
        dependencies=idempotent,
    )
    async def create_asset_playback_url(
        asset_id: str, body: PlaybackUrlRequest, key: Key, service: Service, request: Request
    ) -> PlaybackTicketOut:
        ticket = await service.mint_asset_playback(
            key.org_id, asset_id, body.ttl_seconds, base(request)
        )
        return PlaybackTicketOut.of(ticket)

    @router.post("/v1/assets/{asset_id}/revoke_playback", tags=["assets"], dependencies=idempotent)
    async def revoke_asset_playback(asset_id: str, key: Key, service: Service) -> RevocationOut:
        return _revocation(await service.revoke_asset_playback(key.org_id, asset_id))

    # -- the upload URL (no API key: the token is the capability) ------------------------

    # A protocol endpoint (tus / IETF headers, no JSON body): documented in docs/vod.md.
    @router.post("/v1/uploads", tags=["uploads"], status_code=201, include_in_schema=False)
    async def create_upload(request: Request, key: Key) -> Response:
        """tus 1.0.0 / IETF resumable-upload creation with an API key: a new asset."""
        return await endpoint.create(request, key.org_id)

    @router.options("/v1/uploads", tags=["uploads"], include_in_schema=False)
    async def upload_discovery(request: Request) -> Response:
        return await endpoint.options(request)

    @router.api_route(
        "/v1/uploads/{token}",
        methods=["HEAD", "PATCH", "POST", "DELETE", "OPTIONS", "GET"],
        tags=["uploads"],
        include_in_schema=False,
    )
    async def upload(token: str, request: Request) -> Response:
        """The upload URL: the seed's form, tus 1.0.0, IETF drafts 6/7/8."""
        return await endpoint.handle(request, token)

    return router
