"""What the upload URL (:mod:`vod.uploads`) keeps of an upload, and where: an upload's
state (:class:`UploadInfo`) behind :class:`UploadBackend`, the control plane's database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["UploadBackend", "UploadInfo"]


@dataclass(frozen=True, slots=True)
class UploadInfo:
    asset_id: str
    playback_id: str
    org_id: str
    length: int | None
    deferred: bool
    expires_at: float
    completed: bool
    activity_at: float
    # The asset's status: "errored" before completion means the upload expired.
    status: str = "uploading"


class UploadBackend(Protocol):
    """What the upload URL needs from the control plane."""

    async def find_upload(self, token: str) -> UploadInfo | None: ...

    async def upload_of_asset(self, asset_id: str) -> UploadInfo | None: ...

    async def open_uploads(self) -> list[UploadInfo]: ...

    async def create_upload(
        self, org_id: str, *, name: str, length: int | None, meta: dict[str, str]
    ) -> tuple[str, UploadInfo]:
        """A new asset waiting for its upload; returns the token and the upload."""
        ...

    async def bind_length(self, asset_id: str, length: int | None, deferred: bool) -> None: ...

    async def record_progress(self, asset_id: str, offset: int, length: int | None) -> None:
        """Bytes stored so far (also marks activity: resets the idle timer)."""
        ...

    async def complete_upload(self, asset_id: str, size: int) -> None:
        """The whole file is stored: hand it to packaging."""
        ...

    async def expire_upload(self, asset_id: str) -> None: ...

    async def cancel_upload(self, asset_id: str) -> None: ...
