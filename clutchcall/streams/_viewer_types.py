"""What the viewer hands out (chunks, close reasons) and how it tracks one subscription."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from clutchcall.streams._cmaf import CmafError, retag_chunk
from clutchcall.streams._connect import TlsOptions
from clutchcall.streams._sequencer import Released, TrackSequencer
from media import CATALOG_TRACK, CatalogTrack
from media.fmp4 import InitSegment
from moqt.errors import RequestErrorCode, SessionCloseCode

__all__ = [
    "AUTH_CLOSE_CODES",
    "AUTH_REQUEST_CODES",
    "Chunk",
    "ChunkCallback",
    "CloseCallback",
    "CloseReason",
    "Lane",
    "ViewerOptions",
    "close_reason",
    "lane_priority",
    "retag",
]

CloseReason = Literal["auth_failed", "ended", "closed", "network", "not_found", "error"]
ChunkCallback = Callable[[bool, "Chunk"], object]
CloseCallback = Callable[[str, str], object]

AUTH_REQUEST_CODES = frozenset(
    {
        RequestErrorCode.UNAUTHORIZED,
        RequestErrorCode.MALFORMED_AUTH_TOKEN,
        RequestErrorCode.EXPIRED_AUTH_TOKEN,
    }
)
AUTH_CLOSE_CODES = frozenset(
    {
        SessionCloseCode.UNAUTHORIZED,
        SessionCloseCode.MALFORMED_AUTH_TOKEN,
        SessionCloseCode.EXPIRED_AUTH_TOKEN,
    }
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """What ``on_chunk`` receives: ``data`` to append to the output, and where it came from."""

    data: bytes
    is_init: bool
    kind: Literal["init", "video", "audio"]
    rendition: str | None
    group_id: int | None = None
    object_id: int | None = None


@dataclass(frozen=True, slots=True)
class ViewerOptions:
    """What a viewer was opened with: built once by ``open()`` (which checks the values) and
    handed whole to the classes that make the viewer. The defaults are ``open()``'s."""

    tls: TlsOptions  # resolve_tls(verify, cafile): the environment's say included
    on_chunk: ChunkCallback | None = None
    on_close: CloseCallback | None = None
    rendition: str | None = None  # a pinned video rendition (None: ABR / the highest)
    max_height: int | None = None
    audio: bool = True
    # Live (MoQT) only.
    start_timeout: float = 30.0
    connect_timeout: float = 10.0
    reconnect: float = 10.0
    fallback_urls: tuple[str, ...] = ()  # parsed: same path and token as the target
    group_duration: float = 2.0  # until the catalog names one or it is measured
    stall_timeout: float = 2.0
    ping_timeout: float = 1.5
    # On demand (HTTPS) only.
    start: float = 0.0
    prefetch: int = 4
    request_timeout: float = 30.0
    retries: int = 3


@dataclass(slots=True, eq=False)
class Lane:
    kind: Literal["catalog", "video", "audio"]
    track: CatalogTrack | None
    seq: TrackSequencer
    request_id: int | None = None
    fetch_id: int | None = None
    init: InitSegment | None = None
    pending: list[Released] = field(default_factory=list)
    switch_group: int | None = None
    switch_since: float | None = None
    floor: int = -1  # groups below this are not played (they overlap the previous rendition)

    @property
    def name(self) -> str:
        return self.track.name if self.track is not None else CATALOG_TRACK


def lane_priority(lane: Lane) -> int:
    return {"catalog": 0, "audio": 64, "video": 128}[lane.kind]


def retag(payload: bytes, track_id: int) -> bytes:
    try:
        return retag_chunk(payload, track_id)
    except CmafError:
        return payload


def close_reason(code: int, reason: str, by_peer: bool) -> tuple[str, str]:
    if code in AUTH_CLOSE_CODES or reason == "auth_failed":
        return "auth_failed", reason or "unauthorized"
    if not by_peer and code == SessionCloseCode.NO_ERROR:
        return "closed", reason or "closed"
    return (
        "network",
        f"session closed ({code:#x}): {reason}" if reason else f"session closed ({code:#x})",
    )
