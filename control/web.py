"""The browser side of the control plane: the SDK bundle, the web console, CORS.

- ``/sdk/streams.js`` (+ ``.map``, ``.d.ts``, ``types/``): ``web/dist`` as built by
  ``make install`` (``npm ci`` + ``web/build.mjs``); ``/sdk/config.json`` tells browser
  viewers and publishers where the relay is. Without a build: 503 problem JSON.
- ``/console/``: the web console (``web/console`` pages + ``web/dist/console`` script);
  ``/console/demo.json`` gives the demo org and key of ``clutchcall up`` to loopback callers.
- CORS for the origins in ``ControlSettings.cors_origins``: exact origins, ``"*"``, or a
  ``scheme://host:*`` pattern (any port; ``clutchcall up`` allows the localhost ones).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from control.problems import Problem, problem_response
from control.settings import ControlSettings

__all__ = ["EXPOSED_HEADERS", "WEB_DIR", "cors_options", "install_web"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# Headers a browser client must be able to read (the upload protocols of docs/vod.md).
EXPOSED_HEADERS = [
    "Idempotent-Replayed",  # control.idempotency: this answer is a stored one
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Complete",
    "Upload-Limit",
    "Upload-Expires",
    "Upload-Defer-Length",
    "Upload-Draft-Interop-Version",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Retry-After",
    "ETag",
]


def cors_options(origins: tuple[str, ...]) -> dict[str, Any]:
    """CORSMiddleware arguments for ``cors_origins`` (``scheme://host:*`` = any port)."""
    exact = [o.rstrip("/") for o in origins if not o.endswith(":*")]
    patterns = [re.escape(o[:-2]) + r"(:[0-9]{1,5})?" for o in origins if o.endswith(":*")]
    return {
        "allow_origins": exact,
        "allow_origin_regex": "|".join(patterns) if patterns else None,
        "allow_methods": ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
        "allow_headers": ["*"],
        "expose_headers": EXPOSED_HEADERS,
        "allow_credentials": False,
        "max_age": 600,
    }


class _BuiltFiles:
    """Static files of a build output: 503 when it is missing, GET/HEAD only, revalidated."""

    def __init__(self, directory: Path, marker: Path, *, html: bool, cors: bool) -> None:
        self.marker = marker
        self.cors = cors
        self.files = StaticFiles(directory=directory, html=html, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.files(scope, receive, send)
            return
        problem: Problem | None = None
        if scope["method"] not in ("GET", "HEAD"):
            problem = Problem(
                405, "method-not-allowed", "only GET and HEAD", headers={"Allow": "GET, HEAD"}
            )
        elif not self.marker.is_file():
            problem = Problem(
                503,
                "sdk-not-built",
                "SDK not built: run make install (npm ci and the web build in web/)",
                title="Service Unavailable",
                headers={"Retry-After": "60"},
            )
        if problem is not None:
            await problem_response(problem)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-cache"
                headers["X-Content-Type-Options"] = "nosniff"
                if self.cors:
                    headers["Access-Control-Allow-Origin"] = "*"
                path = str(scope.get("path", ""))
                if path.endswith(".d.ts") or path.endswith(".map"):
                    headers["Content-Type"] = "text/plain; charset=utf-8"
            await send(message)

        await self.files(scope, receive, send_with_headers)


class _Console:
    """``/console/``: pages from web/console, the built script from web/dist/console."""

    def __init__(self, web_dir: Path) -> None:
        marker = web_dir / "dist" / "console" / "app.js"
        self.pages = _BuiltFiles(web_dir / "console", marker, html=True, cors=False)
        self.built = _BuiltFiles(web_dir / "dist" / "console", marker, html=False, cors=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if path.endswith(".js") or path.endswith(".js.map"):
            await self.built(scope, receive, send)
        else:
            await self.pages(scope, receive, send)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def install_web(app: FastAPI, settings: ControlSettings, web_dir: Path = WEB_DIR) -> None:
    """Serve /sdk/ and /console/ and answer CORS for ``settings.cors_origins``."""
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origins))

    @app.get("/sdk/config.json", include_in_schema=False)
    async def sdk_config() -> JSONResponse:
        return JSONResponse(
            {"relay_url": settings.relay_url, "publish_url": settings.publish_url},
            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
        )

    @app.get("/console/demo.json", include_in_schema=False)
    async def console_demo(request: Request) -> JSONResponse:
        """The demo org and key ``clutchcall up`` made, for the console on this machine only."""
        host = request.client.host if request.client else ""
        if settings.console_demo is None or not _loopback(host):
            raise Problem(404, "not-found", "no demo sign-in is offered here")
        org_id, _, api_key = settings.console_demo.partition(":")
        return JSONResponse(
            {"org_id": org_id, "api_key": api_key}, headers={"Cache-Control": "no-store"}
        )

    @app.get("/console", include_in_schema=False)
    async def console_redirect() -> JSONResponse:
        return JSONResponse({}, status_code=308, headers={"Location": "/console/"})

    dist = web_dir / "dist"
    app.mount("/sdk", _BuiltFiles(dist, dist / "streams.js", html=False, cors=True), name="sdk")
    app.mount("/console", _Console(web_dir), name="console")
