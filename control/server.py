"""Run the control plane under uvicorn (``clutchcall control``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from control.app import create_app
from control.service import ControlService
from control.settings import ControlSettings
from control.signing import SealError
from mesh.bus import Bus

__all__ = ["bind", "parse_hostport", "serve", "serve_async"]


def parse_hostport(value: str, *, default_port: int = 8080) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (all interfaces)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, str(default_port)
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host, int(port)


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    settings: ControlSettings = app.state.service.settings
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Forwarded headers only from the configured proxies: uvicorn's default trusts
        # anyone on loopback, and the auth-failure limiter counts by client address.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        lifespan="on",
    )


def _checked_app(settings: ControlSettings, bus: Bus | None = None) -> FastAPI:
    app = create_app(settings, bus=bus)
    service: ControlService = app.state.service
    try:
        service.check_signing_keys()
    except SealError as exc:
        service.repo.close()
        raise ValueError(f"{exc} (pass the same --key-secret the keys were sealed with)") from exc
    return app


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free port: read ``sock.getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def serve_async(
    settings: ControlSettings, sock: socket.socket, *, bus: Bus | None = None
) -> None:
    """Serve on ``sock`` inside a running event loop until cancelled (``clutchcall up``).

    ``bus`` shares an in-process bus with the origin and POP of the same process.
    The socket already listens, so clients may connect as soon as this is called.
    On cancellation the server shuts down gracefully (lifespan included).
    """
    server = _EmbeddedServer(_config(_checked_app(settings, bus), "", 0))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise


def serve(settings: ControlSettings, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes in-flight requests, then exits)."""
    uvicorn.Server(_config(_checked_app(settings), host, port)).run()
