"""``clutchcall control``: the control plane HTTP API.

Settings (:class:`control.settings.ControlSettings`) come from defaults, a TOML
file (``--config``, table ``[control]``), the environment (``CLUTCHCALL_CONTROL_DB``,
``CLUTCHCALL_REDIS``, ``CLUTCHCALL_CONTROL_KEY_SECRET``, ...) and these flags:
``--http HOST:PORT``, ``--db URL``, ``--redis URL``, ``--public-host HOST[:PORT]``,
``--relay-url URL``, ``--audience``, ``--key-secret``, ``--auth-failure-limit``, ...
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from control.settings import ControlSettings
    from mesh.settings import add_settings_arguments

    p = subparsers.add_parser(
        "control",
        help="run the control plane HTTP API (live inputs, stream keys, playback tokens)",
        description="Serve the control plane API: OpenAPI at /openapi.json, JWKS at "
        "/.well-known/jwks.json, metrics at /metrics. Signed playback URLs are "
        "<relay-url>/<namespace>?token=<jwt>; rtmp_url is rtmp://<public-host>/live/<id>.",
    )
    add_settings_arguments(p, ControlSettings, "control")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli._errors import Listen, busy_address_message, is_busy
    from control.server import bind, parse_hostport, serve
    from control.settings import ControlSettings
    from control.store import StoreError
    from mesh.settings import settings_from_args

    try:
        settings = settings_from_args(ControlSettings, "control", args)
        host, port = parse_hostport(settings.http)
        try:  # a busy address is named before the app starts (uvicorn would only log errno)
            bind(host, port).close()
        except OSError as exc:
            if not is_busy(exc):
                raise
            listens: list[Listen] = [("--http", settings.http, "tcp", "control plane HTTP API")]
            print(busy_address_message("control", listens), file=sys.stderr)
            return 1
        serve(settings, host, port)
    except (ValueError, StoreError) as exc:
        print(f"clutchcall control: {exc}", file=sys.stderr)
        return 2
    return 0
