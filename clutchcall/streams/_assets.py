"""``streams.assets``: on-demand assets (docs/vod.md) on the synchronous client.

::

    asset = streams.assets.upload("talk.mp4", name="Talk", on_progress=print)
    asset = streams.assets.wait_ready(asset.id)
    ticket = asset.signed_playback_url(ttl_seconds=3600)  # <base>/vod/pb_.../catalog.json?token=

``create_upload`` gives the upload capability alone (the seed's recipe 3);
``upload_file(upload_url, path)`` sends (or resumes) a file to one. Each call is
``_asset_ops``'s plan, run with ``httpx.Client`` (the asyncio twin, ``_assets_aio``,
runs the same plans).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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
from clutchcall.streams._plan import paginate

if TYPE_CHECKING:
    from clutchcall.streams._client import Streams

__all__ = ["Asset", "Assets"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset(AssetFields):
    """An asset bound to the client that fetched it."""

    _streams: Streams = field(repr=False, compare=False)

    def refresh(self) -> Asset:
        return self._streams.assets.get(self.id)

    def wait_ready(self, *, timeout: float = 600.0, poll: float = 1.0) -> Asset:
        return self._streams.assets.wait_ready(self.id, timeout=timeout, poll=poll)

    def signed_playback_url(self, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        """``<base>/vod/<pb_id>/catalog.json?token=<jwt>`` (and its token)."""
        return self._streams.assets.signed_playback_url(self.id, ttl_seconds=ttl_seconds)

    def revoke_playback(self) -> Revocation:
        return self._streams.assets.revoke_playback(self.id)

    def delete(self) -> None:
        self._streams.assets.delete(self.id)


class Assets:
    """``streams.assets``: create uploads, upload files, get, list, delete, wait until ready."""

    def __init__(self, streams: Streams, policy: UploadPolicy | None = None) -> None:
        self._streams = streams
        self.policy = policy or UploadPolicy()
        self._ops = AssetOps(lambda fields: Asset(**fields, _streams=streams))

    def create_upload(
        self,
        *,
        name: str,
        idempotency_key: str | None = None,
        **options: Unpack[UploadOptions],
    ) -> UploadTicket[Asset]:
        """A new asset and its upload URL (no API key needed to use it, until it expires);
        retried safely under its Idempotency-Key (``idempotency_key``, else a new UUID)."""
        return self._streams._run(self._ops.create_upload(name, options, idempotency_key))

    # camelCase alias of the seed's TypeScript (streams.assets.createUpload({ name }))
    createUpload = create_upload

    def get(self, id: str) -> Asset:
        return self._streams._run(self._ops.get(id))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> AssetPage[Asset]:
        """One page, newest first; ``page.next_cursor`` fetches the next one."""
        return self._streams._run(self._ops.list(limit, cursor))

    def iter_all(self, *, page_size: int = 100) -> Iterator[Asset]:
        yield from paginate(self.list, page_size)

    def delete(self, id: str) -> None:
        """Delete the asset: its uploaded bytes and packaged files are removed."""
        self._streams._run(self._ops.delete(id))

    def signed_playback_url(self, id: str, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        return self._streams._run(self._ops.signed_playback_url(id, ttl_seconds))

    def revoke_playback(self, id: str) -> Revocation:
        return self._streams._run(self._ops.revoke_playback(id))

    def wait_ready(self, id: str, *, timeout: float = 600.0, poll: float = 1.0) -> Asset:
        """Poll until the asset is ``ready`` (returned) or ``errored`` (:class:`AssetFailed`);
        :class:`TimeoutError` after ``timeout`` seconds."""
        return self._streams._run(self._ops.wait_ready(id, timeout, poll))

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        on_progress: ProgressCallback | None = None,
        **options: Unpack[UploadOptions],
    ) -> Asset:
        """Create an asset for the file at ``path`` and upload it, resuming after cut
        connections; ``on_progress(sent, total)`` follows it. Returns the asset as the
        server sees it once the last byte is stored (``processing`` or later)."""
        return self._streams._run(self._ops.upload(path, name, on_progress, self.policy, options))

    def upload_file(
        self,
        upload_url: str,
        path: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Send the file at ``path`` to ``upload_url`` from where the server's offset
        stands (so it also resumes an upload begun elsewhere); returns the bytes stored."""
        return self._streams._run(upload_file(upload_url, path, on_progress, self.policy))
