"""RFC 9457 problem details: every error the API returns is one of these.

Raise :class:`Problem` (or a helper below) anywhere in a request; the handlers
installed by :func:`install_problem_handlers` turn it, FastAPI's validation
errors, unknown routes and unexpected failures into
``application/problem+json`` bodies with ``type``, ``title``, ``status`` and
``detail``.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from control.errors import HTTP_TITLES, PROBLEM_BASE, PROBLEM_MEDIA_TYPE, Problem, not_found
from control.store import Conflict, StoreError
from mesh.bus import BusUnavailable

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "install_problem_handlers",
    "not_found",
    "problem_response",
]


_log = structlog.get_logger("control.problems")


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _jsonable_errors(exc.errors())
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        problem = Problem(
            422,
            "validation",
            f"request is invalid: {where}" if where else "request is invalid",
            title="Validation Failed",
            extra={"errors": errors},
        )
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTP_TITLES.get(exc.status_code, "")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        problem = Problem(exc.status_code, slug, detail, headers=headers)
        return problem_response(problem, request)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        problem = Problem(409, "conflict", "a resource with this id already exists")
        return problem_response(problem, request)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        _log.error("store_error", path=request.url.path, error=str(exc))
        problem = Problem(
            503,
            "storage-unavailable",
            "the database is unavailable; retry later",
            headers={"Retry-After": "5"},
        )
        return problem_response(problem, request)

    @app.exception_handler(BusUnavailable)
    async def _bus(request: Request, exc: BusUnavailable) -> JSONResponse:
        _log.error("bus_unavailable", path=request.url.path, error=str(exc))
        problem = Problem(
            503,
            "bus-unavailable",
            "the cluster bus (Redis) is unavailable, so origins and POPs could not learn of "
            "this change: nothing was changed; retry the request when it is back",
            headers={"Retry-After": "5"},
        )
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled_error", path=request.url.path)
        problem = Problem(500, "internal", "an unexpected error occurred")
        return problem_response(problem, request)
