"""Origin settings: ``mesh.settings.OriginSettings`` plus the ingest knobs of this package.

Loaded like every role (defaults < TOML ``[origin]`` < ``CLUTCHCALL_ORIGIN_*`` /
``CLUTCHCALL_*`` < flags) with :func:`mesh.settings.load_settings`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from media import AudioSpec, LadderSpec, VideoRung
from mesh.settings import OriginSettings

__all__ = ["OriginNodeSettings", "parse_rungs"]


def parse_rungs(values: tuple[str, ...]) -> tuple[VideoRung, ...]:
    """``("1080p:1080:5000000", ...)`` -> video rungs (name:height:bits per second)."""
    rungs = []
    for value in values:
        parts = value.split(":")
        if len(parts) != 3:
            raise ValueError(f"ladder rung {value!r}: expected NAME:HEIGHT:BITRATE")
        name, height, bitrate = parts
        try:
            rungs.append(VideoRung(name, int(height), int(bitrate)))
        except ValueError as exc:
            raise ValueError(f"ladder rung {value!r}: {exc}") from None
    return tuple(rungs)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OriginNodeSettings(OriginSettings):
    #: Video rungs of the RTMP ladder (capped at the source height, never upscaled).
    ladder: tuple[str, ...] = ("1080p:1080:5000000", "720p:720:2800000", "360p:360:800000")
    audio: Literal["aac", "opus", "none"] = "aac"
    group_duration: float = 2.0  # seconds per GOP = MoQT group (RTMP ladder)
    chunk_duration: float = 0.5  # seconds per CMAF chunk = MoQT object (RTMP ladder)
    preset: str = "veryfast"
    #: Write prft (wallclock) boxes into the ladder's chunks (latency measurement).
    prft: bool = True
    #: A reconnect within this many seconds after an RTMP broadcast ended continues its ids.
    resume_window: float = 30.0
    #: Seconds a live input's broadcast stays open after its publisher dropped (RTMP
    #: connection lost, MoQT session gone): the same input publishing again within them
    #: continues the same tracks and viewers go on; 0 ends the broadcast at once.
    publisher_reconnect_window: float = 10.0
    max_object_size: int = 8 << 20
    cache_bytes: int = 16 << 20  # per-track cache budget beyond the latest group
    cache_age: float = 30.0

    def __post_init__(self) -> None:
        OriginSettings.__post_init__(self)
        self.ladder_spec()  # raises ValueError on a bad ladder
        for name in ("resume_window", "cache_age", "publisher_reconnect_window"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_object_size <= 0 or self.cache_bytes <= 0:
            raise ValueError("max_object_size and cache_bytes must be positive")

    def ladder_spec(self) -> LadderSpec:
        audio = None if self.audio == "none" else AudioSpec(codec=self.audio)
        return LadderSpec(
            video=parse_rungs(self.ladder),
            audio=audio,
            group_duration=self.group_duration,
            chunk_duration=self.chunk_duration,
            preset=self.preset,
            prft=self.prft,
        )
