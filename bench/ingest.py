"""Ingest -> viewer latency and transcode CPU per rendition (issue 5 "Checks").

    python -m bench.ingest run [--path rtmp|moqt|both] [--duration 20] [--json F]

Real processes on loopback: ``redis-server``, ``clutchcall origin`` (RTMP on,
``--publish-auth none``), one ``clutchcall pop`` (``--jwks`` of a local ES256
key), the publisher, and a viewer *through the POP* (the production path) with a
playback token. Each path is measured on a warm path: the viewer is subscribed
before the measured window and objects of the first group it receives are not
counted (the join, the POP's upstream subscription and ffmpeg's start-up).

RTMP path (``ffmpeg -re`` 720p30 x264 ultrafast/zerolatency + AAC -> origin
ladder -> POP -> viewer), per rendition of the origin's ladder:

* *capture time*: the encoder's RTMP timestamps mapped to the wall clock by a
  pass-through proxy in front of the origin's RTMP port (``bench._ingest_rtmp``:
  ``anchor = min(arrival - timestamp)`` over video tags, so capture(t) =
  anchor + t for a sample at RTMP time t). The origin rebases its ladder's
  timeline to the first keyframe and ffmpeg keeps it, so a chunk at presentation
  time p was captured at anchor + first keyframe + p (a chunk written, per its
  ``prft``, before its last sample was captured would be reported).
* **glass-to-glass (oldest frame)** = receive - capture(chunk's first sample):
  what a player that starts a chunk when it is whole sees. It *includes* the
  chunk duration (0.5 s: the ladder's chunk accumulates before it is written),
  the encoder's encode, the RTMP hop, the origin's FLV re-mux, the ladder
  transcode (decode, scale, x264 ``veryfast`` encode), CMAF packaging, and the
  origin -> POP -> viewer relay hops.
* **glass-to-glass (newest frame)** = receive - capture(chunk's end): the same
  without the chunk accumulation (~one frame of it remains).
* split at ffmpeg's ``prft`` (the wall clock when it wrote the chunk):
  *ingest+transcode* = prft - capture(chunk end), *delivery* = receive - prft
  (origin packaging + relay hops; all processes share one clock).

MoQT fMP4 path (the ``bench._live`` publisher: a pre-encoded 2.5 Mbit/s H.264
clip, one frame per object, a ``prft`` with the wall clock at send in front of
each ``moof``): latency = receive - send, publisher -> origin (validation,
re-publish) -> POP -> viewer. The origin does not transcode this path (the
publisher's renditions are passed through), so its encode is not included.

Transcode CPU: the origin's ffmpeg child (``/proc/<pid>/stat``) over the window,
in cores, divided by its outputs; the RTMP path runs the ladder twice, three
video rungs (720p/480p/360p) and one (720p), both with AAC audio, and reports the
marginal cost of a video rendition ``(three - one) / 2`` (the one-rung run also
pays decoding the source and the audio).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._ingest_rtmp import TagClock, encoder_argv
from ._live import make_clip
from ._nodes import node_env, origin_argv, pop_argv, tree_pids, wait_event
from ._procs import Proc, cpu_seconds, free_port, percentile, python
from ._tokens import BenchTokens

__all__ = ["IngestResult", "RenditionFigures", "format_results", "main", "run_moqt", "run_rtmp"]

ORG = "org_dev"
THREE = ("720p:720:2800000", "480p:480:1400000", "360p:360:800000")
ONE = ("720p:720:2800000",)


@dataclass
class RenditionFigures:
    track: str
    objects: int = 0
    oldest_p50_ms: float = math.nan  # glass-to-glass from the chunk's first sample
    oldest_p99_ms: float = math.nan
    newest_p50_ms: float = math.nan  # glass-to-glass from the chunk's end
    newest_p99_ms: float = math.nan
    transcode_p50_ms: float = math.nan  # capture(chunk end) -> ffmpeg wrote it (prft)
    delivery_p50_ms: float = math.nan  # prft -> viewer
    delivery_p99_ms: float = math.nan


@dataclass
class IngestResult:
    path: str  # "rtmp" | "moqt"
    ladder: tuple[str, ...] = ()
    duration: float = 0.0
    renditions: list[RenditionFigures] = field(default_factory=list)
    ffmpeg_cores: float = math.nan
    outputs: int = 0  # ffmpeg outputs (video rungs + audio)
    origin_cores: float = math.nan  # the origin's Python process (excluding ffmpeg)
    pop_cores: float = math.nan
    encoder_send_p50_ms: float = math.nan  # rtmp: a tag leaves the encoder after its capture
    encoder_send_p99_ms: float = math.nan
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: list[str] = field(default_factory=list)


class _Cluster:
    """Redis, an origin (RTMP on) and a POP, as processes; ``stop()`` ends them all."""

    def __init__(self, workdir: Path, tag: str, ladder: Sequence[str] = THREE) -> None:
        self.workdir, self.tag = workdir, tag
        self.procs: list[Proc] = []
        self.tokens = BenchTokens(workdir)
        redis_port = free_port(socket.SOCK_STREAM)
        self.origin_port, self.pop_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.start(
            "redis",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
        )  # fmt: skip
        argv = origin_argv(
            quic=f"127.0.0.1:{self.origin_port}", http="127.0.0.1:0", redis=self.redis_url,
            region="local", node_id="origin-ingest",
        )  # fmt: skip
        argv[argv.index("--rtmp") + 1] = "127.0.0.1:0"
        argv += ["--ladder", ",".join(ladder)]
        self.origin = self.start("origin", argv)
        self.pop = self.start(
            "pop",
            pop_argv(
                quic=f"127.0.0.1:{self.pop_port}", http="127.0.0.1:0", redis=self.redis_url,
                region="local", node_id="pop-ingest", jwks=self.tokens.jwks_path,
            ),
        )  # fmt: skip
        ready = wait_event(self.log("origin"), "origin_ready", self.origin, timeout=60)[0]
        host, _, port = str(ready["rtmp"]).rpartition(":")
        self.rtmp = (host, int(port))
        wait_event(self.log("pop"), "pop_ready", self.pop, timeout=60)

    def start(self, name: str, argv: Sequence[str]) -> Proc:
        proc = Proc(argv, name=name, env=node_env(), stderr_path=self.log(name))
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> Path:
        return self.workdir / f"{self.tag}-{name}.log"

    def token(self, input_id: str) -> str:
        return str(self.tokens.mint(input_id)["token"])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=5)


def _ffmpeg_child(pid: int, timeout: float = 20.0) -> int:
    """The origin's transcoder: its ``ffmpeg`` descendant."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in tree_pids(pid)[1:]:
            try:
                if Path(f"/proc/{child}/comm").read_text().strip().startswith("ffmpeg"):
                    return child
            except OSError:
                continue
        time.sleep(0.1)
    raise RuntimeError("the origin started no ffmpeg transcoder")


def _cores(pid: int, seconds: float) -> tuple[float, float]:
    """Sleep ``seconds``; (cores used by ``pid``, wall seconds) over that window."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    return (cpu1 - cpu0) / max(1e-9, t1 - t0), t1 - t0


def _min_group(objects: list[dict[str, Any]]) -> int:
    return min((o["group"] for o in objects), default=0)


def _rtmp_figures(track: str, objects: list[dict[str, Any]], anchor: float) -> RenditionFigures:
    figures = RenditionFigures(track)
    if not objects:
        return figures
    first_group = min(o["group"] for o in objects)
    warm = [o for o in objects if o["group"] > first_group]
    figures.objects = len(warm)
    oldest = [(o["received"] - (anchor + o["start"])) * 1000 for o in warm]
    newest = [(o["received"] - (anchor + o["end"])) * 1000 for o in warm]
    stamped = [o for o in warm if o["prft"] is not None]
    transcode = [(o["prft"] - (anchor + o["end"])) * 1000 for o in stamped]
    delivery = [(o["received"] - o["prft"]) * 1000 for o in stamped]
    figures.oldest_p50_ms, figures.oldest_p99_ms = percentile(oldest, 50), percentile(oldest, 99)
    figures.newest_p50_ms, figures.newest_p99_ms = percentile(newest, 50), percentile(newest, 99)
    figures.transcode_p50_ms = percentile(transcode, 50)
    figures.delivery_p50_ms = percentile(delivery, 50)
    figures.delivery_p99_ms = percentile(delivery, 99)
    return figures


def run_rtmp(ladder: Sequence[str], *, duration: float, workdir: Path) -> IngestResult:
    """One RTMP run (see the module docstring); every process is stopped on return."""
    result = IngestResult("rtmp", tuple(ladder), duration)
    input_id = f"lv_ingest{len(ladder)}"
    tag = f"rtmp{len(ladder)}"
    cluster: _Cluster | None = None
    clock: TagClock | None = None
    try:
        cluster = _Cluster(workdir, tag, ladder)
        clock = TagClock(cluster.rtmp)
        warmup = 6.0  # broadcast start, viewer join, the first (uncounted) group
        cluster.start(
            "encoder",
            encoder_argv(
                f"rtmp://127.0.0.1:{clock.port}/live/{input_id}/sk_bench", duration + warmup + 10
            ),
        )
        wait_event(cluster.log("origin"), "broadcast_started", cluster.origin, timeout=30)
        names = [rung.split(":", 1)[0] for rung in ladder] + ["audio"]
        report = workdir / f"{tag}-viewer.json"
        viewer = cluster.start(
            "viewer",
            [
                python(), "-m", "bench._ingest_viewer",
                "--url", f"moqt://127.0.0.1:{cluster.pop_port}",
                "--namespace", f"stream/{ORG}/{input_id}", "--token", cluster.token(input_id),
                "--tracks", ",".join(names), "--report", str(report),
                "--timeout", str(duration + 60),
            ],
        )  # fmt: skip
        viewer.wait_line("ready", timeout=30)
        ffmpeg = _ffmpeg_child(cluster.origin.pid)
        result.outputs = len(names)
        time.sleep(2.5)  # past the first group the viewer receives (not counted)
        cpu0 = {p.name: cpu_seconds(p.pid) for p in (cluster.origin, cluster.pop)}
        result.ffmpeg_cores, wall = _cores(ffmpeg, duration)
        for proc in (cluster.origin, cluster.pop):
            cores = (cpu_seconds(proc.pid) - cpu0[proc.name]) / wall
            setattr(result, f"{proc.name}_cores", cores)
        result.load = os.getloadavg()
        viewer.signal(signal.SIGTERM)
        viewer.wait_line("done", timeout=30)
        data = json.loads(report.read_text())
        if data["error_count"]:
            result.notes.append(f"{data['error_count']} unparsable objects: {data['errors'][:2]}")
        anchor = clock.timeline_zero()
        first_counted = min(
            (o["start"] for o in data["objects"] if o["group"] > _min_group(data["objects"])),
            default=0.0,
        )
        sends = clock.send_delays(int((first_counted + anchor - clock.anchor()) * 1000))
        result.encoder_send_p50_ms = percentile(sends, 50) * 1000
        result.encoder_send_p99_ms = percentile(sends, 99) * 1000
        for name in names:
            objects = [o for o in data["objects"] if o["track"] == name]
            figures = _rtmp_figures(name, objects, anchor)
            result.renditions.append(figures)
            if figures.objects == 0:
                result.notes.append(f"{name}: the viewer received no object after its first group")
            elif figures.transcode_p50_ms < 0:
                result.notes.append(
                    f"{name}: chunks written before their capture time - the origin's "
                    "ffmpeg did not keep the source timeline; latencies are not valid"
                )
    except (RuntimeError, TimeoutError, OSError, ValueError, KeyError) as exc:
        result.notes.append(f"failed: {exc}")
    finally:
        if cluster is not None:
            cluster.stop()
        if clock is not None:
            clock.close()
    return result


def run_moqt(*, duration: float, workdir: Path, fps: float = 30.0) -> IngestResult:
    """MoQT fMP4 ingest through the origin and a POP to one viewer (module docstring)."""
    result = IngestResult("moqt", (), duration)
    input_id = "lv_ingestmoqt"
    namespace = f"stream/{ORG}/{input_id}"
    cluster: _Cluster | None = None
    try:
        clip_dir = workdir / "clips"
        make_clip(clip_dir, bitrate=2.5e6, fps=fps, group_seconds=2.0)
        cluster = _Cluster(workdir, "moqt")
        publisher = cluster.start(
            "publisher",
            [
                python(), "-m", "bench._live", "publisher",
                "--url", f"moqt://127.0.0.1:{cluster.origin_port}", "--namespace", namespace,
                "--clip-dir", str(clip_dir), "--fps", str(fps), "--group-seconds", "2",
                "--prime-groups", "1", "--wait-go", "--duration", str(duration),
            ],
        )  # fmt: skip
        publisher.wait_line("{", timeout=60)
        tokens = workdir / "moqt-viewer.tokens.json"
        cluster.tokens.write(tokens, input_id, 1)
        report = workdir / "moqt-viewer.json"
        viewer = cluster.start(
            "viewer",
            [
                python(), "-m", "bench._live", "viewers",
                "--url", f"moqt://127.0.0.1:{cluster.pop_port}", "--namespace", namespace,
                "--tokens", str(tokens), "--report", str(report), "--from-group", "1",
                "--expect", str(int(duration * fps)), "--timeout", str(duration + 60),
            ],
        )  # fmt: skip
        viewer.wait_line("ready", timeout=30)
        cpu0 = {p.name: cpu_seconds(p.pid) for p in (cluster.origin, cluster.pop)}
        t0 = time.monotonic()
        publisher.signal(signal.SIGUSR1)
        publisher.wait_line("sent", timeout=duration + 60)
        wall = time.monotonic() - t0
        for proc in (cluster.origin, cluster.pop):
            setattr(result, f"{proc.name}_cores", (cpu_seconds(proc.pid) - cpu0[proc.name]) / wall)
        result.load = os.getloadavg()
        viewer.wait_line("done", timeout=30)
        objects = json.loads(report.read_text())["viewers"][0]["objects"]
        warm = [(r - s) * 1000 for g, _, r, s in objects if g >= 2 and s > 0]
        # One frame per object, stamped at send: oldest = newest frame = send -> viewer.
        p50, p99 = percentile(warm, 50), percentile(warm, 99)
        figures = RenditionFigures("video", objects=len(warm))
        figures.oldest_p50_ms = figures.newest_p50_ms = figures.delivery_p50_ms = p50
        figures.oldest_p99_ms = figures.newest_p99_ms = figures.delivery_p99_ms = p99
        result.renditions.append(figures)
    except (RuntimeError, TimeoutError, OSError, ValueError, KeyError, IndexError) as exc:
        result.notes.append(f"failed: {exc}")
    finally:
        if cluster is not None:
            cluster.stop()
    return result


METHOD = """\
What the figures are (viewer through the POP; warm path: the first group received is not counted):
- rtmp, glass-to-glass oldest frame: viewer receive - capture of the chunk's first sample.
  Capture = the encoder's RTMP timestamp mapped to the wall clock where its tags enter the
  origin (pass-through proxy; ffmpeg -re, x264 zerolatency). Includes the chunk duration
  (0.5 s of media accumulates before a chunk is written), encode, RTMP hop, FLV re-mux,
  ladder transcode (decode, scale, x264 veryfast), CMAF packaging, origin -> POP -> viewer.
- rtmp, newest frame: the same from the chunk's end (no chunk accumulation).
- ingest+transcode: capture of the chunk's end -> ffmpeg wrote the chunk (its prft box).
- delivery: prft -> viewer (origin packaging + relay hops); moqt: publisher send (prft
  stamped at send) -> viewer, one frame per object, pre-encoded (no encode, no transcode).
- ffmpeg cores: the origin's transcoder process, CPU seconds / wall seconds over the
  window; per output = divided by its outputs (video rungs + audio)."""


def _ms(p50: float, p99: float) -> str:
    return "-" if math.isnan(p50) else f"{p50:.0f} / {p99:.0f}"


def format_results(results: Sequence[IngestResult]) -> str:
    lines = [
        "| path | ladder | rendition | objects | glass-to-glass oldest frame p50/p99 ms | "
        "newest frame p50/p99 ms | ingest+transcode p50 ms | delivery (prft/send -> viewer) "
        "p50/p99 ms | ffmpeg cores (per output) | origin / POP cores |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ladder = f"{len(r.ladder)} rung(s)" if r.path == "rtmp" else "passthrough"
        if r.path == "rtmp" and not math.isnan(r.ffmpeg_cores) and r.outputs:
            cpu = f"{r.ffmpeg_cores:.2f} ({r.ffmpeg_cores / r.outputs:.2f})"
        else:
            cpu = "- (no transcode)" if r.path == "moqt" else "-"
        for f in r.renditions:
            transcode = "-" if math.isnan(f.transcode_p50_ms) else f"{f.transcode_p50_ms:.0f}"
            lines.append(
                f"| {r.path} | {ladder} | {f.track} | {f.objects} | "
                f"{_ms(f.oldest_p50_ms, f.oldest_p99_ms)} | {_ms(f.newest_p50_ms, f.newest_p99_ms)} | "
                f"{transcode} | {_ms(f.delivery_p50_ms, f.delivery_p99_ms)} | {cpu} | "
                f"{r.origin_cores:.2f} / {r.pop_cores:.2f} |"
            )
    out = lines
    three = next((r for r in results if r.path == "rtmp" and len(r.ladder) == 3), None)
    one = next((r for r in results if r.path == "rtmp" and len(r.ladder) == 1), None)
    if three and one and not (math.isnan(three.ffmpeg_cores) or math.isnan(one.ffmpeg_cores)):
        marginal = (three.ffmpeg_cores - one.ffmpeg_cores) / 2
        out += [
            "",
            f"Transcode CPU: 3 video rungs + audio {three.ffmpeg_cores:.2f} cores, 1 rung + audio "
            f"{one.ffmpeg_cores:.2f} cores -> {marginal:.2f} cores per extra video rendition "
            f"(480p/360p; the 720p rung, source decode and audio: {one.ffmpeg_cores:.2f}).",
        ]
    for r in results:
        if not math.isnan(r.encoder_send_p50_ms):
            out.append(
                f"rtmp/{len(r.ladder)}: encoder tags left p50/p99 {r.encoder_send_p50_ms:.0f}/"
                f"{r.encoder_send_p99_ms:.0f} ms after their nominal capture (included above)."
            )
    loads = [f"{r.path}/{len(r.ladder)}: {r.load[0]:.2f}" for r in results]
    out += ["", f"Machine: {os.cpu_count()} cores, 1-min load average at the end of each run: "
            + ", ".join(loads)]  # fmt: skip
    out += [f"- {r.path}/{len(r.ladder)}: {n}" for r in results for n in r.notes]
    return "\n".join(out)


def _run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="clutchcall-ingest-"))
    results: list[IngestResult] = []
    if args.path in ("rtmp", "both"):
        ladders = [THREE] if args.no_single else [THREE, ONE]
        for ladder in ladders:
            results.append(run_rtmp(ladder, duration=args.duration, workdir=workdir))
            print(format_results(results[-1:]).split("\n\n")[0], flush=True)
    if args.path in ("moqt", "both"):
        results.append(run_moqt(duration=args.duration, workdir=workdir))
    print("\n" + format_results(results) + "\n\n" + METHOD)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(f"logs: {workdir}")
    failed = any(n.startswith("failed") for r in results for n in r.notes)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="the whole benchmark")
    run.add_argument("--path", choices=("rtmp", "moqt", "both"), default="both")
    run.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    run.add_argument(
        "--no-single", action="store_true", help="skip the one-rung ladder run (CPU attribution)"
    )
    run.add_argument("--json")
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
