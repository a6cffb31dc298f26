"""Package one uploaded file into CMAF + HLS with the live ladder (docs/vod.md, "Packaging").

:func:`package_asset` inspects the source (``ffmpeg -i``), refuses what is not
media, is cut short or is too long with a :class:`PackagingFailed` whose message
a person understands, then runs the same supervised ffmpeg ladder as live
(:class:`media.ffmpeg.Transcoder`, 2 s closed GOPs forced at the same times on
every rendition) and places its CMAF chunks into groups with the live
:class:`media.BroadcastPackager`, so a segment of every track is exactly one
MoQT group. The output directory holds::

    catalog.json                 the CMSF catalog (isLive false, trackDuration, timeline)
    master.m3u8                  HLS multivariant playlist
    <track>/init.mp4             the CMAF header
    <track>/<group>.m4s          group <group>: one closed GOP (its CMAF chunks)
    <track>/index.m3u8           HLS media playlist

It is written into ``.<name>.tmp-*`` beside ``job.output`` and renamed into
place only when complete, so a reader never sees half an asset.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import structlog

from media.catalog import Catalog, CatalogTrack
from media.errors import FfmpegError, MediaError
from media.ffmpeg import FileSource, Transcoder, ffmpeg_exe
from media.fmp4 import Fragment, InitSegment
from media.ladder import AudioSpec, LadderSpec
from media.packager import ObjectReady, build_catalog

from . import hls

__all__ = [
    "STALL_TIMEOUT",
    "VOD_LADDER",
    "PackagingFailed",
    "PackagingJob",
    "PackagingResult",
    "Rendition",
    "SegmentInfo",
    "SourceInfo",
    "TrackOutput",
    "inspect_source",
    "package_asset",
]

_log = structlog.get_logger("vod.packaging")

# The live ladder without wallclock stamps (meaningless for a file).
VOD_LADDER: Final = LadderSpec(prft=False)

_PROBE_TIMEOUT: Final = 30.0
STALL_TIMEOUT: Final = 120.0
_DURATION_RE = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
# ffmpeg reads an upload only with these demuxers and only from the local file: a
# playlist or concat script (hls, ffconcat) would make it open other files (another
# org's upload) or URLs, and text or image demuxers "read" any bytes as a picture.
_INPUT_FORMATS: Final = (
    "mov,matroska,mpegts,mpeg,flv,avi,asf,mxf,ogg,wav,mp3,aac,flac,h264,hevc,mpegvideo,ivf,dv"
)
_SAFE_INPUT: Final = ("-format_whitelist", _INPUT_FORMATS, "-protocol_whitelist", "file")
_SIZE_RE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_ROTATION_RE = re.compile(r"rotation of (-?[\d.]+) degrees")
_FPS_RE = re.compile(r"([\d.]+) fps")
# Top-level ISO-BMFF box types: a file that starts with one is an MP4/MOV family file.
_BMFF_TYPES: Final = frozenset(
    {"ftyp", "styp", "moov", "mdat", "free", "skip", "wide", "pnot", "uuid", "moof", "sidx"}
)
# A packaged duration this much shorter than the declared one means the file ends early.
_SHORT_FRACTION: Final = 0.05
_SHORT_MIN_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class PackagingJob:
    """One asset to package: ``source`` (the upload) into the directory ``output``."""

    asset_id: str
    playback_id: str
    namespace: str
    source: Path
    output: Path
    max_duration_s: float | None


@dataclass(frozen=True, slots=True)
class Rendition:
    """A packaged track as the API lists it (``Asset.renditions``)."""

    name: str
    width: int | None
    height: int | None
    bitrate: int
    codec: str


@dataclass(frozen=True, slots=True)
class PackagingResult:
    duration_s: float
    renditions: tuple[Rendition, ...]
    size_bytes: int


class PackagingFailed(Exception):
    """Packaging ended without an asset. ``code``: ``not_media`` | ``truncated`` |
    ``too_long`` | ``packaging_failed``; ``str(exc)`` is a sentence for a person.
    ``retryable`` is true when ffmpeg itself failed (a crash is retried once)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class _UploadSource(FileSource):
    """A :class:`FileSource` opened only with the allowed demuxers, from the file itself."""

    def input_args(self) -> list[str]:
        return [*_SAFE_INPUT, "-i", self.path]


@dataclass(frozen=True, slots=True)
class SourceInfo:
    duration_s: float | None
    width: int | None
    height: int | None
    fps: float | None
    has_video: bool
    has_audio: bool


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One media segment = one group: decode start and duration in seconds, bytes."""

    group: int
    start_s: float
    pts_ms: int
    duration_s: float
    size: int


@dataclass(slots=True)
class TrackOutput:
    """What was written for one track."""

    name: str
    segments: list[SegmentInfo] = dataclasses.field(default_factory=list)
    end_s: float = 0.0
    size: int = 0
    _file: IO[bytes] | None = None
    _group: int | None = None
    _start_s: float = 0.0
    _pts_ms: int = 0
    _bytes: int = 0

    def add(self, directory: Path, group: int, fragment: Fragment) -> None:
        if group != self._group:
            self._close()
            self._group = group
            self._start_s = fragment.start_seconds
            pts = fragment.earliest_presentation_time / fragment.timescale
            self._pts_ms = max(0, round(pts * 1000))
            self._bytes = 0
            self._file = open(directory / f"{group}.m4s", "wb")
        assert self._file is not None
        self._file.write(fragment.data)
        self._bytes += len(fragment.data)
        self.end_s = max(self.end_s, fragment.end_time / fragment.timescale)

    def _close(self) -> None:
        if self._file is None or self._group is None:
            return
        self._file.close()
        self._file = None
        self.segments.append(
            SegmentInfo(self._group, self._start_s, self._pts_ms, 0.0, self._bytes)
        )
        self.size += self._bytes

    def finish(self) -> None:
        """Close the last segment and compute every segment's duration."""
        self._close()
        self._group = None
        fixed = []
        for i, seg in enumerate(self.segments):
            nxt = self.segments[i + 1].start_s if i + 1 < len(self.segments) else self.end_s
            fixed.append(dataclasses.replace(seg, duration_s=max(0.0, nxt - seg.start_s)))
        self.segments = fixed

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def inspect_source(path: Path, *, exe: str | None = None) -> SourceInfo:
    """Read duration and streams with ``ffmpeg -i``; :class:`PackagingFailed` when it is no media."""
    truncated = await asyncio.to_thread(_bmff_truncation, path)
    try:
        proc = await asyncio.create_subprocess_exec(
            exe or ffmpeg_exe(), "-hide_banner", "-nostdin", *_SAFE_INPUT, "-i", str(path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except (OSError, MediaError) as exc:
        raise PackagingFailed(
            "packaging_failed", f"The media tools could not be started ({exc}).", retryable=True
        ) from exc
    try:
        _, err = await asyncio.wait_for(proc.communicate(), _PROBE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise PackagingFailed(
            "not_media", "The file could not be read as audio or video in time."
        ) from None
    text = err.decode("utf-8", "replace")
    if truncated is not None:
        raise PackagingFailed("truncated", truncated)
    if "Stream #" not in text:
        raise PackagingFailed(
            "not_media", "The file is not a video or audio file this service can read."
        )
    video = next((ln for ln in text.splitlines() if "Stream #" in ln and ": Video: " in ln), None)
    audio = any("Stream #" in ln and ": Audio: " in ln for ln in text.splitlines())
    if video is not None and ("attached pic" in video or ": Video: png" in video):
        video = None  # cover art, not a video track
    if video is None and not audio:
        raise PackagingFailed("not_media", "The file has no video or audio track.")
    width = height = None
    fps = None
    if video is not None:
        size = _SIZE_RE.search(video.split(": Video: ", 1)[1])
        if size:
            width, height = int(size.group(1)), int(size.group(2))
        rate = _FPS_RE.search(video)
        if rate:
            fps = float(rate.group(1))
        if width is None or height is None:
            raise PackagingFailed("not_media", "The video track has no readable picture size.")
        if _rotation(text, video) in (90, 270):  # a phone's portrait video: decoded upright
            width, height = height, width
    duration = None
    m = _DURATION_RE.search(text)
    if m:
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return SourceInfo(duration, width, height, fps, video is not None, audio)


def _rotation(text: str, video_line: str) -> int:
    """The display rotation (0, 90, 180, 270) of the video stream, from its side data."""
    lines = text.splitlines()
    start = lines.index(video_line) + 1
    for line in lines[start:]:
        if "Stream #" in line:
            break
        m = _ROTATION_RE.search(line)
        if m:
            return round(float(m.group(1))) % 360
    return 0


def _bmff_truncation(path: Path) -> str | None:
    """For an MP4/MOV file: a sentence if its top-level boxes run past the end of the file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            pos = 0
            first = True
            while pos < size:
                fh.seek(pos)
                header = fh.read(16)
                if len(header) < 8:
                    break
                box_size = int.from_bytes(header[:4], "big")
                box_type = header[4:8].decode("latin-1")
                if first and box_type not in _BMFF_TYPES:
                    return None  # not ISO-BMFF: ffmpeg decides
                first = False
                if box_size == 1 and len(header) == 16:
                    box_size = int.from_bytes(header[8:16], "big")
                if box_size == 0:
                    return None  # runs to the end of the file
                if box_size < 8:
                    return None  # not a box structure we can judge
                if pos + box_size > size:
                    missing = pos + box_size - size
                    return (
                        f"The file ends early: {missing} bytes of it are missing "
                        "(was the upload cut short?)."
                    )
                pos += box_size
    except OSError:
        return None
    return None


def _planned_ladder(spec: LadderSpec, info: SourceInfo) -> LadderSpec:
    ladder = dataclasses.replace(spec, prft=False)
    if not info.has_video:
        ladder = dataclasses.replace(ladder, video=())
    if ladder.audio is None and not ladder.video:
        ladder = dataclasses.replace(ladder, audio=AudioSpec())
    return ladder


async def package_asset(
    job: PackagingJob,
    *,
    ladder: LadderSpec | None = None,
    on_progress: Callable[[float], None] | None = None,
    stall_timeout: float = STALL_TIMEOUT,
) -> PackagingResult:
    """Package ``job.source`` into ``job.output`` (replaced atomically); see the module docstring.

    An ffmpeg that produces nothing for ``stall_timeout`` seconds is stopped (a
    retryable ``packaging_failed``)."""
    log = _log.bind(asset_id=job.asset_id, playback_id=job.playback_id)
    if not job.source.is_file():
        raise PackagingFailed("not_media", "The uploaded file is missing.")
    info = await inspect_source(job.source)
    limit = job.max_duration_s
    if limit is not None and info.duration_s is not None and info.duration_s > limit + 0.5:
        raise PackagingFailed(
            "too_long",
            f"The video is {_clock(info.duration_s)} long; this asset allows at most "
            f"{_clock(limit)}.",
        )
    spec = _planned_ladder(ladder or VOD_LADDER, info)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_remove_abandoned, job.output, 2 * stall_timeout)
    tmp = job.output.parent / f".{job.output.name}.tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    log.info("packaging_started", duration_s=info.duration_s, width=info.width,
             height=info.height, audio=info.has_audio)  # fmt: skip
    try:
        result = await _transcode(job, info, spec, tmp, on_progress, stall_timeout)
        await asyncio.to_thread(_publish, tmp, job.output)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, tmp, True)
        raise
    log.info("packaging_done", duration_s=result.duration_s, size_bytes=result.size_bytes,
             renditions=[r.name for r in result.renditions])  # fmt: skip
    return result


def _remove_abandoned(output: Path, idle: float) -> None:
    """Remove temp dirs of ``output`` left by a worker that died (nothing written for ``idle`` s).

    A live packaging writes at least every ``stall_timeout``, or stops itself."""
    now = time.time()
    for candidate in output.parent.glob(f".{output.name}.tmp-*"):
        try:
            newest = max(
                (p.stat().st_mtime for p in candidate.rglob("*")),
                default=candidate.stat().st_mtime,
            )
            newest = max(newest, candidate.stat().st_mtime)
        except OSError:
            continue
        if now - newest > idle:
            _log.info("packaging_temp_removed", path=str(candidate))
            shutil.rmtree(candidate, ignore_errors=True)


def _publish(tmp: Path, output: Path) -> None:
    """Move the finished directory into place (a previous packaging of it is replaced)."""
    if output.exists():
        old = output.parent / f".{output.name}.old-{secrets.token_hex(6)}"
        os.rename(output, old)
        os.rename(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, output)


async def _transcode(
    job: PackagingJob,
    info: SourceInfo,
    spec: LadderSpec,
    tmp: Path,
    on_progress: Callable[[float], None] | None,
    stall_timeout: float,
) -> PackagingResult:
    source = _UploadSource(str(job.source), width=info.width, height=info.height,
                           has_audio=info.has_audio)  # fmt: skip
    tc = Transcoder(source, spec)
    try:
        await tc.start()
    except MediaError as exc:
        raise PackagingFailed(
            "packaging_failed", f"The transcoder could not start ({exc}).", retryable=True
        ) from exc
    outputs: dict[str, TrackOutput] = {}
    limit = job.max_duration_s
    reported = -1.0
    ok = False
    try:
        packager = tc.packager()
        for plan in tc.track_plans():
            (tmp / plan.name).mkdir()
            outputs[plan.name] = TrackOutput(plan.name)
        while True:
            try:
                name, item = await asyncio.wait_for(anext(tc), stall_timeout)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise PackagingFailed(
                    "packaging_failed",
                    f"The transcoder stopped making progress for {stall_timeout:.0f} s.",
                    retryable=True,
                ) from None
            if isinstance(item, InitSegment):
                packager.push(name, item)
                continue
            for ready in packager.push(name, item):
                if isinstance(ready, ObjectReady):
                    outputs[name].add(tmp / name, ready.object.group_id, ready.object.fragment)
            done = item.end_time / item.timescale
            if limit is not None and done > limit + 1.0:
                raise PackagingFailed(
                    "too_long", f"The video is longer than the {_clock(limit)} this asset allows."
                )
            if on_progress is not None and info.duration_s:
                percent = min(99.0, 100.0 * done / info.duration_s)
                if percent - reported >= 1.0:
                    reported = percent
                    on_progress(percent)
        ok = True
    except PackagingFailed:
        raise
    except FfmpegError as exc:
        raise PackagingFailed(
            "packaging_failed", f"The transcoder failed ({exc}).", retryable=True
        ) from exc
    except MediaError as exc:
        raise PackagingFailed(
            "packaging_failed", f"The transcoder produced unreadable output ({exc}).",
            retryable=True,
        ) from exc  # fmt: skip
    finally:
        if not ok:
            for out in outputs.values():
                out.abort()
        if tc.result is None:
            with contextlib.suppress(MediaError):
                await tc.stop()
    for out in outputs.values():
        out.finish()
    inits = tc.init_segments
    missing = [n for n, o in outputs.items() if n not in inits or not o.segments]
    if missing:
        raise PackagingFailed(
            "not_media" if not any(o.segments for o in outputs.values()) else "packaging_failed",
            "The file holds no picture or sound that could be decoded.",
        )
    duration = max(o.end_s for o in outputs.values())
    if info.duration_s is not None and duration < info.duration_s - max(
        _SHORT_MIN_S, _SHORT_FRACTION * info.duration_s
    ):
        raise PackagingFailed(
            "truncated",
            f"The file ends early: it announces {_clock(info.duration_s)} but only "
            f"{_clock(duration)} could be read (was the upload cut short?).",
        )
    if limit is not None and duration > limit + 0.5:
        raise PackagingFailed(
            "too_long",
            f"The video is {_clock(duration)} long; this asset allows at most {_clock(limit)}.",
        )
    catalog = _catalog(tc, inits, outputs, spec, spec.framerate or info.fps)
    size = await asyncio.to_thread(_write_metadata, tmp, catalog, inits, outputs)
    renditions = tuple(
        Rendition(t.name, t.width, t.height, t.bitrate or 0, t.codec or "") for t in catalog.tracks
    )
    if on_progress is not None:
        on_progress(100.0)
    return PackagingResult(round(duration, 3), renditions, size)


def _catalog(
    tc: Transcoder,
    inits: dict[str, InitSegment],
    outputs: dict[str, TrackOutput],
    spec: LadderSpec,
    fps: float | None,
) -> Catalog:
    live = build_catalog(
        tc.track_plans(), inits, max_group_duration=round(spec.group_duration * 1000)
    )
    tracks: list[CatalogTrack] = []
    for track in live.tracks:
        out = outputs[track.name]
        timeline = tuple((s.pts_ms, (s.group, 0), 0) for s in out.segments)
        tracks.append(
            dataclasses.replace(
                track,
                framerate=fps if track.role == "video" else None,
                is_live=False,
                track_duration=round(out.end_s * 1000),
                timeline=timeline,
            )
        )
    return Catalog.build(tracks, is_complete=True)


def _write_metadata(
    tmp: Path,
    catalog: Catalog,
    inits: dict[str, InitSegment],
    outputs: dict[str, TrackOutput],
) -> int:
    for name, init in inits.items():
        (tmp / name / "init.mp4").write_bytes(init.data)
    (tmp / "catalog.json").write_bytes(catalog.to_json())
    for name, text in hls.playlists(catalog, {n: o.segments for n, o in outputs.items()}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    return sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    whole = math.floor(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}:{m:02d}:{s:02d}"
    if m:
        return f"{m}:{s:02d}"
    return f"{seconds:.1f} s"
