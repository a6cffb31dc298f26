"""``streams.assets`` on :class:`AsyncStreams`: the same ``_asset_ops`` plans as
:class:`~clutchcall.streams.Assets`, run with ``httpx.AsyncClient`` (awaitable)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Unpack

from clutchcall.streams._asset_ops import AssetOps, upload_file
from clutchcall.streams._asset_types import (
    AssetFields,
    AssetPage,
    ProgressCallback,
    UploadOptions,
    UploadPolicy,
    UploadTicket,
)
from clutchcall.streams._models import PlaybackTicket, Revocation
from clutchcall.streams._plan import apaginate

if TYPE_CHECKING:
    from clutchcall.streams._aio import AsyncStreams

__all__ = ["AsyncAsset", "AsyncAssets"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AsyncAsset(AssetFields):
    """An asset bound to the async client that fetched it."""

    _streams: AsyncStreams = field(repr=False, compare=False)

    async def refresh(self) -> AsyncAsset:
        return await self._streams.assets.get(self.id)

    # the same API as the sync client, hence a timeout parameter
    async def wait_ready(
        self,
        *,
        timeout: float = 600.0,  # noqa: ASYNC109
        poll: float = 1.0,
    ) -> AsyncAsset:
        return await self._streams.assets.wait_ready(self.id, timeout=timeout, poll=poll)

    async def signed_playback_url(self, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        return await self._streams.assets.signed_playback_url(self.id, ttl_seconds=ttl_seconds)

    async def revoke_playback(self) -> Revocation:
        return await self._streams.assets.revoke_playback(self.id)

    async def delete(self) -> None:
        await self._streams.assets.delete(self.id)


class AsyncAssets:
    """``streams.assets`` of :class:`AsyncStreams` (see :class:`~clutchcall.streams.Assets`)."""

    def __init__(self, streams: AsyncStreams, policy: UploadPolicy | None = None) -> None:
        self._streams = streams
        self.policy = policy or UploadPolicy()
        self._ops = AssetOps(lambda fields: AsyncAsset(**fields, _streams=streams))

    async def create_upload(
        self,
        *,
        name: str,
        idempotency_key: str | None = None,
        **options: Unpack[UploadOptions],
    ) -> UploadTicket[AsyncAsset]:
        return await self._streams._run(self._ops.create_upload(name, options, idempotency_key))

    createUpload = create_upload

    async def get(self, id: str) -> AsyncAsset:
        return await self._streams._run(self._ops.get(id))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> AssetPage[AsyncAsset]:
        return await self._streams._run(self._ops.list(limit, cursor))

    async def iter_all(self, *, page_size: int = 100) -> AsyncIterator[AsyncAsset]:
        async for item in apaginate(self.list, page_size):
            yield item

    async def delete(self, id: str) -> None:
        await self._streams._run(self._ops.delete(id))

    async def signed_playback_url(self, id: str, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        return await self._streams._run(self._ops.signed_playback_url(id, ttl_seconds))

    async def revoke_playback(self, id: str) -> Revocation:
        return await self._streams._run(self._ops.revoke_playback(id))

    async def wait_ready(
        self,
        id: str,
        *,
        timeout: float = 600.0,  # noqa: ASYNC109
        poll: float = 1.0,
    ) -> AsyncAsset:
        return await self._streams._run(self._ops.wait_ready(id, timeout, poll))

    async def upload(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        on_progress: ProgressCallback | None = None,
        **options: Unpack[UploadOptions],
    ) -> AsyncAsset:
        return await self._streams._run(
            self._ops.upload(path, name, on_progress, self.policy, options)
        )

    async def upload_file(
        self,
        upload_url: str,
        path: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        return await self._streams._run(upload_file(upload_url, path, on_progress, self.policy))
