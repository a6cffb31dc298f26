"""Values returned by the Streams SDK (frozen dataclasses parsed from the API's JSON)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "LiveInputFields",
    "LiveInputPage",
    "LiveInputWithKey",
    "PlaybackTicket",
    "Revocation",
    "parse_time",
]

Ingest = Literal["fmp4", "rtmp"]
Status = Literal["idle", "live", "error"]


def parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 time, got {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _time(value: Any) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("missing time")
    return parsed


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveInputFields:
    """What the control plane says about a live input."""

    id: str
    org_id: str
    external_input_id: str
    name: str
    ingest: Ingest
    rtmp_url: str
    namespace: str
    status: Status
    last_error: str | None
    status_at: datetime | None
    stream_key_rotated_at: datetime
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def fields_from(data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": data["id"],
            "org_id": data["org_id"],
            "external_input_id": data["external_input_id"],
            "name": data["name"],
            "ingest": data["ingest"],
            "rtmp_url": data["rtmp_url"],
            "namespace": data["namespace"],
            "status": data["status"],
            "last_error": data.get("last_error"),
            "status_at": parse_time(data.get("status_at")),
            "stream_key_rotated_at": _time(data["stream_key_rotated_at"]),
            "created_at": _time(data["created_at"]),
            "updated_at": _time(data["updated_at"]),
        }


@dataclass(frozen=True, slots=True)
class LiveInputWithKey[InputT: LiveInputFields]:
    """A live input with its stream key, as returned by create and rotate (key shown once).

    Unpacks like the seed's ``{ input, streamKey }``: ``input, stream_key = created``.
    """

    input: InputT
    stream_key: str

    def __iter__(self) -> Iterator[Any]:
        yield self.input
        yield self.stream_key

    def __repr__(self) -> str:  # never print the secret by accident
        return f"LiveInputWithKey(input={self.input!r}, stream_key='sk_…')"


@dataclass(frozen=True, slots=True)
class LiveInputPage[InputT: LiveInputFields]:
    """One page of ``live_inputs.list()``; iterate it, or pass ``next_cursor`` for the next."""

    data: list[InputT]
    next_cursor: str | None

    def __iter__(self) -> Iterator[InputT]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> InputT:
        return self.data[index]


@dataclass(frozen=True, slots=True)
class PlaybackTicket:
    """A signed playback URL: ``url`` = ``<relay_url>/<namespace>?token=<jwt>``."""

    url: str
    token: str
    expires_at: datetime
    jti: str
    kid: str
    sub: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlaybackTicket:
        return cls(
            url=data["url"],
            token=data["token"],
            expires_at=_time(data["expires_at"]),
            jti=data["jti"],
            kid=data["kid"],
            sub=data["sub"],
        )

    def __repr__(self) -> str:
        return f"PlaybackTicket(sub={self.sub!r}, jti={self.jti!r}, expires_at={self.expires_at!r})"


@dataclass(frozen=True, slots=True)
class Revocation:
    """A playback revocation: one token (``kind="jti"``) or every token of an input so far."""

    kind: Literal["jti", "sub"]
    jti: str | None
    sub: str | None
    before: datetime | None
    expires_at: datetime
    revoked_at: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Revocation:
        return cls(
            kind=data["kind"],
            jti=data.get("jti"),
            sub=data.get("sub"),
            before=parse_time(data.get("before")),
            expires_at=_time(data["expires_at"]),
            revoked_at=_time(data["revoked_at"]),
        )
