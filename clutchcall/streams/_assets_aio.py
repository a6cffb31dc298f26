"""``streams.assets`` on :class:`AsyncStreams`: the asyncio twin of ``_assets`` (same API,
awaitable)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from clutchcall.streams._asset_types import (
    OFFSET_TYPE,
    READ_SIZE,
    AssetFailed,
    AssetFields,
    AssetPage,
    ProgressCallback,
    UploadFailed,
    UploadPolicy,
    UploadTicket,
    create_body,
    offset_of,
    retryable,
    tus_headers,
)
from clutchcall.streams._assets import _size_of
from clutchcall.streams._errors import ApiError, ConnectionFailed
from clutchcall.streams._http import path_id
from clutchcall.streams._models import PlaybackTicket, Revocation, parse_time

if TYPE_CHECKING:
    from clutchcall.streams._aio import AsyncStreams

__all__ = ["AsyncAsset", "AsyncAssets"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AsyncAsset(AssetFields):
    """An asset bound to the async client that fetched it."""

    _streams: AsyncStreams = field(repr=False, compare=False)

    async def refresh(self) -> AsyncAsset:
        return await self._streams.assets.get(id=self.id)

    # the same API as the sync client, hence a timeout parameter
    async def wait_ready(
        self,
        *,
        timeout: float = 600.0,  # noqa: ASYNC109
        poll: float = 1.0,
    ) -> AsyncAsset:
        return await self._streams.assets.wait_ready(self.id, timeout=timeout, poll=poll)

    async def signed_playback_url(self, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        return await self._streams.assets.signed_playback_url(id=self.id, ttl_seconds=ttl_seconds)

    async def revoke_playback(self) -> Revocation:
        return await self._streams.assets.revoke_playback(id=self.id)

    async def delete(self) -> None:
        await self._streams.assets.delete(id=self.id)


class AsyncAssets:
    """``streams.assets`` of :class:`AsyncStreams` (see :class:`~clutchcall.streams.Assets`)."""

    def __init__(self, streams: AsyncStreams, policy: UploadPolicy | None = None) -> None:
        self._streams = streams
        self.policy = policy or UploadPolicy()

    def _asset(self, data: dict[str, Any]) -> AsyncAsset:
        return AsyncAsset(**AssetFields.fields_from(data), _streams=self._streams)

    async def create_upload(
        self,
        *,
        name: str,
        max_duration_seconds: float | None = None,
        expires_in_seconds: int | None = None,
        require_signed_urls: bool | None = None,
        meta: dict[str, str] | None = None,
        size: int | None = None,
    ) -> UploadTicket[AsyncAsset]:
        body = create_body(
            name,
            max_duration_seconds=max_duration_seconds,
            expires_in_seconds=expires_in_seconds,
            require_signed_urls=require_signed_urls,
            meta=meta,
            size=size,
        )
        data = await self._streams._request("POST", "/v1/assets/uploads", json=body)
        return UploadTicket(
            upload_url=data["uploadUrl"],
            asset_id=data["assetId"],
            playback_id=data["playbackId"],
            expires_at=parse_time(data.get("expiresAt")),
            asset=self._asset(data["asset"]),
        )

    createUpload = create_upload

    async def get(self, id: str) -> AsyncAsset:
        return self._asset(await self._streams._request("GET", f"/v1/assets/{path_id(id)}"))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> AssetPage[AsyncAsset]:
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        data = await self._streams._request("GET", "/v1/assets", params=params)
        return AssetPage([self._asset(d) for d in data["data"]], data.get("next_cursor"))

    async def iter_all(self, *, page_size: int = 100) -> AsyncIterator[AsyncAsset]:
        cursor: str | None = None
        while True:
            page = await self.list(limit=page_size, cursor=cursor)
            for item in page:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def delete(self, id: str) -> None:
        await self._streams._request("DELETE", f"/v1/assets/{path_id(id)}")

    async def signed_playback_url(self, id: str, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        data = await self._streams._request(
            "POST", f"/v1/assets/{path_id(id)}/playback_urls", json={"ttl_seconds": ttl_seconds}
        )
        return PlaybackTicket.from_json(data)

    async def revoke_playback(self, id: str) -> Revocation:
        data = await self._streams._request("POST", f"/v1/assets/{path_id(id)}/revoke_playback")
        return Revocation.from_json(data)

    async def wait_ready(
        self,
        id: str,
        *,
        timeout: float = 600.0,  # noqa: ASYNC109
        poll: float = 1.0,
    ) -> AsyncAsset:
        deadline = time.monotonic() + timeout
        while True:
            asset = await self.get(id)
            if asset.status == "ready":
                return asset
            if asset.status == "errored":
                error = asset.error or {}
                raise AssetFailed(asset.id, error.get("code", "unknown"), error.get("message", ""))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{id} is still {asset.status} after {timeout:g} s")
            await asyncio.sleep(min(poll, left))

    # --- uploading ---------------------------------------------------------------------------

    async def upload(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        on_progress: ProgressCallback | None = None,
        **create_options: Any,
    ) -> AsyncAsset:
        file = Path(path)
        size = _size_of(file)
        ticket = await self.create_upload(name=name or file.name, size=size, **create_options)
        await self.upload_file(ticket.upload_url, file, on_progress=on_progress)
        return await self.get(ticket.asset_id)

    async def upload_file(
        self,
        upload_url: str,
        path: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        file = Path(path)
        total = _size_of(file)
        policy = self.policy
        client = self._streams._client()
        failures = 0
        offset: int | None = None
        last_error: BaseException | None = None
        f = await asyncio.to_thread(file.open, "rb")
        with f:
            while True:
                try:
                    if offset is None:
                        offset = await _head(client, upload_url, total)
                        if on_progress is not None:
                            on_progress(offset, total)
                    if offset >= total:
                        return offset
                    end = (
                        total
                        if policy.chunk_size is None
                        else min(total, offset + policy.chunk_size)
                    )
                    reached = await _patch(client, upload_url, f, offset, end, total, on_progress)
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
                await asyncio.sleep(policy.delay(failures))
                offset = None


async def _head(client: httpx.AsyncClient, url: str, total: int) -> int:
    response = await client.head(url, headers=tus_headers())
    offset = offset_of(response)
    known = response.headers.get("upload-length")
    if known is not None and known.isdigit() and int(known) != total:
        raise UploadFailed(
            f"this upload expects {known} bytes but the file has {total}", offset=offset
        )
    if offset > total:
        raise UploadFailed(f"the server holds {offset} bytes, more than the file's {total}")
    return offset


async def _pieces(f: Any, start: int, end: int, sent: Any) -> AsyncIterator[bytes]:
    f.seek(start)
    pos = start
    while pos < end:
        data = await asyncio.to_thread(f.read, min(READ_SIZE, end - pos))
        if not data:
            raise UploadFailed(f"the file is shorter than expected (ended at {pos} of {end})")
        pos += len(data)
        yield data
        sent(pos)


async def _patch(
    client: httpx.AsyncClient,
    url: str,
    f: Any,
    start: int,
    end: int,
    total: int,
    on_progress: ProgressCallback | None,
) -> int:
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
    response = await client.patch(url, content=_pieces(f, start, end, sent), headers=headers)
    return offset_of(response)
