"""What the sync and async asset clients share: values, errors, the upload protocol's rules.

Uploads speak tus 1.0.0 (docs/vod.md): ``HEAD`` answers ``Upload-Offset``;
``PATCH`` with ``Upload-Offset`` and ``Content-Type: application/offset+octet-stream``
appends. The client sends ``Upload-Length`` so the server knows the length at
once, streams the rest of the file in one ``PATCH`` (or ``chunk_size`` pieces),
and after a cut connection asks ``HEAD`` where to resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict

import httpx

from clutchcall.streams._errors import ApiError, StreamsError
from clutchcall.streams._http import check_response
from clutchcall.streams._models import parse_time

__all__ = [
    "AssetFailed",
    "AssetFields",
    "AssetPage",
    "AssetStatus",
    "ProgressCallback",
    "Rendition",
    "UploadFailed",
    "UploadOptions",
    "UploadPolicy",
    "UploadTicket",
]

AssetStatus = Literal["waiting_upload", "uploading", "processing", "ready", "errored"]
ProgressCallback = Callable[[int, int], object]
"""``on_progress(sent_bytes, total_bytes)``, called as the upload advances."""

TUS_VERSION = "1.0.0"
OFFSET_TYPE = "application/offset+octet-stream"
READ_SIZE = 1 << 20


class AssetFailed(StreamsError):
    """The asset ended ``errored`` (``code``: not_media, truncated, too_long, ...)."""

    def __init__(self, asset_id: str, code: str, message: str) -> None:
        super().__init__(f"{asset_id} failed: {code}: {message}")
        self.asset_id = asset_id
        self.code = code
        self.message = message


class UploadFailed(StreamsError):
    """The upload could not be completed (after the retries); ``offset`` bytes are stored."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Rendition:
    name: str
    width: int | None
    height: int | None
    bitrate: int
    codec: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetFields:
    """What the control plane says about an on-demand asset (docs/vod.md ``Asset``)."""

    id: str
    playback_id: str
    name: str
    status: AssetStatus
    progress: float | None
    error: dict[str, str] | None
    size: int | None
    duration: float | None
    renditions: tuple[Rendition, ...]
    require_signed_urls: bool
    meta: dict[str, str]
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None
    upload_expires_at: datetime | None
    playback_url: str | None

    @staticmethod
    def fields_from(data: dict[str, Any]) -> dict[str, Any]:
        created = parse_time(data["created_at"])
        updated = parse_time(data["updated_at"])
        assert created is not None and updated is not None
        return {
            "id": data["id"],
            "playback_id": data["playback_id"],
            "name": data["name"],
            "status": data["status"],
            "progress": data.get("progress"),
            "error": data.get("error"),
            "size": data.get("size"),
            "duration": data.get("duration"),
            "renditions": tuple(
                Rendition(
                    name=r["name"],
                    width=r.get("width"),
                    height=r.get("height"),
                    bitrate=int(r.get("bitrate") or 0),
                    codec=str(r.get("codec") or ""),
                )
                for r in data.get("renditions") or ()
            ),
            "require_signed_urls": bool(data.get("require_signed_urls")),
            "meta": dict(data.get("meta") or {}),
            "created_at": created,
            "updated_at": updated,
            "ready_at": parse_time(data.get("ready_at")),
            "upload_expires_at": parse_time(data.get("upload_expires_at")),
            "playback_url": data.get("playback_url"),
        }


@dataclass(frozen=True, slots=True)
class AssetPage[AssetT: AssetFields]:
    """One page of ``assets.list()`` (newest first); ``next_cursor`` fetches the next."""

    data: list[AssetT]
    next_cursor: str | None

    def __iter__(self) -> Iterator[AssetT]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> AssetT:
        return self.data[index]


@dataclass(frozen=True, slots=True)
class UploadTicket[AssetT: AssetFields]:
    """What ``create_upload`` returns: the upload capability and the new asset.

    ``upload_url`` / ``asset_id`` / ``playback_id`` / ``expires_at``, also spelled as
    the seed's ``uploadUrl`` / ``assetId`` / ``playbackId`` / ``expiresAt``.
    """

    upload_url: str
    asset_id: str
    playback_id: str
    expires_at: datetime | None
    asset: AssetT

    @property
    def uploadUrl(self) -> str:
        return self.upload_url

    @property
    def assetId(self) -> str:
        return self.asset_id

    @property
    def playbackId(self) -> str:
        return self.playback_id

    @property
    def expiresAt(self) -> datetime | None:
        return self.expires_at

    def __iter__(self) -> Iterator[Any]:  # ``upload_url, asset_id = ticket``
        yield self.upload_url
        yield self.asset_id

    def __repr__(self) -> str:  # the URL is a capability: keep it out of logs
        return f"UploadTicket(asset_id={self.asset_id!r}, playback_id={self.playback_id!r})"


class UploadOptions(TypedDict, total=False):
    """The optional settings of ``assets.create_upload(name=, ...)`` and ``assets.upload``."""

    max_duration_seconds: float | None
    expires_in_seconds: int | None
    require_signed_urls: bool | None
    meta: dict[str, str] | None
    size: int | None


_OPTION_KEYS = {
    "max_duration_seconds": "maxDurationSeconds",
    "expires_in_seconds": "expiresInSeconds",
    "require_signed_urls": "requireSignedUrls",
    "meta": "meta",
    "size": "size",
}


def create_body(name: str, options: UploadOptions) -> dict[str, Any]:
    """The JSON of ``POST /v1/assets/uploads``; an unknown option is a ``TypeError``, as a
    misspelled keyword argument is."""
    body: dict[str, Any] = {"name": name}
    for key, value in options.items():
        if key not in _OPTION_KEYS:
            raise TypeError(f"create_upload() got an unexpected keyword argument {key!r}")
        if value is not None:
            body[_OPTION_KEYS[key]] = value
    return body


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """Retries of an upload: up to ``retries`` failures in a row without progress, waiting
    ``base * 2**n`` (at most ``cap``) seconds; progress resets the count."""

    retries: int = 8
    base: float = 0.5
    cap: float = 15.0
    chunk_size: int | None = None  # bytes per PATCH; None: the rest of the file in one

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, failures - 1)) * random.uniform(0.8, 1.0)


# Answers worth retrying: the upload is busy (423), or the server had a moment (5xx).
RETRY_STATUSES = frozenset({408, 423, 425, 429, 500, 502, 503, 504})


def tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


def offset_of(response: httpx.Response) -> int:
    """The ``Upload-Offset`` of a HEAD/PATCH answer (an :class:`ApiError` for others)."""
    if not response.is_success:
        check_response(response)  # raises the typed problem
    value = response.headers.get("upload-offset")
    try:
        offset = int(value) if value is not None else -1
    except ValueError:
        offset = -1
    if offset < 0:
        raise UploadFailed(f"the upload server sent no valid Upload-Offset ({value!r})")
    return offset


def retryable(exc: BaseException) -> bool:
    """A failure worth asking ``HEAD`` where to resume."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, ApiError):
        return exc.status in RETRY_STATUSES or exc.status == 409  # 409: offset moved
    return False


def file_pieces(f: Any, start: int, end: int, sent: Callable[[int], None]) -> Iterator[bytes]:
    """Bytes ``start..end`` of the open binary file ``f``, in 1 MiB pieces."""
    f.seek(start)
    pos = start
    while pos < end:
        data = f.read(min(READ_SIZE, end - pos))
        if not data:
            raise UploadFailed(f"the file is shorter than expected (ended at {pos} of {end})")
        pos += len(data)
        yield data
        sent(pos)
