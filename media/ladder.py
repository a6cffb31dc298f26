"""ABR ladder description: which renditions to encode, and how, for one source size.

:class:`LadderSpec` is the configuration (default 1080p / 720p / 360p H.264 plus
AAC 128 kb/s, 2 s groups cut in 500 ms CMAF chunks). :meth:`LadderSpec.plan`
caps it at the source resolution: a rung taller than the source is dropped, never
upscaled; a source smaller than every rung gets one rendition at its own size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .packager import TrackPlan

__all__ = [
    "DEFAULT_VIDEO_RUNGS",
    "AudioSpec",
    "LadderPlan",
    "LadderSpec",
    "PlannedVideo",
    "VideoRung",
]


@dataclass(frozen=True, slots=True)
class VideoRung:
    """One video rendition of the ladder: output height (width keeps the aspect) and bitrate (b/s)."""

    name: str
    height: int
    bitrate: int

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"invalid rendition name {self.name!r}")
        if self.height < 16 or self.height % 2:
            raise ValueError(f"rendition height must be even and >= 16, got {self.height}")
        if self.bitrate <= 0:
            raise ValueError("rendition bitrate must be > 0")


DEFAULT_VIDEO_RUNGS = (
    VideoRung("1080p", 1080, 5_000_000),
    VideoRung("720p", 720, 2_800_000),
    VideoRung("360p", 360, 800_000),
)


@dataclass(frozen=True, slots=True)
class AudioSpec:
    """The audio rendition: AAC-LC (``aac``) or Opus (``opus``)."""

    name: str = "audio"
    codec: str = "aac"
    bitrate: int = 128_000
    sample_rate: int = 48_000
    channels: int = 2

    def __post_init__(self) -> None:
        if self.codec not in ("aac", "opus"):
            raise ValueError(f"audio codec must be 'aac' or 'opus', got {self.codec!r}")
        if self.codec == "opus" and self.sample_rate != 48_000:
            raise ValueError("Opus runs at 48 kHz")
        if self.bitrate <= 0 or self.sample_rate <= 0 or not 1 <= self.channels <= 8:
            raise ValueError("invalid audio bitrate, sample rate or channel count")

    @property
    def encoder(self) -> str:
        return "aac" if self.codec == "aac" else "libopus"


@dataclass(frozen=True, slots=True)
class PlannedVideo:
    """A rung resolved against the source: ``width`` is ``None`` when the source size is unknown."""

    name: str
    width: int | None
    height: int
    bitrate: int


@dataclass(frozen=True, slots=True)
class LadderSpec:
    """How to transcode one input into aligned CMAF renditions."""

    video: tuple[VideoRung, ...] = DEFAULT_VIDEO_RUNGS
    audio: AudioSpec | None = field(default_factory=AudioSpec)
    group_duration: float = 2.0  # seconds per GOP = MoQT group, identical on every rendition
    chunk_duration: float = 0.5  # seconds per CMAF chunk = MoQT object
    preset: str = "veryfast"
    tune: str | None = "zerolatency"
    profile: str = "high"
    framerate: float | None = None  # output frame rate; None keeps the source's
    prft: bool = True  # write prft boxes (wallclock) for latency measurement

    def __post_init__(self) -> None:
        if not self.video and self.audio is None:
            raise ValueError("a ladder needs at least one rendition")
        names = [r.name for r in self.video] + ([self.audio.name] if self.audio else [])
        if len(set(names)) != len(names):
            raise ValueError(f"rendition names must be unique: {names}")
        if not 0.1 <= self.group_duration <= 20:
            raise ValueError("group_duration must be within [0.1, 20] seconds")
        if not 0 < self.chunk_duration <= self.group_duration:
            raise ValueError("chunk_duration must be > 0 and <= group_duration")
        if self.framerate is not None and not 0 < self.framerate <= 240:
            raise ValueError("framerate must be within (0, 240]")

    @classmethod
    def single(
        cls,
        height: int,
        bitrate: int,
        *,
        name: str | None = None,
        audio: AudioSpec | None = None,
        group_duration: float = 2.0,
        chunk_duration: float = 0.5,
    ) -> LadderSpec:
        """A one-rendition ladder (test patterns, demos)."""
        rung = VideoRung(name or f"{height}p", height, bitrate)
        return cls(
            video=(rung,), audio=audio, group_duration=group_duration, chunk_duration=chunk_duration
        )

    def plan(self, source_width: int | None = None, source_height: int | None = None) -> LadderPlan:
        """Resolve the rungs against the source size (capped, never upscaled)."""
        if (source_width is None) != (source_height is None):
            raise ValueError("give both source dimensions or neither")
        if source_width is None or source_height is None:
            planned = tuple(PlannedVideo(r.name, None, r.height, r.bitrate) for r in self.video)
            return LadderPlan(self, planned, None)
        if source_width <= 0 or source_height <= 0:
            raise ValueError("source dimensions must be > 0")
        kept = [r for r in self.video if r.height <= source_height]
        if not kept and self.video:
            smallest = min(self.video, key=lambda r: r.height)
            height = max(2, source_height - source_height % 2)
            kept = [VideoRung(f"{height}p", height, smallest.bitrate)] if height >= 16 else []
        planned = tuple(
            PlannedVideo(
                r.name, _even(source_width * r.height / source_height), r.height, r.bitrate
            )
            for r in kept
        )
        return LadderPlan(self, planned, (source_width, source_height))


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


@dataclass(frozen=True, slots=True)
class LadderPlan:
    """The renditions one transcode produces."""

    spec: LadderSpec
    video: tuple[PlannedVideo, ...]
    source_size: tuple[int, int] | None

    @property
    def audio(self) -> AudioSpec | None:
        return self.spec.audio

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.video) + (
            (self.spec.audio.name,) if self.spec.audio else ()
        )

    def track_plans(
        self, *, framerate: float | None = None, audio: bool = True
    ) -> tuple[TrackPlan, ...]:
        """Catalog metadata of every rendition: the video renditions form alternate group 1.

        Priorities (lower is more important, MoQT style): audio 1, then video from the
        cheapest rendition up, so the costliest is dropped first under congestion.
        """
        fps = self.spec.framerate or framerate
        plans: list[TrackPlan] = []
        if audio and self.spec.audio is not None:
            plans.append(TrackPlan(self.spec.audio.name, self.spec.audio.bitrate, priority=1))
        for rank, v in enumerate(sorted(self.video, key=lambda v: v.bitrate)):
            plans.append(
                TrackPlan(v.name, v.bitrate, framerate=fps, alt_group=1, priority=2 + rank)
            )
        return tuple(plans)

    def bitrate(self, name: str) -> int:
        for v in self.video:
            if v.name == name:
                return v.bitrate
        if self.spec.audio is not None and self.spec.audio.name == name:
            return self.spec.audio.bitrate
        raise KeyError(name)
