"""``clutchcall publish``: publish a live fMP4 source to an origin over MoQT.

    clutchcall publish --relay moqt://127.0.0.1:4443 --namespace stream/org_demo/lv_... \\
        --key sk_... testsrc

``SOURCE`` is ``testsrc`` (a test pattern with a tone, encoded live), a media file
(encoded at its native rate; ``--loop`` repeats it) or ``-`` for fragmented MP4 on
stdin (e.g. ``ffmpeg ... -f mp4 -movflags empty_moov+default_base_moof+frag_keyframe
pipe:1 | clutchcall publish ... -``). The stream key comes from ``--key`` or
``CLUTCHCALL_STREAM_KEY``; the namespace is ``stream/<org>/<external_input_id>``
(``--namespace``, or ``--org`` with ``--input``). Runs until the source ends,
Ctrl-C, or ``--seconds``. Exit status: 0 (done), 3 (refused: wrong key or
namespace), 5 (network), 6 (source failed), 2 (bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

__all__ = ["register", "run"]

EXIT_CODES = {"refused": 3, "network": 5, "ended": 5, "source": 6}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="publish testsrc, a file or fMP4 on stdin to an origin (MoQT)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="'testsrc', a media file, or '-' for fMP4 on stdin")
    parser.add_argument("--relay", required=True, help="origin URL: moqt://HOST:PORT or https://")
    parser.add_argument("--namespace", help="stream/<org_id>/<external_input_id>")
    parser.add_argument("--org", help="org id (with --input instead of --namespace)")
    parser.add_argument("--input", help="external input id lv_... (default: from --namespace)")
    parser.add_argument("--key", default=os.environ.get("CLUTCHCALL_STREAM_KEY"),
                        help="stream key (default: $CLUTCHCALL_STREAM_KEY)")  # fmt: skip
    parser.add_argument("--timeslice-ms", type=int, default=500, help="chunk (object) duration")
    parser.add_argument("--gop", type=float, default=2.0, help="seconds per group (keyframe)")
    parser.add_argument("--bitrate", type=int, default=2_500_000, help="video bit/s (testsrc/file)")
    parser.add_argument("--loop", action="store_true", help="repeat a file source")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    parser.add_argument("--fallback", action="append", default=[], metavar="URL",
                        help="another origin to move to if the relay is lost (repeatable)")  # fmt: skip
    parser.add_argument("--reconnect", type=float, default=10.0,
                        help="seconds to keep reconnecting after a loss (0: never)")  # fmt: skip
    parser.add_argument("--cafile", help="trust this PEM certificate (self-signed origins)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clutchcall.streams import ConfigurationError, PublishError
    from mesh.logging import configure_logging

    configure_logging(node="publish", role="publish", level="warning", json=False)
    namespace = args.namespace
    if namespace is None:
        if not (args.org and args.input):
            print("clutchcall publish: give --namespace, or --org and --input", file=sys.stderr)
            return 2
        namespace = f"stream/{args.org}/{args.input}"
    input_id = args.input or namespace.rstrip("/").rsplit("/", 1)[-1]
    if not args.key:
        print("clutchcall publish: no stream key (--key or CLUTCHCALL_STREAM_KEY)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_publish(args, namespace, input_id))
    except ConfigurationError as exc:
        print(f"clutchcall publish: {exc}", file=sys.stderr)
        return 2
    except PublishError as exc:
        print(f"clutchcall publish: {exc}", file=sys.stderr)
        return EXIT_CODES.get(exc.reason, 1)


async def _publish(args: argparse.Namespace, namespace: str, input_id: str) -> int:
    from clutchcall.streams import AsyncPublisher

    source: object = args.source
    if args.source == "-":
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        source = reader
    pub = AsyncPublisher(
        args.relay, timeslice_ms=args.timeslice_ms, group_duration=args.gop,
        video_bitrate=args.bitrate, loop_file=args.loop,
        verify=False if args.insecure else None, cafile=args.cafile,
        reconnect=args.reconnect, fallback_urls=args.fallback,
    )  # fmt: skip
    await pub.publish(input_id, args.key, source, namespace)
    print(f"publishing {namespace} to {args.relay}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.seconds:
        loop.call_later(args.seconds, stop.set)
    done = asyncio.ensure_future(pub.wait())
    stopper = asyncio.ensure_future(stop.wait())
    while not done.done() and not stop.is_set():
        await asyncio.wait([done, stopper], timeout=1.0)
        stats = pub.statistics()
        print(f"  {stats['objects_sent']:6d} objects  {stats['bytes_sent'] / 1e6:8.2f} MB  "
              f"{stats['subscribers']} subscriptions", flush=True)  # fmt: skip
    stopper.cancel()
    if done.done():
        result = done.result()  # raises PublishError if it failed
    else:
        done.cancel()
        stopped = await pub.stop()
        if stopped is None:
            await pub.wait()  # re-raises how it failed
            return 1
        result = stopped
    print(f"done: {result.reason}, {result.objects} objects in {result.duration:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="clutchcall")
    register(_parser.add_subparsers(dest="command"))
    _ns = _parser.parse_args(["publish", *sys.argv[1:]])
    sys.exit(_ns.func(_ns))
