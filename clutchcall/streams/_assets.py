"""``streams.assets``: on-demand assets (docs/vod.md) on the synchronous client.

::

    asset = streams.assets.upload("talk.mp4", name="Talk", on_progress=print)
    asset = streams.assets.wait_ready(asset.id)
    ticket = asset.signed_playback_url(ttl_seconds=3600)  # <base>/vod/pb_.../catalog.json?token=

``create_upload`` gives the upload capability alone (the seed's recipe 3);
``upload_file(upload_url, path)`` sends (or resumes) a file to one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from clutchcall.streams._asset_types import (
    OFFSET_TYPE,
    AssetFailed,
    AssetFields,
    AssetPage,
    ProgressCallback,
    UploadFailed,
    UploadPolicy,
    UploadTicket,
    create_body,
    file_pieces,
    offset_of,
    retryable,
    tus_headers,
)
from clutchcall.streams._errors import ApiError, ConfigurationError, ConnectionFailed
from clutchcall.streams._http import path_id
from clutchcall.streams._models import PlaybackTicket, Revocation, parse_time

if TYPE_CHECKING:
    from clutchcall.streams._client import Streams

__all__ = ["Asset", "Assets"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset(AssetFields):
    """An asset bound to the client that fetched it."""

    _streams: Streams = field(repr=False, compare=False)

    def refresh(self) -> Asset:
        return self._streams.assets.get(id=self.id)

    def wait_ready(self, *, timeout: float = 600.0, poll: float = 1.0) -> Asset:
        return self._streams.assets.wait_ready(self.id, timeout=timeout, poll=poll)

    def signed_playback_url(self, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        """``<base>/vod/<pb_id>/catalog.json?token=<jwt>`` (and its token)."""
        return self._streams.assets.signed_playback_url(id=self.id, ttl_seconds=ttl_seconds)

    def revoke_playback(self) -> Revocation:
        return self._streams.assets.revoke_playback(id=self.id)

    def delete(self) -> None:
        self._streams.assets.delete(id=self.id)


class Assets:
    """``streams.assets``: create uploads, upload files, get, list, delete, wait until ready."""

    def __init__(self, streams: Streams, policy: UploadPolicy | None = None) -> None:
        self._streams = streams
        self.policy = policy or UploadPolicy()

    def _asset(self, data: dict[str, Any]) -> Asset:
        return Asset(**AssetFields.fields_from(data), _streams=self._streams)

    def create_upload(
        self,
        *,
        name: str,
        max_duration_seconds: float | None = None,
        expires_in_seconds: int | None = None,
        require_signed_urls: bool | None = None,
        meta: dict[str, str] | None = None,
        size: int | None = None,
    ) -> UploadTicket[Asset]:
        """A new asset and its upload URL (no API key needed to use it, until it expires)."""
        body = create_body(
            name,
            max_duration_seconds=max_duration_seconds,
            expires_in_seconds=expires_in_seconds,
            require_signed_urls=require_signed_urls,
            meta=meta,
            size=size,
        )
        data = self._streams._request("POST", "/v1/assets/uploads", json=body)
        return UploadTicket(
            upload_url=data["uploadUrl"],
            asset_id=data["assetId"],
            playback_id=data["playbackId"],
            expires_at=parse_time(data.get("expiresAt")),
            asset=self._asset(data["asset"]),
        )

    # camelCase alias of the seed's TypeScript (streams.assets.createUpload({ name }))
    createUpload = create_upload

    def get(self, id: str) -> Asset:
        return self._asset(self._streams._request("GET", f"/v1/assets/{path_id(id)}"))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> AssetPage[Asset]:
        """One page, newest first; ``page.next_cursor`` fetches the next one."""
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        data = self._streams._request("GET", "/v1/assets", params=params)
        return AssetPage([self._asset(d) for d in data["data"]], data.get("next_cursor"))

    def iter_all(self, *, page_size: int = 100) -> Iterator[Asset]:
        cursor: str | None = None
        while True:
            page = self.list(limit=page_size, cursor=cursor)
            yield from page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def delete(self, id: str) -> None:
        """Delete the asset: its uploaded bytes and packaged files are removed."""
        self._streams._request("DELETE", f"/v1/assets/{path_id(id)}")

    def signed_playback_url(self, id: str, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        data = self._streams._request(
            "POST", f"/v1/assets/{path_id(id)}/playback_urls", json={"ttl_seconds": ttl_seconds}
        )
        return PlaybackTicket.from_json(data)

    def revoke_playback(self, id: str) -> Revocation:
        data = self._streams._request("POST", f"/v1/assets/{path_id(id)}/revoke_playback")
        return Revocation.from_json(data)

    def wait_ready(self, id: str, *, timeout: float = 600.0, poll: float = 1.0) -> Asset:
        """Poll until the asset is ``ready`` (returned) or ``errored`` (:class:`AssetFailed`);
        :class:`TimeoutError` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            asset = self.get(id)
            if asset.status == "ready":
                return asset
            if asset.status == "errored":
                error = asset.error or {}
                raise AssetFailed(asset.id, error.get("code", "unknown"), error.get("message", ""))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{id} is still {asset.status} after {timeout:g} s")
            time.sleep(min(poll, left))

    # --- uploading ---------------------------------------------------------------------------

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        on_progress: ProgressCallback | None = None,
        **create_options: Any,
    ) -> Asset:
        """Create an asset for the file at ``path`` and upload it, resuming after cut
        connections; ``on_progress(sent, total)`` follows it. Returns the asset as the
        server sees it once the last byte is stored (``processing`` or later)."""
        file = Path(path)
        size = _size_of(file)
        ticket = self.create_upload(name=name or file.name, size=size, **create_options)
        self.upload_file(ticket.upload_url, file, on_progress=on_progress)
        return self.get(ticket.asset_id)

    def upload_file(
        self,
        upload_url: str,
        path: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Send the file at ``path`` to ``upload_url`` from where the server's offset
        stands (so it also resumes an upload begun elsewhere); returns the bytes stored."""
        file = Path(path)
        total = _size_of(file)
        policy = self.policy
        client = self._streams._client()
        failures = 0
        offset: int | None = None
        last_error: BaseException | None = None
        with file.open("rb") as f:
            while True:
                try:
                    if offset is None:
                        offset = _head(client, upload_url, total)
                        if on_progress is not None:
                            on_progress(offset, total)
                    if offset >= total:
                        return offset
                    end = (
                        total
                        if policy.chunk_size is None
                        else min(total, offset + policy.chunk_size)
                    )
                    reached = _patch(client, upload_url, f, offset, end, total, on_progress)
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
                time.sleep(policy.delay(failures))
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


def _head(client: httpx.Client, url: str, total: int) -> int:
    response = client.head(url, headers=tus_headers())
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
    client: httpx.Client,
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
    response = client.patch(url, content=file_pieces(f, start, end, sent), headers=headers)
    return offset_of(response)
