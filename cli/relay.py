"""``clutchcall relay``: one MoQT relay node (raw QUIC + WebTransport on one UDP port).

    clutchcall relay --quic 0.0.0.0:4443 --http 127.0.0.1:9090 [--cert F --key F]

Without ``--cert``/``--key`` a self-signed certificate for localhost is
generated into a private temporary directory (clients then need to skip
verification, e.g. aiomoqt's ``-k``). ``/metrics``, ``/healthz`` and
``/readyz`` are served on the HTTP address. SIGTERM/SIGINT drain the node
(GOAWAY, then close). Logs are structlog JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path

import structlog

from mesh.metrics import OpsServer
from mesh.relay import CacheLimits, RelayConfig, SchedulerLimits, deliver_all_limits
from mesh.relay._metrics import relay_registry
from mesh.relay._node import RelayNode
from moqt.aio import CONGESTION_CONTROLS, QUIC_STACKS, write_self_signed

__all__ = ["parse_hostport", "register", "run"]

logger = structlog.get_logger("cli.relay")


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``; port 0 picks a free port."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {value!r}")
    return host, port


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="run one MoQT relay node (raw QUIC + WebTransport)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quic",
        type=parse_hostport,
        required=True,
        metavar="HOST:PORT",
        help="UDP address for MoQT (ALPN moqt-16, moq-00 and h3/WebTransport)",
    )
    parser.add_argument(
        "--http",
        type=parse_hostport,
        required=True,
        metavar="HOST:PORT",
        help="TCP address for /metrics, /healthz and /readyz",
    )
    parser.add_argument("--cert", type=Path, help="TLS certificate chain (PEM)")
    parser.add_argument("--key", type=Path, help="TLS private key (PEM)")
    parser.add_argument(
        "--max-object-size",
        type=int,
        default=8 << 20,
        metavar="BYTES",
        help="refuse objects larger than this (default: 8 MiB)",
    )
    parser.add_argument(
        "--cache-bytes",
        type=int,
        default=16 << 20,
        metavar="BYTES",
        help="per-track cache budget beyond the latest group (default: 16 MiB)",
    )
    parser.add_argument(
        "--cache-age",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="evict cached groups older than this (default: 30)",
    )
    parser.add_argument(
        "--max-request-id",
        type=int,
        default=100,
        help="MAX_REQUEST_ID granted to each session (default: 100)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=10_000,
        help="refuse QUIC connections beyond this many (default: 10000)",
    )
    parser.add_argument(
        "--quic-stack",
        choices=QUIC_STACKS,
        default="picoquic",
        help="QUIC implementation, both with raw QUIC and WebTransport: picoquic (C on its "
        "own thread; for fan-out) or aioquic (pure Python) (default: picoquic)",
    )
    parser.add_argument(
        "--quic-congestion-control",
        choices=CONGESTION_CONTROLS,
        default=None,
        help="picoquic: the congestion controller of every connection (default: bbr, "
        "picoquic's current BBR)",
    )
    parser.add_argument(
        "--quic-send-quantum",
        type=float,
        default=None,
        metavar="SECONDS",
        help="picoquic's BBR: seconds of its pacing rate it may send at once while the relay "
        "is not busy (default: 0, picoquic's own 1 ms)",
    )
    parser.add_argument(
        "--quic-busy-connections",
        type=int,
        default=None,
        metavar="N",
        help="picoquic's BBR: from N connections on, the connections after get at least "
        "--quic-busy-send-quantum (default: 16; 0: never)",
    )
    parser.add_argument(
        "--quic-busy-send-quantum",
        type=float,
        default=None,
        metavar="SECONDS",
        help="picoquic's BBR: the send quantum of a busy relay (default: 0.01; coarser: less "
        "CPU per viewer, burstier)",
    )
    parser.add_argument(
        "--upstream-linger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep an upstream subscription this long after its last subscriber left",
    )
    parser.add_argument(
        "--skip-stale-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="live-edge policy for subscribers that cannot keep up: skip a group once a "
        "newer one exists and it waited this long, jump ahead past 20x that (default: "
        "off - as draft-16 says, every object is delivered unless the subscriber sets "
        "DELIVERY_TIMEOUT; a subscriber that overflows its queue gets TOO_FAR_BEHIND)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="log verbosity",
    )  # fmt: skip
    parser.set_defaults(func=run)


def _configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper())
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    # aioquic logs every connection at INFO; keep the node's log to our JSON lines.
    logging.getLogger("quic").setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def run(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level)
    if (args.cert is None) != (args.key is None):
        logger.error("bad_arguments", reason="--cert and --key go together")
        return 2
    for value, name in (
        (args.max_object_size, "--max-object-size"),
        (args.cache_bytes, "--cache-bytes"),
        (args.max_request_id, "--max-request-id"),
        (args.max_connections, "--max-connections"),
    ):
        if value <= 0:
            logger.error("bad_arguments", reason=f"{name} must be positive")
            return 2
    if args.skip_stale_after is not None and not args.skip_stale_after > 0:
        logger.error("bad_arguments", reason="--skip-stale-after must be positive")
        return 2
    reason = _picoquic_tuning_error(args)
    if reason:
        logger.error("bad_arguments", reason=reason)
        return 2
    try:
        return asyncio.run(_main(args))
    except OSError as exc:
        logger.error("relay_failed", error=str(exc))
        return 1


def _picoquic_tuning_error(args: argparse.Namespace) -> str:
    """What is wrong with the picoquic tuning asked for ("" when nothing)."""
    for value, name in (
        (args.quic_send_quantum, "--quic-send-quantum"),
        (args.quic_busy_send_quantum, "--quic-busy-send-quantum"),
    ):
        if value is not None and not 0 <= value <= 0.1:
            return f"{name} is 0 to 0.1 seconds"
    if args.quic_busy_connections is not None and args.quic_busy_connections < 0:
        return "--quic-busy-connections must be >= 0 (0: never)"
    bbr = {
        "--quic-send-quantum": args.quic_send_quantum,
        "--quic-busy-connections": args.quic_busy_connections,
        "--quic-busy-send-quantum": args.quic_busy_send_quantum,
    }
    asked = [name for name, value in bbr.items() if value is not None]
    if args.quic_stack == "aioquic" and (args.quic_congestion_control is not None or asked):
        named = ["--quic-congestion-control"] * (args.quic_congestion_control is not None)
        return f"{' and '.join(named + asked)}: picoquic's, drop them or use --quic-stack picoquic"
    if asked and (args.quic_congestion_control or "bbr") != "bbr":
        return f"{' and '.join(asked)}: BBR's, drop them or use bbr"
    return ""


def _scheduling(skip_stale_after: float | None) -> SchedulerLimits:
    if skip_stale_after is None:
        return deliver_all_limits()
    return SchedulerLimits(skip_after=skip_stale_after, max_lag=20 * skip_stale_after)


async def _main(args: argparse.Namespace) -> int:
    config = RelayConfig(
        cache=CacheLimits(max_bytes=args.cache_bytes, max_age=args.cache_age),
        max_object_size=args.max_object_size,
        upstream_linger=max(0.0, args.upstream_linger),
        scheduler=_scheduling(args.skip_stale_after),
    )
    node = RelayNode(
        config,
        max_request_id=args.max_request_id,
        max_connections=args.max_connections,
        quic_stack=args.quic_stack,
        congestion_control=args.quic_congestion_control,
        send_quantum=args.quic_send_quantum,
        busy_connections=args.quic_busy_connections,
        busy_send_quantum=args.quic_busy_send_quantum,
    )
    http = OpsServer(
        relay_registry(node.relay), args.http[0], args.http[1], ready={"relay": lambda: node.ready}
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with tempfile.TemporaryDirectory(prefix="clutchcall-relay-") as tmp:
        cert, key = args.cert, args.key
        if cert is None:
            cert, key = write_self_signed(Path(tmp))
            logger.warning(
                "self_signed_certificate",
                certificate=str(cert),
                note="clients must skip verification or trust this file",
            )
        async with http:
            try:
                assert key is not None
                await node.start(args.quic[0], args.quic[1], cert, key)
                quic_host, quic_port = node.address
                # One machine-readable line so scripts and tests can find free ports.
                logger.info(
                    "relay_ready",
                    quic=f"{quic_host}:{quic_port}",
                    http=f"{args.http[0]}:{http.port}",
                )
                await stop.wait()
                logger.info("relay_draining")
                await node.drain()
            finally:
                await node.stop()
    logger.info("relay_stopped")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="clutchcall")
    register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["relay", *sys.argv[1:]])
    sys.exit(ns.func(ns))
