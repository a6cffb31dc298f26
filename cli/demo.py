"""``clutchcall demo`` (what ``make demo`` runs): the whole stack, a live test pattern, a viewer.

It starts ``clutchcall up`` on the embedded default (SQLite in a temporary
directory, the in-process bus, free local ports), creates a live input through
the SDK, publishes ``testsrc2`` + a tone over MoQT to the origin, mints a signed
playback URL, and prints the endpoints and the ``clutchcall`` commands that
watch it. A viewer in the same process then prints once a second what reaches
it through the POP (chunks/s, Mbit/s, rendition, lag). Stops on Ctrl-C or after
``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
import tempfile
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cli.up import add_stack_arguments

    parser = subparsers.add_parser(
        "demo",
        help="run the stack, publish a test pattern, print how to watch it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser, port_zero=True)
    parser.set_defaults(db=None)
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="stop after this long (default: until Ctrl-C)")  # fmt: skip
    parser.add_argument("--timeslice-ms", type=int, default=500, help="publisher chunk duration")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mesh.logging import configure_logging

    configure_logging(node="demo", role="demo", level=args.log_level, json=False)
    try:
        with tempfile.TemporaryDirectory(prefix="clutchcall-demo-") as tmp:
            if args.db is None:
                args.db = f"sqlite:///{Path(tmp) / 'control.sqlite3'}"
            if args.state_dir is None:  # the demo leaves nothing behind
                args.state_dir = tmp
            asyncio.run(_demo(args))
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        print(f"clutchcall demo: {exc}", file=sys.stderr)
        return 1
    print("demo stopped", file=sys.stderr)
    return 0


async def _demo(args: argparse.Namespace) -> None:
    from cli.up import print_endpoints, running_stack
    from clutchcall.streams import AsyncPublisher, AsyncStreams

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.seconds:
        loop.call_later(args.seconds, stop.set)
    async with running_stack(args) as info:
        print_endpoints(info)
        async with AsyncStreams(base_url=info.base_url, api_key=info.api_key,
                                org_id=info.org_id) as streams:  # fmt: skip
            live, stream_key = await streams.live_inputs.create(name="Demo pattern", ingest="fmp4")
            rtmp, rtmp_key = await streams.live_inputs.create(name="Demo RTMP", ingest="rtmp")
            publisher = AsyncPublisher(info.publish_url, timeslice_ms=args.timeslice_ms,
                                       cafile=info.cafile)  # fmt: skip
            await publisher.publish(live.external_input_id, stream_key, "testsrc", live.namespace)
            ticket = await live.signed_playback_url(ttl_seconds=3600)
            ca = f"CLUTCHCALL_CAFILE={shlex.quote(info.cafile)}"
            print(
                f"\npublishing a test pattern to {live.namespace} (input {live.id})\n"
                f"\nwatch it in the browser: {info.base_url}/console/#/watch/{live.id}\n"
                f"\nor with the CLI (the signed URL is valid for an hour):\n"
                f"  {ca} clutchcall watch {shlex.quote(ticket.url)} --out demo.mp4\n"
                f"\nor from Python (the seed's Recipe 4), with:\n"
                f"  CLUTCHCALL_CREDENTIALS={info.api_key} {ca}\n"
                f"  Streams(base_url={info.base_url!r}, api_key=..., org_id={info.org_id!r})"
                f".live_inputs.get(id={live.id!r})\n"
                f"\nan RTMP input is ready too ({rtmp.id}); push to it with e.g.\n"
                f"  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine "
                f"-c:v libx264 -g 60 -c:a aac -f flv "
                f"{shlex.quote(f'{info.rtmp_url}/{rtmp.external_input_id}/{rtmp_key}')}\n"
                f"  and watch the URL of `input.signed_playback_url()` for {rtmp.id}\n",
                flush=True,
            )
            await _show_viewer(ticket.url, info.cafile, stop)
            await publisher.stop()


async def _show_viewer(url: str, cafile: str, stop: asyncio.Event) -> None:
    from clutchcall.streams import AsyncBroadcastViewer, Chunk

    window = {"chunks": 0, "bytes": 0}

    def on_chunk(is_init: bool, chunk: Chunk) -> None:
        if is_init:
            print(f"viewer: init segment, rendition {chunk.rendition}", flush=True)
            return
        window["chunks"] += 1
        window["bytes"] += len(chunk.data)

    viewer = await AsyncBroadcastViewer.open(url, on_chunk=on_chunk, cafile=cafile)
    print("viewer: watching through the POP", flush=True)
    stopper = asyncio.ensure_future(stop.wait())
    closed = asyncio.ensure_future(viewer.wait_closed())
    while not stop.is_set() and not closed.done():
        await asyncio.wait([stopper, closed], timeout=1.0)
        chunks, size = window["chunks"], window["bytes"]
        window["chunks"] = window["bytes"] = 0
        stats = viewer.statistics()
        print(f"  {chunks:3d} chunks/s  {size * 8 / 1e6:5.2f} Mbit/s  "
              f"rendition {stats['rendition'] or '-'}  lag {stats['lag'] or 0.0:4.2f} s",
              flush=True)  # fmt: skip
    stopper.cancel()
    reason, detail = await viewer.close()
    print(f"viewer: {reason} ({detail})", flush=True)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="clutchcall")
    register(_parser.add_subparsers(dest="command"))
    _ns = _parser.parse_args(["demo", *sys.argv[1:]])
    sys.exit(_ns.func(_ns))
