"""Upload throughput, control-plane memory and last byte to ready (issue 11 "Checks").

    python -m bench.upload [--size 256MiB] [--reps 3] [--ready-seconds 60 --ready-height 1080]
                           [--no-ready] [--json FILE]

Real processes on loopback: ``clutchcall control`` (SQLite, file storage in a
temporary data directory) and, as the baseline, a plain HTTP ``PUT`` sink on the
same server stack (uvicorn + FastAPI, default uvicorn settings as the control
plane's, the body written to a file as it arrives and fsynced once at the end).

* **throughput**: the same file (``--size`` random bytes), alternately ``PUT`` to
  the sink and uploaded with the SDK (``streams.assets.upload``: create the asset,
  ``HEAD``, one tus 1.0.0 ``PATCH`` with ``Upload-Length``, fsync), ``--reps``
  times each in one run; reported in MiB/s (median) and as the ratio
  upload / PUT (target >= 0.8). Each upload's stored bytes are checked against
  the source (SHA-256 of ``uploads/<as_id>.bin``), then the asset is deleted.
* **control-plane RSS**: ``VmRSS`` of the ``clutchcall control`` process sampled
  every 20 ms during the uploads, against its value after a warm-up upload;
  the growth must not depend on the file size (target < 50 MiB for 2 GiB).
* **last byte to ready**: a ``--ready-seconds`` clip at ``--ready-height``
  (x264 + AAC, made with ffmpeg) uploaded with the SDK; from the moment the last
  byte is acknowledged to the asset's ``ready`` (packaging the whole ladder),
  polled every 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from bench._procs import cpu_seconds, free_port, rss_bytes

__all__ = ["UploadReport", "format_results", "main", "parse_size", "run"]

MiB = 1 << 20
_PIECE = MiB
ROOT = Path(__file__).resolve().parents[1]


def parse_size(text: str) -> int:
    """``256MiB``, ``2GiB``, ``100MB``, ``4096`` (bytes)."""
    units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 10**3, "mb": 10**6,
             "gb": 10**9, "b": 1}  # fmt: skip
    low = text.strip().lower()
    for unit, factor in units.items():
        if low.endswith(unit):
            return int(float(low[: -len(unit)]) * factor)
    return int(low)


@dataclass
class ReadyResult:
    clip_seconds: float
    height: int
    size_bytes: int
    status: str  # ready | errored | timeout
    last_byte_to_ready_s: float | None
    duration_s: float | None
    renditions: list[str] = field(default_factory=list)


@dataclass
class UploadReport:
    command: str
    size_bytes: int
    reps: int
    put_mib_s: list[float]
    upload_mib_s: list[float]
    ratio: float
    put_cpu_s_per_gib: float
    upload_cpu_s_per_gib: float
    stored_ok: bool
    rss_baseline_mib: float
    rss_peak_mib: float
    rss_growth_mib: float
    put_sink_rss_growth_mib: float
    ready: ReadyResult | None
    notes: list[str] = field(default_factory=list)


# --- the PUT baseline ------------------------------------------------------------------------


def put_app(directory: Path) -> Any:
    """``PUT /put/<name>``: the body into ``directory/<name>``, fsynced, 204 + its size."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.put("/put/{name}")
    async def put(name: str, request: Request) -> Response:
        path = directory / Path(name).name
        f = await asyncio.to_thread(path.open, "wb")
        size = 0
        try:
            async for chunk in request.stream():
                f.write(chunk)
                size += len(chunk)
            f.flush()
            await asyncio.to_thread(os.fsync, f.fileno())
        finally:
            f.close()
        return Response(status_code=204, headers={"X-Stored": str(size)})

    return app


def _serve_put(port: int, directory: str) -> None:
    import uvicorn

    print("put-sink ready", flush=True)
    uvicorn.run(put_app(Path(directory)), host="127.0.0.1", port=port, log_config=None,
                access_log=False)  # fmt: skip


# --- helpers -----------------------------------------------------------------------------------


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(8 * MiB, left))
            f.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def _pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(_PIECE):
            yield block


class RssSampler:
    """Peak ``VmRSS`` of ``pid`` while running (a 20 ms sampling thread)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (its output to ``log``), killed with its group on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                start_new_session=True)  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not healthy within {timeout} s")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def make_clip(path: Path, seconds: float, height: int) -> Path:
    import imageio_ffmpeg

    width = height * 16 // 9 // 2 * 2
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", str(path)],
        check=True, timeout=900,
    )  # fmt: skip
    return path


# --- the run -----------------------------------------------------------------------------------


def run(
    size: int,
    *,
    reps: int = 3,
    ready_seconds: float | None = 60.0,
    ready_height: int = 1080,
    ready_timeout: float = 900.0,
    workdir: Path | None = None,
    command: str = "",
    log: Callable[[str], None] = lambda _m: None,
) -> UploadReport:
    from clutchcall.streams import Streams

    notes: list[str] = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix="bench-upload-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir, sink_dir = tmp / "data", tmp / "sink"
        sink_dir.mkdir()
        db = f"sqlite:///{tmp / 'control.db'}"
        org = json.loads(
            subprocess.run(_cli("admin", "create-org", "bench", "--json", "--db", db), cwd=ROOT,
                           capture_output=True, text=True, check=True, timeout=120).stdout
        )  # fmt: skip
        control_port = free_port(socket.SOCK_STREAM)
        put_port = free_port(socket.SOCK_STREAM)
        with _process(
            _cli("control", "--http", f"127.0.0.1:{control_port}", "--db", db,
                 "--data-dir", str(data_dir), "--auth-failure-limit", "1000"),
            tmp / "control.log",
        ) as control, _process(
            [sys.executable, "-m", "bench.upload", "serve-put", str(put_port), str(sink_dir)],
            tmp / "sink.log",
        ) as sink:  # fmt: skip
            base = f"http://127.0.0.1:{control_port}"
            _wait_healthy(f"{base}/healthz", control)
            _wait_healthy(f"http://127.0.0.1:{put_port}/healthz", sink)
            log(f"generating {size / MiB:.0f} MiB of random bytes")
            source = tmp / "source.bin"
            source_sha = _random_file(source, size)
            warm = tmp / "warm.bin"
            _random_file(warm, 8 * MiB)
            with Streams(base_url=base, api_key=org["api_key"], timeout=120.0) as streams, \
                    httpx.Client(timeout=120.0) as client:  # fmt: skip

                def put(path: Path, name: str) -> float:
                    started = time.perf_counter()
                    r = client.put(
                        f"http://127.0.0.1:{put_port}/put/{name}",
                        content=_pieces(path),
                        headers={"Content-Length": str(path.stat().st_size)},  # as the SDK sends
                    )
                    elapsed = time.perf_counter() - started
                    if r.status_code != 204 or int(r.headers["x-stored"]) != path.stat().st_size:
                        raise RuntimeError(f"PUT sink stored {r.headers.get('x-stored')}: {r.text}")
                    return elapsed

                def upload(path: Path) -> tuple[float, str]:
                    started = time.perf_counter()
                    ticket = streams.assets.create_upload(name=path.name, size=path.stat().st_size)
                    streams.assets.upload_file(ticket.upload_url, path)
                    return time.perf_counter() - started, ticket.asset_id

                def settle(asset_id: str, within: float = 120.0) -> None:
                    deadline = time.monotonic() + within
                    while time.monotonic() < deadline:
                        if streams.assets.get(asset_id).status in ("ready", "errored"):
                            return
                        time.sleep(0.1)
                    notes.append(f"{asset_id} still packaging after {within:g} s")

                # Warm both servers (imports, first connections, first file).
                put(warm, "warm")
                _elapsed, warm_id = upload(warm)
                settle(warm_id)
                streams.assets.delete(warm_id)
                baseline = rss_bytes(control.pid)
                sink_baseline = rss_bytes(sink.pid)
                puts: list[float] = []
                uploads: list[float] = []
                put_cpu = upload_cpu = 0.0
                peak = sink_peak = 0
                stored_ok = True
                for rep in range(reps):

                    def measure_put(name: str) -> None:
                        nonlocal put_cpu, sink_peak
                        cpu0 = cpu_seconds(sink.pid)
                        with RssSampler(sink.pid) as s_rss:
                            puts.append(size / MiB / put(source, name))
                        put_cpu += cpu_seconds(sink.pid) - cpu0
                        sink_peak = max(sink_peak, s_rss.peak)
                        (sink_dir / name).unlink()
                        os.sync()  # the next transfer starts with no writeback pending

                    def measure_upload(label: str) -> None:
                        nonlocal upload_cpu, peak, stored_ok
                        cpu0 = cpu_seconds(control.pid)
                        with RssSampler(control.pid) as c_rss:
                            elapsed, asset_id = upload(source)
                        upload_cpu += cpu_seconds(control.pid) - cpu0
                        peak = max(peak, c_rss.peak)
                        uploads.append(size / MiB / elapsed)
                        stored = data_dir / "uploads" / f"{asset_id}.bin"
                        if not stored.exists() or _sha256(stored) != source_sha:
                            stored_ok = False
                            notes.append(f"{label}: stored bytes differ from the source")
                        # Random bytes are no media: let packaging say so (its probe reads
                        # the file) before the next transfer, which it would disturb.
                        settle(asset_id)
                        streams.assets.delete(asset_id)
                        os.sync()

                    # Alternate which goes first, so neither always follows the other.
                    if rep % 2 == 0:
                        measure_put(f"rep{rep}")
                        measure_upload(f"rep {rep}")
                    else:
                        measure_upload(f"rep {rep}")
                        measure_put(f"rep{rep}")
                    log(f"rep {rep}: PUT {puts[-1]:.0f} MiB/s, upload {uploads[-1]:.0f} MiB/s, "
                        f"control RSS peak {peak / MiB:.0f} MiB")  # fmt: skip
                source.unlink()
                ready = None
                if ready_seconds:
                    ready = _ready(streams, tmp, ready_seconds, ready_height, ready_timeout, log)
                    if ready.status != "ready":
                        notes.append(f"the {ready_seconds:g} s clip ended {ready.status}")
        # Each upload runs next to its PUT: the median of those pairs' ratios is what the
        # load of a shared machine disturbs least.
        ratio = statistics.median(u / p for u, p in zip(uploads, puts, strict=True))
        gib = size * reps / (1 << 30)
        peak, sink_peak = max(peak, baseline), max(sink_peak, sink_baseline)  # RSS may shrink
        return UploadReport(
            command=command,
            size_bytes=size,
            reps=reps,
            put_mib_s=[round(v, 1) for v in puts],
            upload_mib_s=[round(v, 1) for v in uploads],
            ratio=round(ratio, 3),
            put_cpu_s_per_gib=round(put_cpu / gib, 2),
            upload_cpu_s_per_gib=round(upload_cpu / gib, 2),
            stored_ok=stored_ok,
            rss_baseline_mib=round(baseline / MiB, 1),
            rss_peak_mib=round(peak / MiB, 1),
            rss_growth_mib=round(max(0, peak - baseline) / MiB, 1),
            put_sink_rss_growth_mib=round(max(0, sink_peak - sink_baseline) / MiB, 1),
            ready=ready,
            notes=notes,
        )


def _ready(
    streams: Any, tmp: Path, seconds: float, height: int, timeout: float,
    log: Callable[[str], None],
) -> ReadyResult:  # fmt: skip
    log(f"making a {seconds:g} s {height}p clip")
    clip = make_clip(tmp / f"clip{height}.mp4", seconds, height)
    ticket = streams.assets.create_upload(name=clip.name, size=clip.stat().st_size)
    streams.assets.upload_file(ticket.upload_url, clip)
    last_byte = time.perf_counter()
    status, asset = "timeout", None
    while time.perf_counter() - last_byte < timeout:
        asset = streams.assets.get(ticket.asset_id)
        if asset.status in ("ready", "errored"):
            status = asset.status
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - last_byte
    log(f"last byte to {status}: {elapsed:.1f} s")
    return ReadyResult(
        clip_seconds=seconds,
        height=height,
        size_bytes=clip.stat().st_size,
        status=status,
        last_byte_to_ready_s=round(elapsed, 2) if status == "ready" else None,
        duration_s=asset.duration if asset is not None else None,
        renditions=[r.name for r in asset.renditions] if asset is not None else [],
    )


def format_results(report: UploadReport) -> str:
    lines = [
        f"`{report.command}`" if report.command else "",
        "",
        "| figure | value |",
        "|---|---|",
        f"| file size | {report.size_bytes / MiB:.0f} MiB, {report.reps} reps |",
        f"| plain PUT (uvicorn) | {', '.join(f'{v:.0f}' for v in report.put_mib_s)} MiB/s |",
        f"| SDK upload (tus PATCH) | {', '.join(f'{v:.0f}' for v in report.upload_mib_s)} MiB/s |",
        f"| upload / PUT (median of the reps' ratios) | **{report.ratio:.2f}** (target >= 0.8) |",
        f"| server CPU per GiB: PUT sink / control plane | {report.put_cpu_s_per_gib:.2f} s / "
        f"{report.upload_cpu_s_per_gib:.2f} s |",
        f"| bytes stored = source | {'yes' if report.stored_ok else 'NO'} |",
        f"| control-plane RSS | {report.rss_baseline_mib:.0f} MiB after warm-up, peak "
        f"{report.rss_peak_mib:.0f} MiB: **+{report.rss_growth_mib:.1f} MiB** (target < 50) |",
        f"| PUT sink RSS growth | +{report.put_sink_rss_growth_mib:.1f} MiB |",
    ]
    r = report.ready
    if r is not None:
        value = (
            f"**{r.last_byte_to_ready_s:.1f} s**"
            if r.last_byte_to_ready_s is not None
            else r.status
        )
        lines.append(
            f"| last byte to ready, {r.clip_seconds:g} s {r.height}p clip "
            f"({r.size_bytes / MiB:.0f} MiB; {', '.join(r.renditions) or '-'}) | {value} |"
        )
    lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines).strip()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-put"]:
        _serve_put(int(argv[1]), argv[2])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--size", type=parse_size, default=parse_size("256MiB"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ready-seconds", type=float, default=60.0)
    parser.add_argument("--ready-height", type=int, default=1080)
    parser.add_argument("--ready-timeout", type=float, default=900.0)
    parser.add_argument("--no-ready", action="store_true", help="skip the last-byte-to-ready run")
    parser.add_argument("--workdir", type=Path, help="where the temporary files go")
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    args = parser.parse_args(argv)
    report = run(
        args.size,
        reps=args.reps,
        ready_seconds=None if args.no_ready else args.ready_seconds,
        ready_height=args.ready_height,
        ready_timeout=args.ready_timeout,
        workdir=args.workdir,
        command="python -m bench.upload " + " ".join(argv),
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(format_results(report))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
