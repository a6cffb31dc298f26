"""``clutchcall watch URL``: watch a live broadcast over MoQT, or an on-demand asset over
HTTPS, print what arrives, save it.

    clutchcall watch 'https://127.0.0.1:4444/stream/org_demo/lv_...?token=...' --out live.mp4
    clutchcall watch 'http://127.0.0.1:8080/vod/pb_.../catalog.json?token=...' --out vod.mp4
    clutchcall watch pb_... --base-url http://127.0.0.1:8080 [--token JWT] --out vod.mp4

``URL`` is a signed playback URL (``input.signed_playback_url()``, or an asset's
``/vod/pb_.../catalog.json`` URL as ``clutchcall upload`` prints it), a relay URL with
``--namespace`` and ``--token``, or a bare ``pb_`` playback id served by the control
plane at ``--base-url`` (``--token`` for a signed asset). Once a second it prints the
rendition, chunks, bytes and lag; ``--out`` writes a playable fragmented MP4 (init
segment, then every chunk; an asset from ``--start`` seconds to its end). Stops on
Ctrl-C, after ``--seconds``, or when the broadcast or asset ends. Exit status: 0 (it
played, then ended or was stopped), 3 (auth_failed),
4 (not_found), 5 (network: the relay did not answer within ``--connect-timeout``,
or was lost; on demand: the server could not be reached), 6 (it stopped before any media played, e.g. ``--seconds`` ran out),
1 (other errors, e.g. an untrusted certificate). TLS: ``--cafile`` / ``--insecure``
(or ``CLUTCHCALL_CAFILE`` / ``CLUTCHCALL_INSECURE=1``) for self-signed certificates.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import urllib.parse
from pathlib import Path
from typing import IO, Any

__all__ = ["register", "run"]

EXIT_CODES = {"ended": 0, "closed": 0, "auth_failed": 3, "not_found": 4, "network": 5}
NOTHING_PLAYED = 6
DEFAULT_BASE = "http://127.0.0.1:8080"
_PLAYBACK_ID = re.compile(r"^pb_[A-Za-z0-9]{1,64}$")
_VOD_PATH = re.compile(r"/vod/pb_[A-Za-z0-9]{1,64}(/(catalog\.json)?)?$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="watch a live broadcast (MoQT) or an on-demand asset (pb_), printing stats and "
        "optionally saving it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "url",
        help="signed playback URL (live, or an asset's /vod/pb_.../catalog.json), a relay URL "
        "with --namespace, or a pb_ playback id (with --base-url)",
    )
    parser.add_argument("--out", type=Path, help="write the received fMP4 to this file")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    parser.add_argument("--namespace", help="stream/<org>/<id> when URL has no path")
    parser.add_argument("--token", help="playback token when URL has no ?token=")
    parser.add_argument("--base-url", default=os.environ.get("CLUTCHCALL_BASE_URL", DEFAULT_BASE),
                        help="on demand: the control plane serving /vod/, for a bare pb_ id "
                        "(CLUTCHCALL_BASE_URL)")  # fmt: skip
    parser.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                        help="on demand: start at this time of the asset")  # fmt: skip
    parser.add_argument("--rendition", help="pin a video rendition (default: ABR)")
    parser.add_argument("--max-height", type=int, help="never pick a rendition taller than this")
    parser.add_argument("--no-audio", action="store_true", help="video only")
    parser.add_argument("--cafile", help="trust this PEM certificate (self-signed relays)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    parser.add_argument("--fallback", action="append", default=[], metavar="URL",
                        help="another POP to move to if the connection is lost (repeatable)")  # fmt: skip
    parser.add_argument("--reconnect", type=float, default=10.0,
                        help="seconds to keep reconnecting after a loss (0: never)")  # fmt: skip
    parser.add_argument("--start-timeout", type=float, default=30.0,
                        help="give up if the broadcast is not live within this long")  # fmt: skip
    parser.add_argument("--connect-timeout", type=float, default=5.0,
                        help="give up if the relay does not answer within this long")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clutchcall.streams import ConfigurationError
    from mesh.logging import configure_logging

    configure_logging(node="watch", role="watch", level="warning", json=False)
    # aioquic logs each failed handshake; the close reason below says it once, with what to do.
    logging.getLogger("quic").setLevel(logging.ERROR)
    try:
        return asyncio.run(_watch(args))
    except ConfigurationError as exc:
        print(f"clutchcall watch: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"clutchcall watch: {exc}", file=sys.stderr)
        return 1


def vod_target(url: str, base_url: str) -> str | None:
    """The catalog URL to play when ``url`` names an on-demand asset (a ``pb_`` id, or a
    ``/vod/pb_...`` URL), else None (a live broadcast)."""
    if _PLAYBACK_ID.match(url):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url must be an http(s):// URL, got {base_url!r}")
        return f"{base_url.rstrip('/')}/vod/{url}/catalog.json"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and _VOD_PATH.search(parts.path):
        return url
    return None


async def _open_viewer(args: argparse.Namespace, on_chunk: Any) -> tuple[Any, str, bool]:
    """(viewer, what it plays, whether it is on demand)."""
    from clutchcall.streams import AsyncBroadcastViewer, AsyncVodViewer, ConfigurationError

    try:
        vod = vod_target(args.url, args.base_url)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if vod is not None:
        if args.namespace:
            raise ConfigurationError("--namespace is for live relay URLs, not on-demand assets")
        if args.start < 0:
            raise ConfigurationError("--start must not be negative")
        viewer = await AsyncVodViewer.open(
            vod, on_chunk=on_chunk, token=args.token, rendition=args.rendition,
            max_height=args.max_height, audio=not args.no_audio, start=args.start,
            verify=False if args.insecure else None, cafile=args.cafile,
            request_timeout=max(args.connect_timeout, 10.0),
        )  # fmt: skip
        return viewer, f"{viewer.target.playback_id} (on demand)", True
    if args.start:
        raise ConfigurationError("--start is for on-demand assets (pb_), not live broadcasts")
    live = await AsyncBroadcastViewer.open(
        args.url, on_chunk=on_chunk, token=args.token, namespace=args.namespace,
        rendition=args.rendition, max_height=args.max_height, audio=not args.no_audio,
        verify=False if args.insecure else None, cafile=args.cafile,
        start_timeout=args.start_timeout, reconnect=args.reconnect,
        fallback_urls=args.fallback, connect_timeout=args.connect_timeout,
    )  # fmt: skip
    return live, live.target.namespace_text, False


async def _watch(args: argparse.Namespace) -> int:
    from clutchcall.streams import Chunk

    out: IO[bytes] | None = args.out.open("wb") if args.out is not None else None
    counts = {"chunks": 0, "bytes": 0, "inits": 0}

    def on_chunk(is_init: bool, chunk: Chunk) -> None:
        counts["chunks"] += 1
        counts["bytes"] += len(chunk.data)
        counts["inits"] += is_init
        if is_init:
            print(f"init segment ({chunk.rendition})", flush=True)
        if out is not None:
            out.write(chunk.data)

    try:
        viewer, what, on_demand = await _open_viewer(args, on_chunk)
        print(f"watching {what}", flush=True)
        relay = "" if on_demand else urllib.parse.urlsplit(viewer.target.url).netloc
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.seconds:
            loop.call_later(args.seconds, stop.set)
        closed = asyncio.ensure_future(viewer.wait_closed())
        stopper = asyncio.ensure_future(stop.wait())
        unreachable = False

        def check_reached() -> None:
            nonlocal unreachable
            if viewer.statistics()["sessions"] == 0 and not closed.done():
                unreachable = True
                stop.set()

        # The first connection must come within --connect-timeout: an address where
        # nothing answers fails now, not after the reconnect window. (On demand, each
        # HTTP request has its own timeout and ends the viewer with "network".)
        if not on_demand:
            loop.call_later(args.connect_timeout, check_reached)
        last = 0
        while not closed.done() and not stop.is_set():
            await asyncio.wait([closed, stopper], timeout=1.0)
            stats = viewer.statistics()
            lag = stats["lag"]
            print(
                f"  {viewer.rendition or '-':>10}  {counts['chunks']:6d} chunks  "
                f"{(counts['bytes'] - last) * 8 / 1e6:6.2f} Mbit/s"
                + ("" if on_demand else f"  lag {lag if lag is not None else 0.0:5.2f} s"),
                flush=True,
            )
            last = counts["bytes"]
        stopper.cancel()
        if unreachable:  # nothing to close gracefully: do not wait out QUIC's closing period
            viewer_closing = asyncio.ensure_future(viewer.close())
            await asyncio.wait([viewer_closing], timeout=1.0)
            reason, detail = "network", "no answer"
        else:
            reason, detail = await viewer.close()
    finally:
        if out is not None:
            out.close()
    print(f"closed: {reason} ({detail}); {counts['chunks']} chunks, {counts['bytes']} bytes",
          flush=True)  # fmt: skip
    if unreachable:
        print(f"clutchcall watch: the relay at {relay} did not answer within "
              f"{args.connect_timeout:g} s (QUIC over UDP): check the URL and that the relay "
              "is running and reachable", file=sys.stderr)  # fmt: skip
        return EXIT_CODES["network"]
    code = EXIT_CODES.get(reason, 1)
    if code != 0:
        print(f"clutchcall watch: {detail}", file=sys.stderr)
        return code
    if counts["chunks"] - counts["inits"] <= 0:
        print("clutchcall watch: the stream did not play (no media arrived): is the "
              "broadcast live?", file=sys.stderr)  # fmt: skip
        return NOTHING_PLAYED
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="clutchcall")
    register(_parser.add_subparsers(dest="command"))
    _ns = _parser.parse_args(["watch", *sys.argv[1:]])
    sys.exit(_ns.func(_ns))
