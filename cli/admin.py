"""``clutchcall admin``: bootstrap orgs and API keys, rotate the playback signing key."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("admin", help="administer the control plane database")
    sub = p.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--db",
            default=None,
            metavar="URL",
            help="database URL (env: CLUTCHCALL_CONTROL_DB; default: the one `clutchcall up` "
            "uses, clutchcall.sqlite3 in the state directory; give `clutchcall control`'s "
            "--db to edit that one)",
        )
        sp.add_argument("--state-dir", default=None, metavar="DIR",
                        help="state directory of `clutchcall up` (default: $XDG_STATE_HOME/"
                        "clutchcall or ~/.local/state/clutchcall)")  # fmt: skip
        sp.add_argument("--json", action="store_true", help="print JSON")

    sp = sub.add_parser("create-org", help="create an org and print its first API key")
    sp.add_argument("name", help="display name of the org")
    sp.add_argument(
        "--org-id", help="choose the org id (org_<letters/digits>) instead of a new one"
    )
    common(sp)
    sp.set_defaults(func=_create_org)

    sp = sub.add_parser("create-api-key", help="create another API key for an org")
    sp.add_argument("org_id", help="the org (org_...) the key belongs to")
    common(sp)
    sp.set_defaults(func=_create_api_key)

    sp = sub.add_parser("revoke-api-key", help="revoke an API key by its id (key_...)")
    sp.add_argument("key_id", help="the key's id (key_...), as printed when it was created")
    common(sp)
    sp.set_defaults(func=_revoke_api_key)

    sp = sub.add_parser(
        "create-live-input",
        help="create a live input (optionally with chosen ids) and print its stream key",
    )
    sp.add_argument("org_id", help="the org (org_...) that owns the input")
    sp.add_argument("name", help="display name of the input")
    sp.add_argument("--ingest", choices=["fmp4", "rtmp"], default="fmp4",
                    help="how the broadcaster publishes: fmp4 (MoQT) or rtmp")  # fmt: skip
    sp.add_argument("--id", dest="input_id", help="choose the input id (li_...)")
    sp.add_argument("--external-id", help="choose the external input id (lv_...)")
    sp.add_argument("--public-host", default="127.0.0.1", metavar="HOST[:PORT]",
                    help="RTMP ingest host printed in rtmp_url")  # fmt: skip
    sp.add_argument(
        "--redis",
        default=os.environ.get("CLUTCHCALL_REDIS"),
        metavar="URL",
        help="cluster bus to write the stream-key record to (origins read it; "
        "env: CLUTCHCALL_REDIS)",
    )
    common(sp)
    sp.set_defaults(func=_create_live_input)

    sp = sub.add_parser(
        "rotate-signing-key",
        help="sign playback tokens with a fresh key (the old one stays in the JWKS until "
        "its tokens expire)",
    )
    common(sp)
    sp.add_argument("--redis", default=os.environ.get("CLUTCHCALL_REDIS"), metavar="URL",
                    help="cluster bus to publish the new JWKS on (env: CLUTCHCALL_REDIS)")  # fmt: skip
    sp.add_argument("--key-secret", default=os.environ.get("CLUTCHCALL_CONTROL_KEY_SECRET"),
                    help="secret the signing keys are sealed with, as for `clutchcall control "
                    "--key-secret` (env: CLUTCHCALL_CONTROL_KEY_SECRET)")  # fmt: skip
    sp.set_defaults(func=_rotate_signing_key)


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data) if args.json else text)


def _fail(message: str) -> int:
    print(f"clutchcall admin: {message}", file=sys.stderr)
    return 1


def _with_service(args: argparse.Namespace, action: Any, bus_url: str | None = None) -> Any:
    from cli.state import default_db
    from control.service import ControlService
    from control.settings import ControlSettings
    from control.store import open_repository
    from mesh.bus import connect_bus

    settings = ControlSettings(
        db=args.db or default_db(args.state_dir),
        redis=bus_url,
        key_secret=getattr(args, "key_secret", None),
        public_host=getattr(args, "public_host", "127.0.0.1"),
    )
    repo = open_repository(settings.db)

    async def go() -> Any:
        bus = connect_bus(bus_url)
        try:
            return await action(ControlService(repo, bus, settings))
        finally:
            await bus.close()

    try:
        # stdout carries only the command's result (--json is parsed by scripts);
        # anything the library logs while working goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            return asyncio.run(go())
    finally:
        repo.close()


def _guard(func: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        from control.errors import Problem
        from control.store import StoreError
        from mesh.bus import BusUnavailable

        try:
            return int(func(args))
        except Problem as exc:
            return _fail(exc.detail)
        except (StoreError, BusUnavailable, ValueError) as exc:
            return _fail(str(exc))

    return wrapper


@_guard
def _create_org(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name or len(name) > 200:
        return _fail("org name must be 1..200 characters")
    org, key, secret = _with_service(args, lambda svc: svc.create_org(name, org_id=args.org_id))
    _emit(
        args,
        {"org_id": org.id, "name": org.name, "key_id": key.id, "api_key": secret},
        f"org_id:  {org.id}\nkey_id:  {key.id}\napi_key: {secret}\n"
        "(the API key is shown only now; store it)",
    )
    return 0


@_guard
def _create_api_key(args: argparse.Namespace) -> int:
    key, secret = _with_service(args, lambda svc: svc.create_api_key(args.org_id))
    _emit(
        args,
        {"org_id": key.org_id, "key_id": key.id, "api_key": secret},
        f"key_id:  {key.id}\napi_key: {secret}\n(the API key is shown only now; store it)",
    )
    return 0


@_guard
def _create_live_input(args: argparse.Namespace) -> int:
    async def create(svc: Any) -> tuple[Any, str, str]:
        if await asyncio.to_thread(svc.repo.get_org, args.org_id) is None:
            raise ValueError(f"org {args.org_id!r} does not exist")
        li, stream_key = await svc.create_input(
            args.org_id,
            args.name,
            args.ingest,
            input_id=args.input_id,
            external_input_id=args.external_id,
        )
        return li, stream_key, svc.rtmp_url(li)

    li, stream_key, rtmp_url = _with_service(args, create, bus_url=args.redis)
    _emit(
        args,
        {
            "id": li.id,
            "org_id": li.org_id,
            "external_input_id": li.external_input_id,
            "namespace": li.namespace,
            "rtmp_url": rtmp_url,
            "stream_key": stream_key,
        },
        f"id:                {li.id}\nexternal_input_id: {li.external_input_id}\n"
        f"rtmp_url:          {rtmp_url}\nstream_key:        {stream_key}\n"
        "(the stream key is shown only now; store it)",
    )
    return 0


@_guard
def _revoke_api_key(args: argparse.Namespace) -> int:
    import time

    async def revoke(svc: Any) -> bool:
        return bool(await asyncio.to_thread(svc.repo.revoke_api_key, args.key_id, time.time()))

    if not _with_service(args, revoke):
        return _fail(f"no active API key {args.key_id!r}")
    _emit(args, {"key_id": args.key_id, "revoked": True}, f"revoked {args.key_id}")
    return 0


@_guard
def _rotate_signing_key(args: argparse.Namespace) -> int:
    key = _with_service(args, lambda svc: svc.rotate_signing_key(), bus_url=args.redis)
    _emit(args, {"kid": key.kid}, f"now signing with kid {key.kid}")
    return 0
