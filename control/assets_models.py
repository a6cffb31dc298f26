"""Request and response bodies of the assets API (docs/vod.md), for FastAPI and events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from control.models import Name

__all__ = [
    "AssetError",
    "AssetList",
    "AssetOut",
    "CreateUpload",
    "CreateUploadOut",
    "RenditionOut",
]

MetaValue = Annotated[str, Field(max_length=500)]


class CreateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    maxDurationSeconds: float | None = Field(
        None, gt=0, le=24 * 3600, description="Longer sources end errored with too_long."
    )
    expiresInSeconds: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="Lifetime of the upload URL."
    )
    requireSignedUrls: bool = False
    meta: dict[Annotated[str, Field(min_length=1, max_length=64)], MetaValue] = Field(
        default_factory=dict, max_length=16
    )
    size: int | None = Field(None, ge=1, description="The file's length in bytes, when known.")


class AssetError(BaseModel):
    code: Literal["not_media", "truncated", "too_long", "packaging_failed", "upload_expired"]
    message: str


class RenditionOut(BaseModel):
    name: str
    width: int | None
    height: int | None
    bitrate: int
    codec: str


class AssetOut(BaseModel):
    id: str = Field(examples=["as_01jc4x6k2m8q9r7s5t3v1w0y2z"])
    playback_id: str = Field(description="What players use (pb_...).")
    name: str
    status: Literal["waiting_upload", "uploading", "processing", "ready", "errored"]
    progress: float | None = Field(description="Percent while uploading or processing.")
    error: AssetError | None
    size: int | None = Field(description="Bytes of the uploaded file.")
    duration: float | None = Field(description="Seconds, once ready.")
    renditions: list[RenditionOut]
    require_signed_urls: bool
    meta: dict[str, str]
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None
    upload_expires_at: datetime
    playback_url: str | None = Field(
        description="Unsigned catalog URL (null when the asset requires signed URLs)."
    )


class AssetList(BaseModel):
    data: list[AssetOut]
    next_cursor: str | None


class CreateUploadOut(BaseModel):
    uploadUrl: str = Field(description="The upload capability: no API key needed.")
    assetId: str
    playbackId: str
    expiresAt: datetime
    asset: AssetOut
