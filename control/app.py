"""The control plane's HTTP API (FastAPI): routes, auth, the OpenAPI document.

Auth: ``Authorization: Bearer <api key>`` (per org). The optional header
``X-ClutchCall-Org`` names the org the caller expects; another org's id gives
404, as does any resource of another org. Repeated authentication failures
from one client address are throttled (429 + Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST

from control.assets import install_assets
from control.idempotency import HEADER as IDEMPOTENCY_HEADER
from control.idempotency import Answer, idempotency_dependency, install_idempotency
from control.limits import BodyLimit
from control.models import (
    ApiProblem,
    CreateLiveInput,
    LiveInputList,
    LiveInputOut,
    LiveInputWithKey,
    PlaybackTicketOut,
    PlaybackUrlRequest,
    RevocationOut,
    UpdateLiveInput,
    at,
    ts,
)
from control.problems import Problem, install_problem_handlers, not_found
from control.ratelimit import FailureLimiter, bucket_of
from control.relay_cert import install_relay_certificate
from control.service import ControlService, RevocationResult
from control.settings import ControlSettings
from control.store import ApiKey, LiveInput, Repository, open_repository
from control.web import install_web
from control.webhook_api import install_webhooks
from mesh.bus import Bus, RedisBus, connect_bus
from vod.delivery import mount_delivery

__all__ = ["create_app"]

_log = structlog.get_logger("control.app")
PAGE_MAX = 100
_bearer = HTTPBearer(auto_error=False, description="A per-org API key (ck_...).")

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such resource in this org"},
    422: {"description": "Invalid request"},
    429: {"description": "Too many failed authentication attempts"},
}


def _service(request: Request) -> ControlService:
    svc: ControlService = request.app.state.service
    return svc


Service = Annotated[ControlService, Depends(_service)]


async def _principal(
    request: Request,
    svc: Service,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_clutchcall_org: Annotated[
        str | None,
        Header(description="The org the caller expects its key to belong to.", max_length=64),
    ] = None,
) -> ApiKey:
    limiter: FailureLimiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    bucket = bucket_of(client, credentials.credentials if credentials is not None else None)
    async with limiter.checking(bucket):
        return await _authenticate(svc, limiter, bucket, client, credentials, x_clutchcall_org)


async def _authenticate(
    svc: ControlService,
    limiter: FailureLimiter,
    bucket: str,
    client: str,
    credentials: HTTPAuthorizationCredentials | None,
    x_clutchcall_org: str | None,
) -> ApiKey:
    wait = await limiter.begin(bucket)  # counted before the check: atomic under concurrency
    if wait is not None:
        svc.metrics.auth_failures.labels("throttled").inc()
        raise Problem(
            429,
            "auth-rate-limited",
            f"too many failed authentication attempts; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    key = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        key = await svc.authenticate(credentials.credentials)
    if key is None:
        await limiter.rejected(bucket)
        svc.metrics.auth_failures.labels("missing" if credentials is None else "invalid").inc()
        _log.info("auth_failed", client=client)
        raise Problem(
            401,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer ck_...)",
            headers={"WWW-Authenticate": 'Bearer realm="clutchcall"'},
        )
    await limiter.succeeded(bucket)
    if x_clutchcall_org is not None and x_clutchcall_org != key.org_id:
        raise not_found("org", x_clutchcall_org)
    return key


Principal = Annotated[ApiKey, Depends(_principal)]
# Every POST that creates or changes something honours Idempotency-Key (control.idempotency).
Idempotent = Depends(idempotency_dependency(_principal))


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def _no_unknown_query(request: Request) -> None:
    """Refuse query parameters the operation does not define (a typo must not pass silently)."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    allowed: set[str] = set()
    if isinstance(route, APIRoute):
        allowed = _query_names(route.dependant)
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise Problem(
            422,
            "validation",
            f"unknown query parameter(s): {', '.join(repr(u) for u in unknown)}",
            title="Validation Failed",
        )


def _out(svc: ControlService, li: LiveInput) -> LiveInputOut:
    return LiveInputOut.of(li, svc.rtmp_url(li))


def _revocation(result: RevocationResult) -> RevocationOut:
    return RevocationOut(
        kind=result.kind,
        jti=result.target if result.kind == "jti" else None,
        sub=result.target if result.kind == "sub" else None,
        before=ts(result.before),
        expires_at=at(result.expires_at),
        revoked_at=at(result.revoked_at),
    )


def _custom_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error response described as problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ApiProblem"] = ApiProblem.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ApiProblem"}}}
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault("422", {"description": "Invalid request"})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = problem
            if any(p.get("name") == IDEMPOTENCY_HEADER for p in operation.get("parameters", ())):
                responses.setdefault(
                    "409",
                    {"description": "A request with this Idempotency-Key is still in progress"},
                )
                responses.setdefault("400", {"description": "Malformed Idempotency-Key"})
                responses["422"]["description"] = (
                    "Invalid request, or this Idempotency-Key was used for another request"
                )
                for code, response in responses.items():
                    if code.isdigit() and int(code) >= 400:
                        response["content"] = problem
            responses["default"] = {"description": "Problem details", "content": problem}
    app.openapi_schema = doc
    return doc


_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def create_app(
    settings: ControlSettings | None = None,
    *,
    repo: Repository | None = None,
    bus: Bus | None = None,
    background: bool = True,
) -> FastAPI:
    """The ASGI app. ``repo``/``bus`` default to ``settings.db`` / ``settings.redis``.

    ``background`` runs the status listener and the periodic bus resync while the
    app is up (its lifespan); tests of pure request handling may turn it off.
    """
    settings = settings or ControlSettings()
    own_repo = repo is None
    repo = repo if repo is not None else open_repository(settings.db)
    own_bus = bus is None
    bus = bus if bus is not None else connect_bus(settings.redis)
    service = ControlService(repo, bus, settings)
    if settings.key_secret is None:
        _log.warning("signing_keys_unsealed", hint="set --key-secret to encrypt them at rest")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if background:
                async with asyncio.TaskGroup() as tg:
                    tasks = [
                        tg.create_task(service.run_status_listener()),
                        tg.create_task(service.run_resync()),
                    ]
                    try:
                        yield
                    finally:
                        for task in tasks:
                            task.cancel()
            else:
                yield
        finally:
            if own_bus:
                await bus.close()
            if own_repo:
                repo.close()

    # /docs and /redoc load Swagger UI and ReDoc from us (/docs-assets/), never a CDN.
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="ClutchCall Streams control plane",
        version="1.0.0",
        description=(
            "Live inputs, stream keys, signed playback URLs (ES256 JWT, JWKS at "
            "/.well-known/jwks.json) and revocations. Errors are RFC 9457 problem details. "
            "Playback URLs have the form <relay_url>/<namespace>?token=<jwt>."
        ),
        lifespan=lifespan,
        responses=_ERRORS,
        dependencies=[Depends(_no_unknown_query)],
        # operationId = the handler's name (create_live_input, ...), stable for generators.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.service = service
    app.state.limiter = FailureLimiter(
        settings.auth_failure_limit,
        settings.auth_failure_window,
        redis_client=bus.client if isinstance(bus, RedisBus) else None,
    )
    install_problem_handlers(app)
    app.add_middleware(BodyLimit)
    # Outside BodyLimit: it sees (and stores) the answer the client gets.
    install_idempotency(
        app, bus, ttl=settings.idempotency_ttl, secret=settings.key_secret, repo=repo
    )

    @app.middleware("http")
    async def _docs_stay_local(request: Request, call_next: Any) -> Any:
        # ReDoc's bundle hard-codes a logo on a CDN: the docs pages may load nothing
        # from elsewhere, so they work offline and leak no reader to a third party.
        response = await call_next(request)
        if request.url.path in ("/docs", "/redoc"):
            response.headers["Content-Security-Policy"] = _DOCS_CSP
        return response

    @app.middleware("http")
    async def _measure(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            service.metrics.requests.labels(template, request.method, str(status)).inc()
            service.metrics.latency.labels(template).observe(time.perf_counter() - started)

    install_web(app, settings)  # /sdk/, /console/ and CORS (web/, docs/web-sdk.md)
    install_relay_certificate(app, settings)  # dev relays' certificate hash (docs/web-sdk.md)
    app.openapi = lambda: _custom_openapi(app)  # type: ignore[method-assign]
    _routes(app)
    install_assets(app, service, _principal, background=background)
    install_webhooks(app, service, _principal, background=background)
    mount_delivery(  # /vod/
        app, resolve=service.vod_location, jwks=service.jwks, bus=bus, metrics=service.metrics.vod
    )
    return app


def _routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"], responses={})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(svc: Service) -> Response:
        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "Not ready"}})
    async def readyz(svc: Service) -> dict[str, Any]:
        version = await asyncio.to_thread(svc.repo.schema_version)
        if not await svc.bus.ping():
            raise Problem(503, "bus-unavailable", "the cluster bus is unreachable")
        return {"status": "ready", "schema_version": version}

    @app.get("/.well-known/jwks.json", tags=["playback"])
    async def jwks(svc: Service) -> JSONResponse:
        document = await svc.jwks()
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})

    @app.post(
        "/v1/live_inputs",
        status_code=201,
        tags=["live inputs"],
        dependencies=[Idempotent],
        response_model=LiveInputWithKey,
    )
    async def create_live_input(
        body: CreateLiveInput, key: Principal, svc: Service, request: Request
    ) -> Response:
        # The answer is committed with the input (Idempotency-Key: control.idempotency).
        answer = Answer(request, 201)
        await svc.create_input(
            key.org_id,
            body.name,
            body.ingest,
            answer=lambda li, stream_key: answer.bind(
                LiveInputWithKey(input=_out(svc, li), streamKey=stream_key)
            ),
        )
        return answer.response()

    @app.get("/v1/live_inputs", tags=["live inputs"])
    async def list_live_inputs(
        key: Principal,
        svc: Service,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
        cursor: Annotated[
            str | None,
            Query(
                pattern=r"^li_[A-Za-z0-9]{1,64}$",
                description="next_cursor of the previous page",
            ),
        ] = None,
    ) -> LiveInputList:
        rows, next_cursor = await svc.list_inputs(key.org_id, limit=limit, cursor=cursor)
        return LiveInputList(data=[_out(svc, li) for li in rows], next_cursor=next_cursor)

    @app.get("/v1/live_inputs/{input_id}", tags=["live inputs"])
    async def get_live_input(input_id: str, key: Principal, svc: Service) -> LiveInputOut:
        return _out(svc, await svc.get_input(key.org_id, input_id))

    @app.patch("/v1/live_inputs/{input_id}", tags=["live inputs"])
    async def update_live_input(
        input_id: str, body: UpdateLiveInput, key: Principal, svc: Service
    ) -> LiveInputOut:
        li = await svc.update_input(key.org_id, input_id, name=body.name, ingest=body.ingest)
        return _out(svc, li)

    @app.delete("/v1/live_inputs/{input_id}", status_code=204, tags=["live inputs"])
    async def delete_live_input(input_id: str, key: Principal, svc: Service) -> Response:
        await svc.delete_input(key.org_id, input_id)
        return Response(status_code=204)

    @app.post(
        "/v1/live_inputs/{input_id}/rotate_stream_key",
        tags=["live inputs"],
        dependencies=[Idempotent],
    )
    async def rotate_stream_key(input_id: str, key: Principal, svc: Service) -> LiveInputWithKey:
        li, stream_key = await svc.rotate_stream_key(key.org_id, input_id)
        return LiveInputWithKey(input=_out(svc, li), streamKey=stream_key)

    @app.post(
        "/v1/live_inputs/{input_id}/playback_urls",
        status_code=201,
        tags=["playback"],
        dependencies=[Idempotent],
    )
    async def create_playback_url(
        input_id: str, body: PlaybackUrlRequest, key: Principal, svc: Service
    ) -> PlaybackTicketOut:
        ticket = await svc.mint_playback(key.org_id, input_id, body.ttl_seconds)
        return PlaybackTicketOut.of(ticket)

    @app.post(
        "/v1/live_inputs/{input_id}/revoke_playback",
        tags=["playback"],
        dependencies=[Idempotent],
    )
    async def revoke_input_playback(input_id: str, key: Principal, svc: Service) -> RevocationOut:
        return _revocation(await svc.revoke_input_playback(key.org_id, input_id))

    @app.post("/v1/playback_tokens/{jti}/revoke", tags=["playback"], dependencies=[Idempotent])
    async def revoke_playback_token(jti: str, key: Principal, svc: Service) -> RevocationOut:
        return _revocation(await svc.revoke_token(key.org_id, jti))
