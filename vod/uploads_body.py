"""Copying a request body into an upload's file (:mod:`vod.uploads`), holding the
upload's lock meanwhile and giving it up to a newer writer when the body stalls."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, BinaryIO

import structlog
from starlette.requests import Request

from vod._headers import too_large

__all__ = ["DANGLING_AFTER", "receive_into"]

_log = structlog.get_logger("vod.uploads")

# A writer silent this long gives up when another request asks for the lock.
DANGLING_AFTER = 2.0
_TICK = 0.25
_REFRESH_EVERY = 1.0


async def receive_into(
    request: Request,
    f: BinaryIO,
    lock: Any,
    room: int,
    checksum: tuple[str, bytes] | None,
) -> tuple[int, bool, bytes]:
    """Copy the body into ``f``: (bytes written, whole body received, its digest)."""
    hasher = hashlib.new(checksum[0]) if checksum else None
    written = 0
    last_bytes = last_refresh = time.monotonic()
    pending: asyncio.Future[Any] = asyncio.ensure_future(request.receive())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=_TICK)
            now = time.monotonic()
            if not done:
                if now - last_refresh >= _REFRESH_EVERY:
                    last_refresh = now
                    if not await lock.refresh():
                        return written, False, b""
                if now - last_bytes >= DANGLING_AFTER and await lock.give_up_requested():
                    _log.info("upload_dangling_patch_gave_up", written=written)
                    return written, False, b""
                continue
            message = pending.result()
            if message["type"] == "http.disconnect":
                return written, False, b""
            chunk: bytes = message.get("body", b"")
            if chunk:
                if written + len(chunk) > room:
                    f.flush()
                    await asyncio.to_thread(f.truncate, f.tell() - written)
                    raise too_large(written + len(chunk), room)
                f.write(chunk)
                written += len(chunk)
                last_bytes = now
                if hasher is not None:
                    hasher.update(chunk)
                if now - last_refresh >= _REFRESH_EVERY:
                    last_refresh = now
                    if not await lock.refresh():
                        return written, False, b""
            if not message.get("more_body", False):
                return written, True, hasher.digest() if hasher is not None else b""
            pending = asyncio.ensure_future(request.receive())
    finally:
        if not pending.done():
            pending.cancel()
