"""``clutchcall upload FILE``: upload a recording, wait until it is packaged, print its URL.

    clutchcall upload talk.mp4 --name "Talk"      # progress bar, then the signed pb_ URL

The control plane is ``--base-url`` / ``CLUTCHCALL_BASE_URL`` (default
http://127.0.0.1:8080, what ``clutchcall control`` serves), the key ``--api-key`` /
``CLUTCHCALL_CREDENTIALS`` (or ``CLUTCHCALL_API_KEY``). The upload resumes by
itself after a cut connection; if it still stops (Ctrl-C, network gone), it
prints the command that continues it::

    clutchcall upload talk.mp4 --resume '<upload url>' --asset as_...

Once the asset is ready it prints ``<base>/vod/<pb_id>/catalog.json?token=<jwt>``
(``--ttl`` seconds) on stdout, or a JSON object with ``--json``. Exit status: 0,
1 (API or network error), 2 (bad arguments), 3 (the asset ended errored),
4 (not ready within ``--timeout``), 130 (interrupted).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

DEFAULT_BASE = "http://127.0.0.1:8080"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "upload",
        help="upload a video file as an on-demand asset and print its playback URL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="the video file (MP4, MOV, MKV, ...)")
    parser.add_argument("--name", help="the asset's name (default: the file name)")
    parser.add_argument("--resume", metavar="URL", help="continue this upload URL")
    parser.add_argument(
        "--asset", metavar="ID", help="with --resume: the asset (as_...) to wait for"
    )
    parser.add_argument("--base-url", default=os.environ.get("CLUTCHCALL_BASE_URL", DEFAULT_BASE),
                        help="control plane URL (CLUTCHCALL_BASE_URL)")  # fmt: skip
    parser.add_argument("--api-key", default=os.environ.get("CLUTCHCALL_CREDENTIALS")
                        or os.environ.get("CLUTCHCALL_API_KEY"),
                        help="API key (CLUTCHCALL_CREDENTIALS)")  # fmt: skip
    parser.add_argument("--org-id", default=os.environ.get("CLUTCHCALL_ORG_ID"),
                        help="the org the key must belong to (optional)")  # fmt: skip
    parser.add_argument("--require-signed-urls", action="store_true",
                        help="the asset plays only with signed URLs")  # fmt: skip
    parser.add_argument("--ttl", type=int, default=3600, help="signed URL lifetime (s)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="give up waiting for packaging after this long (s)")  # fmt: skip
    parser.add_argument("--no-wait", action="store_true",
                        help="stop once the file is uploaded (print the asset id)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _fail(message: str, code: int) -> int:
    print(f"clutchcall upload: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from clutchcall.streams import (
        ApiError,
        AssetFailed,
        ConfigurationError,
        ConnectionFailed,
        Streams,
        UploadFailed,
    )

    if not args.api_key:
        return _fail("an API key is needed: --api-key or CLUTCHCALL_CREDENTIALS", 2)
    if args.asset and not args.resume:
        return _fail("--asset goes with --resume", 2)
    if not args.file.is_file():
        return _fail(f"{args.file}: no such file", 2)
    upload_url: str | None = args.resume
    asset_id: str | None = args.asset
    try:
        with Streams(base_url=args.base_url, api_key=args.api_key, org_id=args.org_id) as streams:
            if upload_url is None:
                ticket = streams.assets.create_upload(
                    name=args.name or args.file.name,
                    size=args.file.stat().st_size,
                    require_signed_urls=args.require_signed_urls or None,
                )
                upload_url, asset_id = ticket.upload_url, ticket.asset_id
                _note(args, f"asset {asset_id} (playback id {ticket.playback_id})")
            with _Bar(args, args.file.stat().st_size) as bar:
                streams.assets.upload_file(upload_url, args.file, on_progress=bar.update)
            if asset_id is None:
                _note(args, "uploaded; pass --asset as_... with --resume to wait for packaging")
                return 0
            if args.no_wait:
                _print_result(args, {"asset_id": asset_id, "status": "uploaded"})
                return 0
            with _Spinner(args) as spinner:
                asset = _wait(streams, asset_id, args.timeout, spinner)
            ticket2 = streams.assets.signed_playback_url(asset.id, ttl_seconds=args.ttl)
            _print_result(
                args,
                {
                    "asset_id": asset.id,
                    "playback_id": asset.playback_id,
                    "duration": asset.duration,
                    "url": ticket2.url,
                    "expires_at": ticket2.expires_at.isoformat(),
                },
            )
            return 0
    except KeyboardInterrupt:
        _resume_hint(args, upload_url, asset_id)
        return 130
    except (UploadFailed, ConnectionFailed) as exc:
        _resume_hint(args, upload_url, asset_id)
        return _fail(str(exc), 1)
    except AssetFailed as exc:
        return _fail(f"{exc.asset_id} could not be packaged: {exc.code}: {exc.message}", 3)
    except TimeoutError as exc:
        return _fail(f"{exc} (it goes on; check again later)", 4)
    except ConfigurationError as exc:
        return _fail(str(exc), 2)
    except ApiError as exc:
        return _fail(str(exc), 1)


def _wait(streams: Any, asset_id: str, timeout: float, spinner: _Spinner) -> Any:
    import time

    from clutchcall.streams import AssetFailed

    deadline = time.monotonic() + timeout
    while True:
        asset = streams.assets.get(asset_id)
        spinner.update(asset.status, asset.progress)
        if asset.status == "ready":
            return asset
        if asset.status == "errored":
            error = asset.error or {}
            raise AssetFailed(asset.id, error.get("code", "unknown"), error.get("message", ""))
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{asset_id} is still {asset.status} after {timeout:g} s")
        time.sleep(0.5)


def _note(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def _print_result(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(result), flush=True)
    elif "url" in result:
        print(result["url"], flush=True)
    else:
        print(result["asset_id"], flush=True)


def _resume_hint(args: argparse.Namespace, url: str | None, asset_id: str | None) -> None:
    if url is None:
        return
    command = ["clutchcall", "upload", str(args.file), "--resume", url]
    if asset_id:
        command += ["--asset", asset_id]
    print(f"to continue: {shlex.join(command)}", file=sys.stderr, flush=True)


class _Bar:
    """A rich progress bar on stderr (nothing with --quiet/--json or when not a terminal
    and not asked for)."""

    def __init__(self, args: argparse.Namespace, total: int) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._total = total
        if not (args.quiet or args.json):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("uploading"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("upload", total=self._total)
        return self

    def update(self, sent: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=sent, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


class _Spinner:
    def __init__(self, args: argparse.Namespace) -> None:
        self._status: Any = None
        if not (args.quiet or args.json):
            from rich.console import Console

            self._status = Console(stderr=True).status("waiting for packaging")

    def __enter__(self) -> _Spinner:
        if self._status is not None:
            self._status.start()
        return self

    def update(self, status: str, progress: float | None) -> None:
        if self._status is not None:
            pct = f" {progress:.0f} %" if progress is not None else ""
            self._status.update(f"{status}{pct}")

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="clutchcall")
    register(_parser.add_subparsers(dest="command"))
    _ns = _parser.parse_args(["upload", *sys.argv[1:]])
    sys.exit(_ns.func(_ns))
