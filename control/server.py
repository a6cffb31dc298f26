"""Run the control plane under uvicorn (``clutchcall control``)."""

from __future__ import annotations

import uvicorn

from control.app import create_app
from control.service import ControlService
from control.settings import ControlSettings
from control.signing import SealError

__all__ = ["parse_hostport", "serve"]


def parse_hostport(value: str, *, default_port: int = 8080) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (all interfaces)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, str(default_port)
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host, int(port)


def serve(settings: ControlSettings, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes in-flight requests, then exits)."""
    app = create_app(settings)
    service: ControlService = app.state.service
    try:
        service.check_signing_keys()
    except SealError as exc:
        service.repo.close()
        raise ValueError(f"{exc} (pass the same --key-secret the keys were sealed with)") from exc
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        lifespan="on",
    )
    uvicorn.Server(config).run()
