"""``clutchcall control``: the control plane HTTP API."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["register"]

DEFAULT_DB = "sqlite:///clutchcall-control.sqlite3"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "control",
        help="run the control plane HTTP API (live inputs, stream keys, playback tokens)",
        description="Serve the control plane API. OpenAPI document at /openapi.json, "
        "JWKS at /.well-known/jwks.json.",
    )
    p.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT", help="listen address")
    p.add_argument(
        "--db",
        default=os.environ.get("CLUTCHCALL_CONTROL_DB", DEFAULT_DB),
        metavar="URL",
        help="sqlite:///PATH (default, embedded) or postgresql://... (env CLUTCHCALL_CONTROL_DB)",
    )
    p.add_argument(
        "--redis",
        default=os.environ.get("CLUTCHCALL_REDIS"),
        metavar="URL",
        help="cluster bus (redis://...); default: in-process bus (env CLUTCHCALL_REDIS)",
    )
    p.add_argument(
        "--public-host",
        default="127.0.0.1",
        metavar="HOST[:PORT]",
        help="RTMP ingest host used in rtmp_url (rtmp://HOST/live/<external_input_id>)",
    )
    p.add_argument(
        "--relay-url",
        default="https://127.0.0.1:4443",
        metavar="URL",
        help="base of signed playback URLs: URL/<namespace>?token=<jwt>",
    )
    p.add_argument("--audience", default="clutchcall-playback", help="playback token aud claim")
    p.add_argument(
        "--key-secret",
        default=os.environ.get("CLUTCHCALL_CONTROL_KEY_SECRET"),
        help="secret sealing signing keys at rest (env CLUTCHCALL_CONTROL_KEY_SECRET)",
    )
    p.add_argument(
        "--auth-failure-limit",
        type=int,
        default=10,
        help="failed authentications per client and window before 429",
    )
    p.add_argument("--auth-failure-window", type=float, default=60.0, metavar="SECONDS")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from control.server import parse_hostport, serve
    from control.settings import ControlSettings
    from control.store import StoreError

    try:
        host, port = parse_hostport(args.http)
        settings = ControlSettings(
            db_url=args.db,
            bus_url=args.redis,
            public_host=args.public_host,
            relay_url=args.relay_url,
            audience=args.audience,
            key_secret=args.key_secret,
            auth_failure_limit=args.auth_failure_limit,
            auth_failure_window=args.auth_failure_window,
        )
        serve(settings, host, port)
    except (ValueError, StoreError) as exc:
        print(f"clutchcall control: {exc}", file=sys.stderr)
        return 2
    return 0
