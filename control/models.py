"""Request and response bodies of the HTTP API (pydantic; they make the OpenAPI document)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from control.settings import MAX_PLAYBACK_TTL, MIN_PLAYBACK_TTL
from control.store import LiveInput

if TYPE_CHECKING:
    from control.service import PlaybackTicket

__all__ = [
    "ApiProblem",
    "CreateLiveInput",
    "LiveInputList",
    "LiveInputOut",
    "LiveInputWithKey",
    "PlaybackTicketOut",
    "PlaybackUrlRequest",
    "RevocationOut",
    "UpdateLiveInput",
    "at",
    "ts",
]

# Printable text without control characters (PostgreSQL refuses NUL in text).
Name = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", examples=["Live Demo"])
]
IngestName = Literal["fmp4", "rtmp"]


def ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def at(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateLiveInput(_Strict):
    name: Name
    ingest: IngestName = "fmp4"


class UpdateLiveInput(_Strict):
    name: Name | None = None
    ingest: IngestName | None = None


class PlaybackUrlRequest(_Strict):
    ttl_seconds: int = Field(
        3600,
        ge=MIN_PLAYBACK_TTL,
        le=MAX_PLAYBACK_TTL,
        description="Lifetime of the playback token, 60 s to 24 h.",
    )


class LiveInputOut(BaseModel):
    id: str = Field(examples=["li_01jc4x6k2m8q9r7s5t3v1w0y2z"])
    org_id: str
    external_input_id: str = Field(description="Ingest and live playback id (lv_...).")
    name: str
    ingest: IngestName
    rtmp_url: str = Field(description="rtmp://<host>/live/<external_input_id>")
    namespace: str = Field(description="MoQT namespace stream/<org_id>/<external_input_id>")
    status: Literal["idle", "live", "error"]
    last_error: str | None = Field(None, description="Detail of the last error status.")
    status_at: datetime | None = None
    stream_key_rotated_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, li: LiveInput, rtmp_url: str) -> LiveInputOut:
        return cls(
            id=li.id,
            org_id=li.org_id,
            external_input_id=li.external_input_id,
            name=li.name,
            ingest=li.ingest,
            rtmp_url=rtmp_url,
            namespace=li.namespace,
            status=li.status,
            last_error=li.status_detail if li.status == "error" else None,
            status_at=ts(li.status_at),
            stream_key_rotated_at=at(li.stream_key_rotated_at),
            created_at=at(li.created_at),
            updated_at=at(li.updated_at),
        )


class LiveInputWithKey(BaseModel):
    input: LiveInputOut
    streamKey: str = Field(
        description="The publisher stream key. Shown only in this response; store it now."
    )


class LiveInputList(BaseModel):
    data: list[LiveInputOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page.")


class PlaybackTicketOut(BaseModel):
    url: str = Field(description="<relay_url>/<namespace>?token=<jwt>")
    token: str
    expires_at: datetime
    jti: str
    kid: str
    sub: str

    @classmethod
    def of(cls, ticket: PlaybackTicket) -> PlaybackTicketOut:
        """The answer for a minted ticket (a live input's or an asset's)."""
        return cls(
            url=ticket.url,
            token=ticket.token,
            expires_at=at(ticket.expires_at),
            jti=ticket.jti,
            kid=ticket.kid,
            sub=ticket.sub,
        )


class RevocationOut(BaseModel):
    kind: Literal["jti", "sub"]
    jti: str | None = None
    sub: str | None = None
    before: datetime | None = Field(
        None, description="Tokens issued at or before this are revoked."
    )
    expires_at: datetime
    revoked_at: datetime


class ApiProblem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
