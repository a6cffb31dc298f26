"""``clutchcall pop``: an edge POP serving viewers (raw QUIC + WebTransport on one UDP port).

    clutchcall pop --quic 0.0.0.0:4443 --http 0.0.0.0:9090 --redis redis://redis:6379/0 \\
        --region eu --node-id pop-eu-1 --jwks https://control/.well-known/jwks.json \\
        [--config pop.toml] [--workers N] [--advertise HOST:PORT] [--linger SECONDS] \\
        [--cert F --key F]

Settings come from defaults, ``--config`` (TOML: top level and ``[pop]``), the
environment (``CLUTCHCALL_POP_<FIELD>`` or ``CLUTCHCALL_<FIELD>``, e.g.
``CLUTCHCALL_REGION``, ``CLUTCHCALL_REDIS``) and these flags, in that order.

``--workers N`` runs N worker processes on the same UDP port (SO_REUSEPORT; the
kernel keeps each client on one worker).  Worker ``i`` registers as node
``<node-id>-w<i>`` and serves its metrics on the HTTP port + ``i`` (or a free
port when the HTTP port is 0).  Without ``--cert``/``--key`` a self-signed
certificate for localhost is generated.  SIGTERM/SIGINT drain: GOAWAY to every
session, wait up to ``drain_timeout`` for viewers to move, then exit.  Logs are
structlog JSON lines on stderr; each worker logs ``pop_ready`` once serving.
``CLUTCHCALL_UPSTREAM_CAFILE`` names a CA bundle to verify the certificates of
origins and parent POPs with; without it cluster links are not verified (a
private network is assumed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from cli._errors import Listen, busy_address_message, is_busy
from mesh.logging import configure_logging
from mesh.settings import (
    PopSettings,
    SettingsError,
    add_settings_arguments,
    parse_hostport,
    settings_from_args,
)
from moqt.aio import write_self_signed

__all__ = ["main", "register", "run"]

logger = structlog.get_logger("cli.pop")

_RESTART_DELAY = 1.0
# CA bundle to verify origins / parent POPs with (unset: cluster links are not verified).
UPSTREAM_CAFILE_ENV = "CLUTCHCALL_UPSTREAM_CAFILE"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pop",
        help="run an edge POP (viewer admission, upstream via the cluster topology)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_arguments(parser, PopSettings, "pop")
    parser.add_argument("--cert", type=Path, help="TLS certificate chain (PEM)")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(PopSettings, "pop", args)
    except SettingsError as exc:
        print(f"clutchcall pop: {exc}", file=sys.stderr)
        return 2
    if (args.cert is None) != (args.key is None):
        print("clutchcall pop: --cert and --key go together", file=sys.stderr)
        return 2
    from pop import AdvertiseError, advertised_host

    try:
        # Bound to 0.0.0.0 without --advertise: find the address to register now, or
        # tell the operator to pass --advertise (before anything starts).
        if not settings.advertise:
            advertised_host(parse_hostport(settings.quic)[0], settings.redis)
    except AdvertiseError as exc:
        print(f"clutchcall pop: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        node=settings.node_id,
        role="pop",
        region=settings.region,
        level=settings.log_level,
        json=settings.log_json,
    )
    with tempfile.TemporaryDirectory(prefix="clutchcall-pop-") as tmp:
        cert, key = args.cert, args.key
        if cert is None:
            cert, key = write_self_signed(Path(tmp))
            logger.warning(
                "self_signed_certificate",
                certificate=str(cert),
                note="clients must skip verification or trust this file",
            )
        assert key is not None
        try:
            if settings.workers == 1:
                return asyncio.run(serve(settings, cert, key, reuse_port=False))
            return supervise(settings, cert, key)
        except AdvertiseError as exc:  # the network changed since the check above
            print(f"clutchcall pop: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            logger.error("pop_failed", error=str(exc))
            if is_busy(exc):
                listens: list[Listen] = [
                    ("--quic", settings.quic, "udp", "MoQT"),
                    ("--http", settings.http, "tcp", "/metrics"),
                ]
                print(busy_address_message("pop", listens), file=sys.stderr)
            return 1


async def serve(settings: PopSettings, cert: Path, key: Path, *, reuse_port: bool) -> int:
    """Run one POP node until SIGTERM/SIGINT, then drain."""
    from pop import PopNode  # imported here so `clutchcall --help` stays light

    node = PopNode(
        settings,
        certificate=cert,
        private_key=key,
        reuse_port=reuse_port,
        upstream_cafile=os.environ.get(UPSTREAM_CAFILE_ENV) or None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    try:
        quic_host, quic_port = node.quic_address
        http_host, http_port = node.http_address
        # One machine-readable line so scripts and tests can find the ports.
        logger.info(
            "pop_ready",
            node=settings.node_id,
            pid=os.getpid(),
            quic=f"{quic_host}:{quic_port}",
            http=f"{http_host}:{http_port}",
        )
        await stop.wait()
        await node.drain()
    finally:
        await node.stop()
    return 0


def _worker(settings: PopSettings, cert: str, key: str) -> None:
    configure_logging(
        node=settings.node_id,
        role="pop",
        region=settings.region,
        level=settings.log_level,
        json=settings.log_json,
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM drains
    sys.exit(asyncio.run(serve(settings, Path(cert), Path(key), reuse_port=True)))


def worker_settings(settings: PopSettings, index: int, quic_port: int) -> PopSettings:
    """The settings of worker ``index``: own node id and HTTP port, the shared QUIC port."""
    quic_host, _ = parse_hostport(settings.quic)
    http_host, http_port = parse_hostport(settings.http)
    return dataclasses.replace(
        settings,
        node_id=f"{settings.node_id}-w{index}",
        quic=_join(quic_host, quic_port),
        http=_join(http_host, http_port + index if http_port else 0),
        workers=1,
    )


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _pick_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def supervise(settings: PopSettings, cert: Path, key: Path) -> int:
    """Run ``settings.workers`` worker processes on one UDP port; restart crashed ones."""
    host, port = parse_hostport(settings.quic)
    if port == 0:
        port = _pick_port(host)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker,
            args=(worker_settings(settings, index, port), str(cert), str(key)),
            name=f"pop-worker-{index}",
            daemon=False,
        )
        process.start()
        logger.info("pop_worker_started", worker=index, pid=process.pid)
        return process

    workers = {i: start(i) for i in range(settings.workers)}
    logger.info("pop_workers_started", workers=settings.workers, quic=_join(host, port))
    while not stopping:
        time.sleep(0.2)
        for index, process in list(workers.items()):
            if not process.is_alive() and not stopping:
                logger.error("pop_worker_exited", worker=index, exitcode=process.exitcode)
                time.sleep(_RESTART_DELAY)
                workers[index] = start(index)
    for process in workers.values():
        if process.is_alive() and process.pid is not None:
            process.terminate()  # SIGTERM: each worker drains
    deadline = time.monotonic() + settings.drain_timeout + 5.0
    for process in workers.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    logger.info("pop_workers_stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clutchcall")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pop", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    import cli.pop as _module  # workers must find their entry point as cli.pop, not __main__

    sys.exit(_module.main())
