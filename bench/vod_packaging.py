"""On-demand packaging speed (issue 11 "Benchmark").

    python -m bench.vod_packaging [--seconds 60] [--height 1080] [--runs 1] [--json F]

Makes a test clip (``testsrc2`` + a ``sine`` tone, H.264 ``ultrafast`` + AAC in
MP4, 30 fps; its encode is not measured), then measures:

* **per rendition**: the ladder restricted to one rendition (one video rung
  without audio, or the audio alone), packaged by :func:`vod.packaging.package_asset`
  exactly as for an upload (probe, ffmpeg, CMAF groups, catalog, HLS): speed in
  multiples of real time = clip duration / wall time. Each run pays decoding the
  source, so the rungs' sum is more than the full ladder.
* **full ladder, submit -> ready**: the job submitted to the packaging queue
  (:func:`vod.jobs.open_queue`, in memory, concurrency 1) until its ``JobDone``:
  the packaging part of "last byte to ready" (the upload's completion check and
  the database update are the control plane's and not included). Reported with
  the speed it means (clip duration / time) and ffmpeg's CPU (children's
  user + system time) over that run.

"x real time per CPU core" = clip duration / ffmpeg CPU seconds: the speed one
core given to ffmpeg alone would reach, which does not depend on what else the
host runs (the wall-clock speed does).

Every number is wall-clock on this host with whatever else runs on it; the
command line and the host's CPU count are printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from media.ffmpeg import ffmpeg_exe
from media.ladder import DEFAULT_VIDEO_RUNGS, AudioSpec, LadderSpec
from vod.jobs import JobDone, JobEvent, JobFailed, open_queue
from vod.packaging import VOD_LADDER, PackagingJob, package_asset

__all__ = ["main"]


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    seconds: list[float]  # wall time of each run
    media_s: float
    cpu_s: list[float]  # ffmpeg children's CPU of each run

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def speed(self) -> float:
        """Multiples of real time (median run)."""
        return self.media_s / self.median


def make_clip(path: Path, seconds: float, height: int) -> None:
    width = round(height * 16 / 9 / 2) * 2
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "8M",
            "-c:a", "aac", "-b:a", "128k", str(path),
        ],
        check=True,
    )  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _job(clip: Path, out: Path, name: str) -> PackagingJob:
    return PackagingJob(f"as_{name}", f"pb_{name}", f"stream/org_bench/pb_{name}", clip,
                        out / name, None)  # fmt: skip


async def rendition(clip: Path, work: Path, name: str, ladder: LadderSpec, runs: int,
                    media_s: float) -> Measure:  # fmt: skip
    seconds, cpu = [], []
    for i in range(runs):
        cpu0, t0 = _children_cpu(), time.perf_counter()
        await package_asset(_job(clip, work, f"{name}{i}"), ladder=ladder)
        seconds.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - cpu0)
        shutil.rmtree(work / f"{name}{i}")
    return Measure(name, seconds, media_s, cpu)


async def submit_to_ready(clip: Path, work: Path, runs: int, media_s: float) -> Measure:
    seconds, cpu = [], []
    for i in range(runs):
        queue = open_queue(None, concurrency=1)
        ended: asyncio.Future[JobEvent] = asyncio.get_running_loop().create_future()

        async def on_event(event: JobEvent, ended: asyncio.Future[JobEvent] = ended) -> None:
            if isinstance(event, JobDone | JobFailed) and not ended.done():
                ended.set_result(event)

        worker = asyncio.create_task(queue.run(on_event))
        cpu0, t0 = _children_cpu(), time.perf_counter()
        await queue.submit(_job(clip, work, f"full{i}"))
        event = await ended
        seconds.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - cpu0)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        if isinstance(event, JobFailed):
            raise SystemExit(f"packaging failed: {event.code}: {event.message}")
        shutil.rmtree(work / f"full{i}")
    return Measure("full ladder (submit -> ready)", seconds, media_s, cpu)


async def run(seconds: float, height: int, runs: int) -> list[Measure]:
    with tempfile.TemporaryDirectory(prefix="vodbench-") as tmp:
        work = Path(tmp)
        clip = work / "source.mp4"
        make_clip(clip, seconds, height)
        results = []
        for rung in DEFAULT_VIDEO_RUNGS:
            if rung.height > height:
                continue
            ladder = LadderSpec(video=(rung,), audio=None, prft=False)
            results.append(await rendition(clip, work, rung.name, ladder, runs, seconds))
        audio_only = LadderSpec(video=(), audio=AudioSpec(), prft=False)
        results.append(await rendition(clip, work, "audio", audio_only, runs, seconds))
        results.append(await submit_to_ready(clip, work, runs, seconds))
        return results


def report(results: list[Measure], argv: list[str]) -> str:
    lines = [
        f"$ python -m bench.vod_packaging {' '.join(argv)}".rstrip(),
        f"host: {os.cpu_count()} CPUs; ladder: {', '.join(r.name for r in VOD_LADDER.video)} "
        f"+ AAC, x264 {VOD_LADDER.preset}",
        "",
        "| what | wall time (median of runs) | speed (x real time) | ffmpeg CPU (s) "
        "| x real time per CPU core |",
        "|---|---|---|---|---|",
    ]
    for m in results:
        cpu = statistics.median(m.cpu_s)
        per_core = f"{m.media_s / cpu:.2f}x" if cpu > 0 else "-"
        lines.append(
            f"| {m.name} | {m.median:.2f} s ({len(m.seconds)} runs, best {m.best:.2f} s) "
            f"| {m.speed:.2f}x | {cpu:.1f} | {per_core} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.vod_packaging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=60.0, help="clip duration (60)")
    parser.add_argument("--height", type=int, default=1080, help="clip height (1080)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each measure (1)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(args_list)
    if args.seconds <= 0 or args.runs < 1 or args.height < 16:
        parser.error("--seconds must be > 0, --runs >= 1, --height >= 16")
    results = asyncio.run(run(args.seconds, args.height, args.runs))
    print(report(results, args_list))
    if args.json is not None:
        payload = [{**asdict(m), "speed": m.speed} for m in results]
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
