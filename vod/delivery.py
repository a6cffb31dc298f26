"""HTTPS delivery of packaged assets: ``/vod/<pb_id>/…`` (docs/vod.md, "Delivery over HTTPS").

:func:`delivery_router` serves the catalog, the HLS playlists, the init and the
media segments of a ready asset. A signed asset needs a playback token on every
request (``?token=`` or ``Authorization: Bearer``), checked by the same
:class:`mesh.auth.TokenVerifier` the POPs use, against the JWKS and the
revocation set (``sub`` must be the ``pb_`` id); a playlist fetched with
``?token=`` lists every URI with the token. Segments are immutable: strong
``ETag``, ``If-None-Match`` (304), ``Range`` (206/416, by Starlette's
``FileResponse``), a year of caching; the catalog and playlists a short TTL.

In the control plane, :func:`control_plane_verifier` reads the keys from the
service itself and the revocations from the bus (followed while the app runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, FastAPI, Query, Request, Response
from starlette.responses import FileResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from control.errors import Problem
from control.problems import problem_response
from mesh.auth import AuthError, AuthFailure, TokenVerifier
from mesh.bus import Bus
from mesh.jwks import JwksProvider
from mesh.revocation import RevocationSet

from . import hls
from .metrics import VodMetrics, vod_kind

__all__ = [
    "IMMUTABLE",
    "LOCATION_TTL",
    "AssetLocation",
    "ControlPlaneJwks",
    "control_plane_verifier",
    "delivery_router",
    "mount_delivery",
]

_log = structlog.get_logger("vod.delivery")

IMMUTABLE: Final = "max-age=31536000, immutable"
SHORT: Final = "max-age=10"
LOCATION_TTL: Final = 2.0
_PB_ID = re.compile(r"^pb_[A-Za-z0-9]{1,64}$")
_ASSET_PATH = re.compile(
    r"^(?:catalog\.json|master\.m3u8|"
    r"(?P<track>[A-Za-z0-9][A-Za-z0-9_-]{0,63})/(?P<file>index\.m3u8|init\.mp4|(?:0|[1-9]\d{0,9})\.m4s))$"
)
_CORS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Accept-Ranges, "
    "Cache-Control, Content-Type",
}
_PREFLIGHT: Final = {
    **_CORS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Range, If-None-Match, If-Range",
    "Access-Control-Max-Age": "600",
}
AUTH_PROBLEM: Final = "auth_failed"
_Token = Annotated[
    str | None,
    Query(max_length=8192, description="A playback token (signed assets), or Authorization."),
]


@dataclass(frozen=True, slots=True)
class AssetLocation:
    """Where a ready asset's files are and who may read them."""

    dir: Path
    org_id: str
    playback_id: str
    require_signed: bool


Resolver = Callable[[str], Awaitable[AssetLocation | None]]


class ControlPlaneJwks(JwksProvider):
    """A :class:`JwksProvider` whose document comes from a callable (the control plane's own keys)."""

    def __init__(self, read: Callable[[], Awaitable[Mapping[str, Any]]], **kwargs: Any) -> None:
        kwargs.setdefault("max_age", 60.0)
        kwargs.setdefault("min_refresh_interval", 1.0)
        super().__init__("control-plane", **kwargs)
        self._read_document = read

    async def _read(self) -> Any:
        return await self._read_document()


def control_plane_verifier(
    jwks: Callable[[], Awaitable[Mapping[str, Any]]], revocations: RevocationSet | None
) -> TokenVerifier:
    """The POPs' verifier, with the keys from ``jwks()`` (``ControlService.jwks``)."""
    return TokenVerifier(ControlPlaneJwks(jwks), revocations=revocations)


class _LocationCache:
    """``resolve`` answers kept for ``ttl`` seconds (found ones only), at most ``size`` of them."""

    def __init__(
        self,
        resolve: Resolver,
        ttl: float,
        size: int = 10_000,
        metrics: VodMetrics | None = None,
    ) -> None:
        self._resolve = resolve
        self._ttl = ttl
        self._size = size
        self._metrics = metrics
        self._found: dict[str, tuple[float, AssetLocation]] = {}

    async def get(self, pb_id: str) -> AssetLocation | None:
        now = time.monotonic()
        hit = self._found.get(pb_id)
        if hit is not None and hit[0] > now:
            if self._metrics is not None:
                self._metrics.vod_location_lookups.labels("hit").inc()
            return hit[1]
        if self._metrics is not None:
            self._metrics.vod_location_lookups.labels("miss").inc()
        loc = await self._resolve(pb_id)
        if loc is None or self._ttl <= 0:
            self._found.pop(pb_id, None)
            return loc
        if len(self._found) >= self._size:
            self._found.clear()
        self._found[pb_id] = (now + self._ttl, loc)
        return loc


def mount_delivery(
    app: FastAPI,
    *,
    resolve: Resolver,
    jwks: Callable[[], Awaitable[Mapping[str, Any]]],
    bus: Bus,
    metrics: VodMetrics | None = None,
) -> None:
    """Serve ``/vod/`` from the control plane: keys from ``jwks()``, revocations from ``bus``."""
    revocations = RevocationSet()
    verifier = control_plane_verifier(jwks, revocations)
    app.include_router(
        delivery_router(resolve, verifier, revocations=revocations, bus=bus, metrics=metrics)
    )
    if metrics is not None:
        app.add_middleware(_VodCounter, metrics=metrics)
    # Outermost: /vod/ is CORS "*" even when the API's CORSMiddleware lists its origins.
    app.add_middleware(_VodPreflight)


class _VodCounter:
    """Counts ``/vod/`` answers and the body bytes sent, by kind (vod/metrics.py)."""

    def __init__(self, app: ASGIApp, metrics: VodMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")) if scope["type"] == "http" else ""
        if not path.startswith("/vod/") or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        kind = vod_kind(path.split("/", 3)[3] if path.count("/") >= 3 else "")
        sent = 0
        status = 0

        async def counting(message: Any) -> None:
            nonlocal sent, status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            self.metrics.vod_requests.labels(kind, str(status or 500)).inc()
            if sent and 200 <= status < 300:  # media sent, not problem bodies
                self.metrics.vod_bytes.labels(kind).inc(sent)


class _VodPreflight:
    """Answers CORS preflights under ``/vod/`` for any origin, before other middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "OPTIONS"
            and str(scope.get("path", "")).startswith("/vod/")
        ):
            await Response(status_code=204, headers=_PREFLIGHT)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _content_type(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    if path.endswith(".m3u8"):
        return "application/vnd.apple.mpegurl"
    if path.endswith(".m4s"):
        return "video/iso.segment"
    return "video/mp4"


def _auth_problem(status: int, detail: str) -> Problem:
    headers = {"WWW-Authenticate": 'Bearer realm="clutchcall-playback"'} if status == 401 else {}
    return Problem(status, AUTH_PROBLEM, detail, headers=headers)


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _auth_problem(401, "the Authorization header must be 'Bearer <playback token>'")
    return token.strip()


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    if header.strip() == "*":
        return True
    candidates = [c.strip() for c in header.split(",")]
    return any(c.removeprefix("W/") == etag for c in candidates)


def _stat_etag(path: Path) -> tuple[str, int]:
    st = path.stat()
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"', st.st_size


def delivery_router(
    resolve: Resolver,
    verify: TokenVerifier,
    *,
    revocations: RevocationSet | None = None,
    bus: Bus | None = None,
    location_ttl: float = LOCATION_TTL,
    metrics: VodMetrics | None = None,
) -> APIRouter:
    """The ``/vod/{pb_id}/…`` routes. With ``revocations`` and ``bus``, the router's lifespan
    keeps the revocation set current from the bus (as a POP does). A found location is
    reused for ``location_ttl`` seconds (a player asks for a segment every 2 s; a deleted
    asset's files are gone at once anyway)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if revocations is None or bus is None:
            yield
            return
        task = asyncio.create_task(revocations.run(bus), name="vod-revocations")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    router = APIRouter(tags=["on demand"], lifespan=lifespan)
    locations = _LocationCache(resolve, location_ttl, metrics=metrics)

    async def authorize(request: Request, loc: AssetLocation, token: str | None) -> str | None:
        """The query token to carry into playlists (None when not needed); raises on refusal."""
        if not loc.require_signed:
            return None
        header = _bearer(request)
        if token is not None and header is not None and token != header:
            raise _auth_problem(403, "two different playback tokens were given")
        presented = token if token is not None else header
        if not presented:
            raise _auth_problem(401, "this asset requires a signed playback token")
        try:
            claims = await verify.verify(presented, loc.playback_id)
        except AuthError as exc:
            if exc.reason is AuthFailure.KEYS_UNAVAILABLE:
                raise Problem(503, "keys-unavailable", "playback keys are not available") from exc
            status = 401 if exc.reason is AuthFailure.MISSING else 403
            _log.info("vod_auth_failed", playback_id=loc.playback_id, reason=exc.reason.value)
            raise _auth_problem(status, f"playback token refused: {exc.reason.value}") from exc
        if claims.org != loc.org_id:
            raise _auth_problem(403, "playback token refused: wrong_track")
        return token

    async def serve(request: Request, pb_id: str, path: str, token: str | None) -> Response:
        if not _PB_ID.match(pb_id):
            raise Problem(404, "not-found", f"no ready asset with playback id {pb_id!r}")
        loc = await locations.get(pb_id)
        if loc is None or loc.playback_id != pb_id:
            raise Problem(404, "not-found", f"no ready asset with playback id {pb_id!r}")
        query_token = await authorize(request, loc, token)
        if not _ASSET_PATH.match(path):
            raise Problem(404, "not-found", f"no file {path!r} in this asset")
        file = loc.dir / path
        if not await asyncio.to_thread(file.is_file):
            raise Problem(404, "not-found", f"no file {path!r} in this asset")
        scope = "private" if loc.require_signed else "public"
        headers = {**_CORS, "Vary": "Authorization"} if loc.require_signed else dict(_CORS)
        if path.endswith((".m3u8", ".json")):
            return await _small(request, file, path, query_token, f"{scope}, {SHORT}", headers)
        etag, _ = await asyncio.to_thread(_stat_etag, file)
        headers.update({"ETag": etag, "Cache-Control": f"{scope}, {IMMUTABLE}"})
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return FileResponse(file, media_type=_content_type(path), headers=headers)

    @router.get("/vod/{pb_id}/{path:path}", name="vod_file", response_model=None)
    async def vod_file(request: Request, pb_id: str, path: str, token: _Token = None) -> Any:
        try:
            return await serve(request, pb_id, path, token)
        except Problem as problem:
            return _with_cors(problem_response(problem, request))

    @router.head("/vod/{pb_id}/{path:path}", name="vod_file_head", response_model=None,
                 include_in_schema=False)  # fmt: skip
    async def vod_file_head(request: Request, pb_id: str, path: str, token: _Token = None) -> Any:
        try:
            return await serve(request, pb_id, path, token)
        except Problem as problem:
            return _with_cors(problem_response(problem, request))

    @router.options("/vod/{pb_id}/{path:path}", name="vod_preflight", include_in_schema=False)
    async def vod_preflight(pb_id: str, path: str) -> Response:
        return Response(status_code=204, headers=_PREFLIGHT)

    return router


def _with_cors(response: Response) -> Response:
    response.headers.update(_CORS)
    return response


async def _small(
    request: Request,
    file: Path,
    path: str,
    token: str | None,
    cache: str,
    headers: dict[str, str],
) -> Response:
    """Catalog and playlists: read whole, tokens added to playlist URIs, ETag of the bytes sent."""
    body = await asyncio.to_thread(file.read_bytes)
    if token is not None and path.endswith(".m3u8"):
        body = hls.with_token(body.decode("utf-8"), token).encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**headers, "ETag": etag, "Cache-Control": cache}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_content_type(path), headers=headers)
