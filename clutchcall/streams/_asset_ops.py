"""``streams.assets``, each call written once as a plan (``_plan``) both clients run:
the asset endpoints, waiting until an asset is ready, and the resumable tus upload
(``HEAD`` where the server stands, ``PATCH`` the rest, back off and ask again after a
cut connection or a busy answer). ``wrap`` binds an asset to the client that fetched it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from clutchcall.streams._asset_types import (
    OFFSET_TYPE,
    AssetFailed,
    AssetFields,
    AssetPage,
    ProgressCallback,
    UploadFailed,
    UploadOptions,
    UploadPolicy,
    UploadTicket,
    create_body,
    offset_of,
    retryable,
    tus_headers,
)
from clutchcall.streams._errors import ApiError, ConfigurationError, ConnectionFailed
from clutchcall.streams._http import path_id
from clutchcall.streams._models import PlaybackTicket, Revocation, parse_time
from clutchcall.streams._ops import page_params
from clutchcall.streams._plan import Call, FileRange, Plan, Send, Sleep, idempotent

__all__ = ["AssetOps"]


class AssetOps[AssetT: AssetFields]:
    def __init__(self, wrap: Callable[[dict[str, Any]], AssetT]) -> None:
        self._wrap = wrap

    def _asset(self, data: dict[str, Any]) -> AssetT:
        return self._wrap(AssetFields.fields_from(data))

    def create_upload(
        self, name: str, options: UploadOptions, key: str | None = None
    ) -> Plan[UploadTicket[AssetT]]:
        body = create_body(name, options)
        data = yield from idempotent("POST", "/v1/assets/uploads", body, key=key)
        return UploadTicket(
            upload_url=data["uploadUrl"],
            asset_id=data["assetId"],
            playback_id=data["playbackId"],
            expires_at=parse_time(data.get("expiresAt")),
            asset=self._asset(data["asset"]),
        )

    def get(self, id: str) -> Plan[AssetT]:
        return self._asset((yield Call("GET", f"/v1/assets/{path_id(id)}")))

    def list(self, limit: int | None, cursor: str | None) -> Plan[AssetPage[AssetT]]:
        data = yield Call("GET", "/v1/assets", params=page_params(limit, cursor))
        return AssetPage([self._asset(d) for d in data["data"]], data.get("next_cursor"))

    def delete(self, id: str) -> Plan[None]:
        yield Call("DELETE", f"/v1/assets/{path_id(id)}")

    def signed_playback_url(self, id: str, ttl_seconds: int) -> Plan[PlaybackTicket]:
        data = yield from idempotent(
            "POST", f"/v1/assets/{path_id(id)}/playback_urls", {"ttl_seconds": ttl_seconds}
        )
        return PlaybackTicket.from_json(data)

    def revoke_playback(self, id: str) -> Plan[Revocation]:
        data = yield from idempotent("POST", f"/v1/assets/{path_id(id)}/revoke_playback")
        return Revocation.from_json(data)

    def wait_ready(self, id: str, timeout: float, poll: float) -> Plan[AssetT]:
        deadline = time.monotonic() + timeout
        while True:
            asset = yield from self.get(id)
            if asset.status == "ready":
                return asset
            if asset.status == "errored":
                error = asset.error or {}
                raise AssetFailed(asset.id, error.get("code", "unknown"), error.get("message", ""))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{id} is still {asset.status} after {timeout:g} s")
            yield Sleep(min(poll, left))

    # --- uploading ---------------------------------------------------------------------------

    def upload(
        self,
        path: str | os.PathLike[str],
        name: str | None,
        on_progress: ProgressCallback | None,
        policy: UploadPolicy,
        options: UploadOptions,
    ) -> Plan[AssetT]:
        file = Path(path)
        sized: UploadOptions = {**options, "size": _size_of(file)}
        ticket = yield from self.create_upload(name or file.name, sized)
        yield from upload_file(ticket.upload_url, file, on_progress, policy)
        return (yield from self.get(ticket.asset_id))


def upload_file(
    upload_url: str,
    path: str | os.PathLike[str],
    on_progress: ProgressCallback | None,
    policy: UploadPolicy,
) -> Plan[int]:
    """Send the file from where the server's offset stands; the bytes stored."""
    file = Path(path)
    total = _size_of(file)
    failures = 0
    offset: int | None = None
    last_error: BaseException | None = None
    with file.open("rb") as f:
        while True:
            try:
                if offset is None:
                    offset = yield from _head(upload_url, total)
                    if on_progress is not None:
                        on_progress(offset, total)
                if offset >= total:
                    return offset
                end = total if policy.chunk_size is None else min(total, offset + policy.chunk_size)
                reached = yield from _patch(upload_url, f, offset, end, total, on_progress)
                if reached > offset:
                    failures = 0
                offset = reached
                continue
            except (httpx.TransportError, ApiError, UploadFailed) as exc:
                if isinstance(exc, UploadFailed) or not retryable(exc):
                    if isinstance(exc, httpx.TransportError):
                        raise ConnectionFailed(str(exc)) from exc
                    raise
                last_error = exc
            failures += 1
            if failures > policy.retries:
                raise UploadFailed(
                    f"upload gave up after {policy.retries} retries: {last_error}",
                    offset=offset,
                ) from last_error
            yield Sleep(policy.delay(failures))
            offset = None  # ask the server where to resume


def _size_of(file: Path) -> int:
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise ConfigurationError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if not file.is_file():
        raise ConfigurationError(f"{file} is not a regular file")
    if size <= 0:
        raise ConfigurationError(f"{file} is empty")
    return size


def _head(url: str, total: int) -> Plan[int]:
    response = yield Send("HEAD", url, tus_headers())
    offset = offset_of(response)
    known = response.headers.get("upload-length")
    if known is not None and known.isdigit() and int(known) != total:
        raise UploadFailed(
            f"this upload expects {known} bytes but the file has {total}", offset=offset
        )
    if offset > total:
        raise UploadFailed(f"the server holds {offset} bytes, more than the file's {total}")
    return offset


def _patch(
    url: str,
    f: Any,
    start: int,
    end: int,
    total: int,
    on_progress: ProgressCallback | None,
) -> Plan[int]:
    def sent(pos: int) -> None:
        if on_progress is not None:
            on_progress(pos, total)

    headers = tus_headers(
        **{
            "Upload-Offset": str(start),
            "Upload-Length": str(total),
            "Content-Type": OFFSET_TYPE,
            "Content-Length": str(end - start),
        }
    )
    response = yield Send("PATCH", url, headers, FileRange(f, start, end, sent))
    return offset_of(response)
