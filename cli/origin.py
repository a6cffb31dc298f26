"""``clutchcall origin``: accept publishers (MoQT fMP4 and RTMP) and serve POPs and viewers.

    clutchcall origin --quic 0.0.0.0:4443 --http 127.0.0.1:9090 --redis redis://127.0.0.1:6379/0 \\
        --region eu --node-id origin-eu-1 [--rtmp 0.0.0.0:1935] [--publish-auth redis|none] \\
        [--advertise HOST:PORT] [--config origin.toml] [--cert F --key F]

Every setting also comes from the TOML file (``[origin]`` table or top level) and
the environment (``CLUTCHCALL_ORIGIN_<FIELD>`` or ``CLUTCHCALL_<FIELD>``, e.g.
``CLUTCHCALL_REGION``, ``CLUTCHCALL_REDIS``); flags win. ``--rtmp ""`` disables
RTMP ingest. ``--publish-auth none`` admits every publisher (development only; the
log says so loudly). Without ``--cert``/``--key`` a self-signed localhost
certificate is generated. SIGTERM/SIGINT drain the node (GOAWAY, broadcasts end,
routes withdrawn), then it exits 0. Logs are structlog JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

import structlog

from cli._errors import Listen, busy_address_message, is_busy
from mesh.logging import configure_logging
from mesh.settings import SettingsError, add_settings_arguments, settings_from_args
from moqt.aio import write_self_signed
from origin.node import OriginNode
from origin.settings import OriginNodeSettings

__all__ = ["register", "run"]

logger = structlog.get_logger("cli.origin")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "origin",
        help="run an origin node (MoQT fMP4 + RTMP ingest, serves POPs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_arguments(parser, OriginNodeSettings, "origin")
    parser.add_argument("--cert", type=Path, help="TLS certificate chain (PEM)")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(OriginNodeSettings, "origin", args)
    except SettingsError as exc:
        print(f"clutchcall origin: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        node=settings.node_id,
        role="origin",
        region=settings.region,
        level=settings.log_level,
        json=settings.log_json,
    )
    if (args.cert is None) != (args.key is None):
        logger.error("bad_arguments", reason="--cert and --key go together")
        return 2
    try:
        return asyncio.run(_main(settings, args.cert, args.key))
    except OSError as exc:
        logger.error("origin_failed", error=str(exc))
        if is_busy(exc):
            listens: list[Listen] = [
                ("--quic", settings.quic, "udp", "MoQT"),
                ("--http", settings.http, "tcp", "/metrics"),
                ("--rtmp", settings.rtmp, "tcp", "RTMP ingest"),
            ]
            print(busy_address_message("origin", listens), file=sys.stderr)
        return 1


async def _main(settings: OriginNodeSettings, cert: Path | None, key: Path | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with tempfile.TemporaryDirectory(prefix="clutchcall-origin-") as tmp:
        if cert is None or key is None:
            cert, key = write_self_signed(Path(tmp))
            logger.warning(
                "self_signed_certificate",
                certificate=str(cert),
                note="clients must skip verification or trust this file",
            )
        node = OriginNode(settings, certificate=cert, private_key=key)
        try:
            await node.start()
            rtmp = node.rtmp_address
            # One machine-readable line so scripts and tests can find the ports.
            logger.info(
                "origin_ready",
                quic="{}:{}".format(*node.quic_address),
                http="{}:{}".format(*node.http_address),
                rtmp=f"{rtmp[0]}:{rtmp[1]}" if rtmp else None,
            )
            await stop.wait()
            logger.info("origin_draining")
            await node.drain()
        finally:
            await node.stop()
    logger.info("origin_stopped")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="clutchcall")
    register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["origin", *sys.argv[1:]])
    sys.exit(ns.func(ns))
