"""``clutchcall up``: the whole stack in one process - control plane, origin (with RTMP), a POP.

    clutchcall up [--http 127.0.0.1:8080] [--origin 127.0.0.1:4443] [--pop 127.0.0.1:4444]
                  [--rtmp 127.0.0.1:1935] [--db URL] [--state-dir DIR]
                  [--redis redis://...] [--org-id org_demo] [--info-file up.json]

Without ``--redis`` the nodes share an in-process bus (the embedded mode: one
process only); with it they use that Redis, so more origins/POPs started with
``clutchcall origin|pop --redis ...`` join the same cluster (give them the same
``CLUTCHCALL_CLUSTER_KEY``; without one ``up`` makes a random cluster key). The origin and the
POP get a self-signed certificate for ``localhost`` and ``127.0.0.1``; its path
is printed (``CLUTCHCALL_CAFILE=<path>`` makes the SDK and ``clutchcall watch``
trust it). A demo org (``--org-id``) is created if needed, with a fresh API key
on every start. ``--info-file`` writes ``base_url``, ``org_id``, ``api_key``,
``rtmp_url``, ``relay_url`` (plus ``publish_url``, ``cafile`` and the Prometheus
``metrics_url``, ``origin_metrics_url``, ``pop_metrics_url``) as JSON; the same
endpoints are printed. The origin's and the POP's ops ports (``/metrics``,
``/healthz``, ``/readyz``) are ``--origin-ops`` and ``--pop-ops`` (default: any free port).
Runs until SIGINT/SIGTERM, then drains the nodes.

State lives in the state directory (``--state-dir``; default
``$XDG_STATE_HOME/clutchcall``, i.e. ``~/.local/state/clutchcall``), not in the
working tree: the database ``clutchcall.sqlite3`` (shared with ``clutchcall admin``),
the certificate ``certs/cert.pem`` (kept across restarts while valid) and on-demand
uploads and assets under ``data/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cli._errors import Listen, busy_address_message, is_busy

__all__ = ["LOCAL_ORIGINS", "StackInfo", "register", "run", "running_stack"]

# Browser apps on this machine (any port) may call the API: the SDK's recipes run as printed.
LOCAL_ORIGINS = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
)


@dataclass(frozen=True, slots=True)
class StackInfo:
    base_url: str
    org_id: str
    api_key: str
    rtmp_url: str
    relay_url: str
    publish_url: str
    cafile: str
    metrics_url: str
    origin_metrics_url: str
    pop_metrics_url: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run control plane + origin (RTMP) + POP in one process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser)
    parser.add_argument("--info-file", type=Path, help="write the endpoints and key as JSON")
    parser.add_argument("--origin-ops", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="origin /metrics, /healthz, /readyz (default: a free port)")  # fmt: skip
    parser.add_argument("--pop-ops", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="POP /metrics, /healthz, /readyz (default: a free port)")  # fmt: skip
    parser.add_argument("--quic-stack", choices=("aioquic", "picoquic"), default=None,
                        help="QUIC stack of the origin and the POP (default: the nodes' "
                        "quic_stack default)")  # fmt: skip
    parser.set_defaults(func=run)


def add_stack_arguments(parser: argparse.ArgumentParser, *, port_zero: bool = False) -> None:
    def default(port: int) -> str:
        return "127.0.0.1:0" if port_zero else f"127.0.0.1:{port}"

    parser.add_argument("--http", default=default(8080), metavar="HOST:PORT",
                        help="control plane HTTP API")  # fmt: skip
    parser.add_argument("--origin", default=default(4443), metavar="HOST:PORT",
                        help="origin MoQT (publishers), raw QUIC + WebTransport")  # fmt: skip
    parser.add_argument("--pop", default=default(4444), metavar="HOST:PORT",
                        help="POP MoQT (viewers), raw QUIC + WebTransport")  # fmt: skip
    parser.add_argument("--rtmp", default=default(1935), metavar="HOST:PORT",
                        help="origin RTMP ingest ('' disables it)")  # fmt: skip
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="control plane database (sqlite:///PATH or postgresql://...; "
        "env: CLUTCHCALL_CONTROL_DB; default: clutchcall.sqlite3 in the state directory)",
    )
    parser.add_argument("--state-dir", default=None, metavar="DIR",
                        help="database, certificate and uploads (default: "
                        "$XDG_STATE_HOME/clutchcall or ~/.local/state/clutchcall)")  # fmt: skip
    parser.add_argument("--redis", default=os.environ.get("CLUTCHCALL_REDIS"), metavar="URL",
                        help="cluster bus (default: in-process; env: CLUTCHCALL_REDIS)")  # fmt: skip
    parser.add_argument("--org-id", default="org_demo", help="id of the demo org")
    parser.add_argument("--log-level", default="warning", help="log verbosity",
                        choices=["debug", "info", "warning", "error"])  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from mesh.logging import configure_logging

    configure_logging(node="up", role="up", level=args.log_level, json=False)
    try:
        return asyncio.run(_main(args))
    except (OSError, ValueError) as exc:
        if is_busy(exc):
            print(busy_address_message("up", _listens(args)), file=sys.stderr)
            return 1
        print(f"clutchcall up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _listens(args: argparse.Namespace) -> list[Listen]:
    return [
        ("--http", args.http, "tcp", "control plane HTTP API"),
        ("--origin", args.origin, "udp", "origin MoQT"),
        ("--pop", args.pop, "udp", "POP MoQT"),
        ("--rtmp", args.rtmp, "tcp", "RTMP ingest"),
        ("--origin-ops", getattr(args, "origin_ops", ""), "tcp", "origin /metrics"),
        ("--pop-ops", getattr(args, "pop_ops", ""), "tcp", "POP /metrics"),
    ]


async def _main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_stack(args) as info:
        print_endpoints(info)
        if args.info_file is not None:
            # Written whole and renamed into place: a script (or a test) that polls for
            # the file never reads it half-written.
            partial = args.info_file.with_name(args.info_file.name + ".partial")
            partial.write_text(info.to_json() + "\n")
            os.replace(partial, args.info_file)
        print("\nrunning; Ctrl-C stops", flush=True)
        await stop.wait()
    return 0


def print_endpoints(info: StackInfo) -> None:
    print(
        f"control plane  {info.base_url}   (OpenAPI: {info.base_url}/docs)\n"
        f"web console    {info.base_url}/console/   (browser SDK: {info.base_url}/sdk/streams.js)\n"
        f"publish (MoQT) {info.publish_url}\n"
        f"RTMP ingest    {info.rtmp_url}/<external_input_id>  (stream key as the stream name)\n"
        f"viewers (MoQT) {info.relay_url}\n"
        f"certificate    {info.cafile}  (export CLUTCHCALL_CAFILE={info.cafile})\n"
        f"metrics        control {info.metrics_url}\n"
        f"               origin  {info.origin_metrics_url}\n"
        f"               POP     {info.pop_metrics_url}\n"
        f"demo org       {info.org_id}\n"
        f"API key        {info.api_key}",
        flush=True,
    )


def _hostport(value: str) -> tuple[str, int]:
    from mesh.settings import parse_hostport

    return parse_hostport(value)


@contextlib.asynccontextmanager
async def running_stack(args: argparse.Namespace) -> AsyncIterator[StackInfo]:
    """Start control plane, origin and POP on one event loop; stop them on exit."""
    from cli.state import default_db, stack_certificate, state_dir
    from control.server import bind, serve_async
    from control.service import ControlService
    from control.settings import ControlSettings
    from control.store import open_repository
    from mesh.bus import connect_bus
    from mesh.settings import PopSettings
    from origin.node import OriginNode
    from origin.settings import OriginNodeSettings
    from pop import PopNode

    http_host, http_port = _hostport(args.http)
    pop_host = _hostport(args.pop)[0]
    state = state_dir(getattr(args, "state_dir", None))
    if args.db is None:
        args.db = default_db(state)
    cert, key = stack_certificate(state, ["localhost", "127.0.0.1"])
    bus = connect_bus(args.redis)
    common: dict[str, Any] = {"redis": args.redis, "log_json": False, "log_level": "warning",
                              "cluster_key": _cluster_key()}  # fmt: skip
    if getattr(args, "quic_stack", None):  # else each node's own default
        common["quic_stack"] = args.quic_stack
    origin = OriginNode(
        OriginNodeSettings(
            node_id="origin-up", quic=args.origin,
            http=getattr(args, "origin_ops", "127.0.0.1:0"),
            rtmp=args.rtmp or "", **common,
        ),
        certificate=cert, private_key=key, bus=bus,
    )  # fmt: skip
    pop = PopNode(
        PopSettings(node_id="pop-up", quic=args.pop, jwks="bus",
                    http=getattr(args, "pop_ops", "127.0.0.1:0"),
                    **common),
        certificate=cert, private_key=key, bus=bus,
    )  # fmt: skip
    sock = bind(http_host, http_port)
    control_host, control_port = sock.getsockname()[:2]
    # The org, its key and the playback signing key (JWKS on the bus) exist before
    # the POP starts, so its first token check needs no retry.
    org_id, api_key = await _bootstrap(
        ControlService, open_repository, ControlSettings(db=args.db, redis=args.redis),
        bus, args.org_id,
    )  # fmt: skip
    await pop.start()
    try:
        pop_addr = pop.quic_address
        relay_url = f"https://{_url_host(pop_host, pop_addr[0])}:{pop_addr[1]}"
        rtmp_public = ""
        await origin.start()
        try:
            rtmp = origin.rtmp_address
            if rtmp is not None:
                rtmp_public = f"{_url_host(_hostport(args.rtmp)[0], rtmp[0])}:{rtmp[1]}"
            settings = ControlSettings(
                http=f"{control_host}:{control_port}",
                db=args.db,
                redis=args.redis,
                public_host=rtmp_public or "127.0.0.1",
                relay_url=relay_url,
                cors_origins=LOCAL_ORIGINS,
                publish_url=_publish_url(args.origin, origin.quic_address),
                console_demo=f"{org_id}:{api_key}",
                data_dir=str(state / "data"),
                relay_certificate=str(cert),
                # A local stack: demo webhooks go to receivers on this machine.
                webhook_allow_private=True,
            )
            server = asyncio.ensure_future(serve_async(settings, sock, bus=bus))
            try:
                o_host, o_port = origin.quic_address
                base_url = f"http://{_url_host(http_host, control_host)}:{control_port}"
                yield StackInfo(
                    base_url=base_url,
                    org_id=org_id,
                    api_key=api_key,
                    rtmp_url=f"rtmp://{rtmp_public}/live" if rtmp_public else "",
                    relay_url=relay_url,
                    publish_url=f"moqt://{_url_host(_hostport(args.origin)[0], o_host)}:{o_port}",
                    cafile=str(cert),
                    metrics_url=f"{base_url}/metrics",
                    origin_metrics_url=_metrics_url(origin.http_address),
                    pop_metrics_url=_metrics_url(pop.http_address),
                )
            finally:
                server.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await server
        finally:
            await origin.drain(grace=1.0)
            await origin.stop()
    finally:
        await pop.drain(grace=1.0)
        await pop.stop()
        sock.close()
        await bus.close()


def _cluster_key() -> str:
    """The key the nodes' relay links authenticate with (docs/relay-links.md): the
    environment's, so nodes joining this stack's Redis can share it, else a fresh one."""
    import secrets

    return os.environ.get("CLUTCHCALL_CLUSTER_KEY") or secrets.token_urlsafe(32)


def _metrics_url(address: tuple[str, int]) -> str:
    return f"http://{_url_host('', address[0])}:{address[1]}/metrics"


def _publish_url(configured: str, bound: tuple[str, int]) -> str:
    """The origin's WebTransport URL (browser publishers)."""
    return f"https://{_url_host(_hostport(configured)[0], bound[0])}:{bound[1]}"


def _url_host(configured: str, bound: str) -> str:
    host = bound if configured in ("", "0.0.0.0", "::") else configured
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _bootstrap(
    service_cls: Any, open_repository: Any, settings: Any, bus: Any, org_id: str
) -> tuple[str, str]:
    """The demo org (created on first use), a fresh API key for it, and the bus records
    (signing key / JWKS, stream keys) written from the database."""
    repo = open_repository(settings.db)
    try:
        service = service_cls(repo, bus, settings)
        await service.resync()
        if await asyncio.to_thread(repo.get_org, org_id) is None:
            org, _key, secret = await service.create_org("Demo", org_id=org_id)
            return str(org.id), str(secret)
        _key, secret = await service.create_api_key(org_id)
        return org_id, str(secret)
    finally:
        repo.close()


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="clutchcall")
    register(_parser.add_subparsers(dest="command"))
    _ns = _parser.parse_args(["up", *sys.argv[1:]])
    sys.exit(_ns.func(_ns))
