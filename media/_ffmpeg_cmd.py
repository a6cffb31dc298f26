"""ffmpeg command lines: locating the binary, input sources, the ladder's output arguments, probing."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass

from .errors import FfmpegError
from .ladder import LadderPlan

__all__ = [
    "FileSource",
    "PipeSource",
    "Source",
    "TestPatternSource",
    "build_ladder_command",
    "encoder_command",
    "ffmpeg_exe",
    "probe",
]


def ffmpeg_exe() -> str:
    """The ffmpeg binary: ``$CLUTCHCALL_FFMPEG``, else imageio-ffmpeg's bundled build, else ``ffmpeg`` on PATH."""
    explicit = os.environ.get("CLUTCHCALL_FFMPEG")
    if explicit:
        return explicit
    try:
        import imageio_ffmpeg  # the binary's locator only; no Python media code is used

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found is None:
            raise FfmpegError(
                "no ffmpeg binary: install imageio-ffmpeg or set CLUTCHCALL_FFMPEG"
            ) from None
        return found


@dataclass(frozen=True, slots=True)
class PipeSource:
    """A live byte stream written by the caller to ffmpeg's stdin (FLV from the RTMP server)."""

    format: str = "flv"
    width: int | None = None
    height: int | None = None
    has_audio: bool = True

    uses_stdin = True

    def input_args(self) -> list[str]:
        # Probe at most 1 s of input so a live start is not delayed by analysis.
        return ["-analyzeduration", "1000000", "-f", self.format, "-i", "pipe:0"]

    @property
    def video_map(self) -> str:
        return "0:v:0"

    @property
    def audio_map(self) -> str:
        return "0:a:0"


@dataclass(frozen=True, slots=True)
class FileSource:
    """A media file; ``realtime`` reads it at its native rate (a stand-in for a live encoder)."""

    path: str
    realtime: bool = False
    loop: bool = False
    width: int | None = None
    height: int | None = None
    has_audio: bool = True

    uses_stdin = False

    def input_args(self) -> list[str]:
        args = ["-re"] if self.realtime else []
        if self.loop:
            args += ["-stream_loop", "-1"]
        return [*args, "-i", self.path]

    @property
    def video_map(self) -> str:
        return "0:v:0"

    @property
    def audio_map(self) -> str:
        return "0:a:0"


@dataclass(frozen=True, slots=True)
class TestPatternSource:
    """ffmpeg's ``testsrc2`` video and a ``sine`` tone: a self-contained demo and test input."""

    __test__ = False  # not a pytest test class despite the name

    width: int = 1280
    height: int = 720
    fps: int = 30
    duration: float | None = None  # None: endless
    realtime: bool = True
    has_audio: bool = True
    frequency: int = 440
    sample_rate: int = 48_000

    uses_stdin = False

    def input_args(self) -> list[str]:
        limit = f":duration={self.duration}" if self.duration is not None else ""
        rate = ["-re"] if self.realtime else []
        args = [
            *rate,
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={self.width}x{self.height}:rate={self.fps}{limit}",
        ]
        if self.has_audio:
            tone = f"sine=frequency={self.frequency}:sample_rate={self.sample_rate}{limit}"
            args += [*rate, "-f", "lavfi", "-i", tone]
        return args

    @property
    def video_map(self) -> str:
        return "0:v:0"

    @property
    def audio_map(self) -> str:
        return "1:a:0"


Source = PipeSource | FileSource | TestPatternSource


def _cmaf_output(spec_chunk: float, prft: bool, target: str, *, audio: bool = False) -> list[str]:
    # Audio delays its moov to the first fragment so the encoder delay (AAC priming)
    # goes into an edit list instead of shifting the audio against the video.
    flags = "empty_moov+default_base_moof+frag_keyframe+cmaf" + ("+delay_moov" if audio else "")
    args = [
        "-f", "mp4",
        "-movflags", flags,
        "-frag_duration", str(round(spec_chunk * 1_000_000)),
        "-flush_packets", "1",
    ]  # fmt: skip
    if prft:
        args += ["-write_prft", "wallclock"]
    return [*args, target]


def build_ladder_command(
    exe: str, source: Source, plan: LadderPlan, targets: dict[str, str]
) -> list[str]:
    """The full ffmpeg argv: one fMP4 output per rendition, each to ``targets[name]`` (e.g. ``pipe:5``)."""
    spec = plan.spec
    cmd = [exe, "-hide_banner", "-nostats", "-loglevel", "warning"]
    if not source.uses_stdin:
        cmd.append("-nostdin")
    cmd += source.input_args()
    if plan.video:
        fps = f",fps={spec.framerate}" if spec.framerate else ""
        legs: list[str] = []
        if len(plan.video) == 1:
            sources = [f"[{source.video_map}]"]
        else:
            labels = "".join(f"[s{i}]" for i in range(len(plan.video)))
            legs.append(f"[{source.video_map}]split={len(plan.video)}{labels}")
            sources = [f"[s{i}]" for i in range(len(plan.video))]
        for i, (src, rung) in enumerate(zip(sources, plan.video, strict=True)):
            if rung.width is None:  # unknown source size: cap with expressions, never upscale
                scale = f"scale=w=-2:h='min({rung.height},ih)'"
            else:
                scale = f"scale={rung.width}:{rung.height}"
            legs.append(f"{src}{scale}{fps},format=yuv420p[v{i}]")
        cmd += ["-filter_complex", ";".join(legs)]
    keyframes = f"expr:gte(t,n_forced*{spec.group_duration})"
    # A GOP length cap far above the group duration: keyframes come from -force_key_frames only.
    gop = str(round(spec.group_duration * (spec.framerate or 120)))
    for i, rung in enumerate(plan.video):
        cmd += ["-map", f"[v{i}]", "-an", "-sn", "-dn", "-c:v", "libx264", "-preset", spec.preset]
        if spec.tune:
            cmd += ["-tune", spec.tune]
        cmd += [
            "-profile:v", spec.profile,
            "-b:v", str(rung.bitrate), "-maxrate", str(rung.bitrate), "-bufsize", str(rung.bitrate),
            "-g", gop, "-sc_threshold", "0", "-force_key_frames", keyframes,
        ]  # fmt: skip
        cmd += _cmaf_output(spec.chunk_duration, spec.prft, targets[rung.name])
    if spec.audio is not None and source.has_audio:
        a = spec.audio
        cmd += [
            "-map",
            source.audio_map,
            "-vn",
            "-sn",
            "-dn",
            "-c:a",
            a.encoder,
            "-b:a",
            str(a.bitrate),
        ]
        cmd += ["-ar", str(a.sample_rate), "-ac", str(a.channels)]
        cmd += _cmaf_output(spec.chunk_duration, spec.prft, targets[a.name], audio=True)
    return cmd


def encoder_command(
    exe: str,
    source: TestPatternSource | FileSource,
    output: str,
    *,
    container: str = "flv",
    video_bitrate: int = 2_500_000,
    gop_seconds: float = 2.0,
    chunk_seconds: float = 0.5,
) -> list[str]:
    """What a live encoder runs: H.264 + AAC to ``output`` as FLV (an RTMP URL) or muxed fMP4.

    The stand-in for OBS in tests and demos: ``container="flv"`` with
    ``rtmp://host/live/<id>/<key>``-style outputs, or ``container="fmp4"`` with
    ``pipe:1`` for a publisher reading CMAF from ffmpeg's stdout (one ``moof`` per
    chunk carrying both tracks: split it with ``Fmp4Splitter(split_tracks=True)``).
    """
    if container not in ("flv", "fmp4"):
        raise ValueError(f"container must be 'flv' or 'fmp4', got {container!r}")
    cmd = [
        exe,
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-nostdin",
        *source.input_args(),
    ]
    cmd += ["-map", source.video_map]
    if source.has_audio:
        cmd += ["-map", source.audio_map]
    cmd += [
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-b:v", str(video_bitrate), "-maxrate", str(video_bitrate), "-bufsize", str(video_bitrate),
        "-sc_threshold", "0", "-force_key_frames", f"expr:gte(t,n_forced*{gop_seconds})",
    ]  # fmt: skip
    if source.has_audio:
        cmd += ["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]
    if container == "flv":
        return [*cmd, "-f", "flv", output]
    flags = "empty_moov+default_base_moof+frag_keyframe+cmaf+delay_moov"
    return [*cmd, "-f", "mp4", "-movflags", flags, "-frag_duration", str(round(chunk_seconds * 1e6)),
            "-flush_packets", "1", output]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProbeResult:
    width: int | None
    height: int | None
    fps: float | None
    has_video: bool
    has_audio: bool


_VIDEO_RE = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS_RE = re.compile(r"([\d.]+) fps")


async def probe(path: str, *, exe: str | None = None, limit: float = 20.0) -> ProbeResult:
    """Read a file's first video size, frame rate and whether it has audio (``ffmpeg -i``)."""
    proc = await asyncio.create_subprocess_exec(
        exe or ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise FfmpegError(f"probing {path} timed out") from None
    text = err.decode("utf-8", "replace")
    if "Stream #" not in text:
        raise FfmpegError(
            f"cannot read media from {path}", returncode=proc.returncode, stderr_tail=text
        )
    video_line = next((line for line in text.splitlines() if ": Video: " in line), None)
    width = height = None
    fps = None
    if video_line is not None:
        m = _VIDEO_RE.search(video_line)
        if m:
            width, height = int(m.group(1)), int(m.group(2))
        f = _FPS_RE.search(video_line)
        if f:
            fps = float(f.group(1))
    return ProbeResult(width, height, fps, video_line is not None, ": Audio: " in text)
