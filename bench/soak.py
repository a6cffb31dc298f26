"""Soak run (issue 13, "Proof at scale"): the full stack for an hour, checked for leaks and errors.

    python -m bench.soak [--duration 3600] [--viewers 50] [--warmup 300]
                         [--revoke-every 30] [--rotate-every 600] [--json FILE]

Real processes on loopback, each its own: ``redis-server``, the control plane
(``clutchcall control``), an origin (``clutchcall origin``, RTMP on, stream keys
checked against Redis, a one-rung 360p ladder + AAC so the transcode stays cheap on
a shared machine) and a POP (``clutchcall pop --jwks bus``). The org is made with
``clutchcall admin``; everything else goes through the Python SDK as a customer
would: an RTMP live input, signed playback URLs, token revocations, key rotations.

* The broadcast: ffmpeg (imageio-ffmpeg) pushes a 640x360 test source over RTMP
  with the input's stream key, in real time, for the whole run.
* ``--viewers`` viewer slots (the SDK's :class:`AsyncBroadcastViewer`, in this
  process): each joins with a fresh signed URL, watches for a random while
  (``--stay`` seconds, uniform), leaves, pauses, joins again.
* Every ``--revoke-every`` seconds the token of one watching viewer (one with more than
  20 s of its stay left) is revoked (by ``jti``): that viewer must close with
  ``auth_failed`` within 15 s (counted; its slot waits those 15 s before leaving). How
  long each took and how each closed are reported too.
* Every ``--rotate-every`` seconds the stream key is rotated: the origin drops the
  encoder (the rotated key no longer publishes), the bench restarts ffmpeg with the
  new key; viewers of the dropped broadcast end and rejoin.

Reported at the end (and with ``--json``):

* **RSS growth** of each node after warm-up: the median RSS over the last tenth of
  the run against the median over the minute after ``--warmup`` (the origin's
  Python process without its ffmpeg child, which restarts on every rotation).
  Target < 5 %.
* **error log lines**: JSON log records at level ``error``/``critical`` and
  ``Traceback`` lines in every node's log. Target 0.
* **objects lost by viewers that keep up**: in every viewer session that never
  reconnected (one MoQT session) the media objects it received, per track, must be
  contiguous (object ids +1 in a group; a new group starts at object 0 and follows the
  previous group). Target 0. Sessions that reconnected are reported apart. A group's
  tail that never came (the next group starts at its object 0) is not seen.
* **POP upstream reconnects**: the POP's link to the origin lost (its log: stalled, node down);
  its tracks resubscribe from the next group that starts, so the whole groups skipped
  from 1 s before to 6 s after one are shown next to the total.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from clutchcall.streams import Chunk
from media.ffmpeg import ffmpeg_exe

from ._nodes import ROOT, node_env
from ._procs import free_port, python, rss_bytes

__all__ = ["SoakResult", "format_result", "main", "run"]

_CLI = "import sys; from cli.main import main; sys.exit(main())"
_LADDER = "360p:360:500000"
# Skips among a session's first groups of a track are its join (start at the live edge).
_JOIN_GROUPS = 3


@dataclass
class Session:
    slot: int
    jti: str
    started: float
    ended: float = 0.0
    reason: str = ""
    chunks: int = 0
    lost: int = 0  # objects missing between two received ones
    groups_skipped: int = 0
    disorder: int = 0  # an object not after the previous one of its track
    sessions: int = 1  # MoQT sessions the viewer used (> 1: it reconnected)
    revoked: bool = False
    leaves_at: float = 0.0  # when the slot means to close it (monotonic)
    join_skipped: int = 0  # groups passed over while joining (the first groups of a track)
    last: dict[str, tuple[int, int]] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    skips: list[tuple[float, int]] = field(default_factory=list)  # (wall time, groups skipped)

    def chunk_callback(self, _is_init: bool, chunk: Chunk) -> None:
        self.on_chunk(chunk.kind, chunk.group_id, chunk.object_id)

    def on_chunk(self, kind: str, group: int | None, obj: int | None) -> None:
        self.chunks += 1
        if group is None or obj is None or kind == "init":
            return
        prev = self.last.get(kind)
        self.last[kind] = (group, obj)
        if prev is None:
            return
        pg, po = prev
        if group == pg and obj > po:
            self.lost += obj - po - 1
        elif group > pg:
            groups = self.groups[kind] = self.groups.get(kind, 1) + 1
            if groups <= _JOIN_GROUPS:
                # Joining: the viewer may move from the group it joined at to the live edge.
                self.join_skipped += group - pg - 1
            else:
                self.lost += obj  # a group's objects before the first one received
                self.groups_skipped += group - pg - 1
                if group - pg - 1 > 0:
                    self.skips.append((time.time(), group - pg - 1))
        else:
            self.disorder += 1


@dataclass
class SoakResult:
    duration: float = 0.0
    viewers: int = 0
    sessions: int = 0
    sessions_kept_up: int = 0
    chunks: int = 0
    objects_lost_kept_up: int = 0
    groups_skipped_kept_up: int = 0
    disorder_kept_up: int = 0
    join_groups_skipped: int = 0
    objects_lost_reconnected: int = 0
    close_reasons: dict[str, int] = field(default_factory=dict)
    revocations: int = 0
    revocations_enforced: int = 0
    # Seconds from the revocation (the API call answered) to the viewer's close, and how
    # that viewer closed (auth_failed, or e.g. closed: it left before the POP ended it).
    revocation_close_s: list[float] = field(default_factory=list)
    revocation_reasons: dict[str, int] = field(default_factory=dict)
    # The POP's upstream link to the origin lost (stalled, ...) and re-established (its
    # tracks resubscribed from the next group on), and the whole groups the viewers that
    # kept up skipped from 1 s before to 6 s after one of those.
    upstream_reconnects: int = 0
    groups_skipped_at_reconnects: int = 0
    rotations: int = 0
    encoder_starts: int = 0
    api_retries: int = 0  # control-plane calls retried after a lost connection
    api_failures: int = 0
    rss_mb: dict[str, list[float]] = field(default_factory=dict)  # [after warm-up, end]
    rss_growth_pct: dict[str, float] = field(default_factory=dict)
    # The same, compared only between samples taken with the same number of viewers
    # connected: the POP's RSS follows its sessions, which come and go at random.
    rss_growth_equal_viewers_pct: dict[str, float] = field(default_factory=dict)
    samples: list[dict[str, float]] = field(default_factory=list)  # t, viewers, MB per node
    error_lines: int = 0
    error_samples: list[str] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: list[str] = field(default_factory=list)


def _clutchcall(*args: str) -> list[str]:
    return [python(), "-c", _CLI, *args]


class _Stack:
    """Redis, control plane, origin (RTMP) and POP as processes; ``stop()`` ends them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[_Node] = []
        try:
            self._start()
        except BaseException:
            self.stop()  # a node that did not come up: stop the ones that did
            raise

    def _start(self) -> None:
        from moqt.aio import write_self_signed

        workdir = self.workdir
        cert, key = write_self_signed(workdir / "tls", ["localhost", "127.0.0.1"])
        self.cafile = str(cert)
        tls = ["--cert", str(cert), "--key", str(key)]
        redis_port = free_port(socket.SOCK_STREAM)
        self.redis = f"redis://127.0.0.1:{redis_port}/0"
        self.db = f"sqlite:///{workdir / 'control.db'}"
        self.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)])  # fmt: skip
        pop_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
        self.base_url = f"http://127.0.0.1:{http_port}"
        fast = ["--heartbeat-interval", "0.5", "--node-ttl", "1.5", "--log-level", "info"]
        self.control = self.start("control", _clutchcall(
            "control", "--http", f"127.0.0.1:{http_port}", "--db", self.db, "--redis",
            self.redis, "--relay-url", f"moqt://127.0.0.1:{pop_port}"))  # fmt: skip
        self.pop = self.start("pop", _clutchcall(
            "pop", "--quic", f"127.0.0.1:{pop_port}", "--http", "127.0.0.1:0", "--redis",
            self.redis, "--node-id", "pop-soak", "--region", "local", "--jwks", "bus",
            *tls, *fast))  # fmt: skip
        self.origin = self.start("origin", _clutchcall(
            "origin", "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--rtmp",
            "127.0.0.1:0", "--redis", self.redis, "--node-id", "origin-soak", "--region",
            "local", "--ladder", _LADDER, *tls, *fast))  # fmt: skip
        ready = self.wait_event(self.origin, "origin_ready", 60)
        self.rtmp_port = int(str(ready["rtmp"]).rpartition(":")[2])
        self.wait_event(self.pop, "pop_ready", 60)
        self._wait_http(60)
        out = subprocess.run(
            _clutchcall("admin", "create-org", "Soak", "--org-id", "org_soak", "--json",
                        "--db", self.db),
            capture_output=True, text=True, timeout=60, check=True, env=self._env(), cwd=ROOT,
        )  # fmt: skip
        org = json.loads(out.stdout)
        self.api_key, self.org_id = str(org["api_key"]), "org_soak"

    @staticmethod
    def _env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUTCHCALL_")}
        return {**env, **node_env(), "PYTHONUNBUFFERED": "1"}

    def start(self, name: str, argv: Sequence[str]) -> _Node:
        proc = _Node(argv, name=name, env=self._env(), log=self.log(name))
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def wait_event(self, node: _Node, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log(node.name).read_text(errors="replace").splitlines():
                if f'"{event}"' in line:
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                        if record.get("event") == event:
                            return dict(record)
            if node.popen.poll() is not None:
                raise RuntimeError(f"{node.name} exited: {self.log(node.name).read_text()[-2000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{node.name}: no {event!r} within {timeout}s")

    def _wait_http(self, timeout: float) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            if self.control.popen.poll() is not None:
                raise RuntimeError(f"control exited: {self.log('control').read_text()[-2000:]}")
            time.sleep(0.2)
        raise TimeoutError("control plane not ready")

    def ffmpeg_pids(self) -> list[int]:
        from ._nodes import tree_pids

        return tree_pids(self.origin.pid)[1:]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=10)


class _Node:
    """A child process whose stdout *and* stderr go to its log file (nothing is piped:
    an hour of output must never block a node on a full pipe)."""

    def __init__(self, argv: Sequence[str], *, name: str, env: dict[str, str], log: Path):
        self.name = name
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        return int(self.popen.returncode)


def _encoder_argv(url: str, seconds: float) -> list[str]:
    return [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:.0f}", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
        "-b:v", "600k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
    ]  # fmt: skip


class _Soak:
    def __init__(self, stack: _Stack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.result = SoakResult(duration=args.duration, viewers=args.viewers)
        self.sessions: list[Session] = []
        self.watching: dict[int, tuple[Session, Any]] = {}  # slot -> (session, viewer)
        self.encoder: _Node | None = None
        self.samples: list[tuple[float, dict[str, int]]] = []  # rss["viewers"]: connected
        self.t0 = 0.0

    # --- encoder ---------------------------------------------------------------------------

    def start_encoder(self, external_id: str, key: str) -> None:
        if self.encoder is not None:
            self.encoder.stop(timeout=5)
            self.stack.procs.remove(self.encoder)
        url = f"rtmp://127.0.0.1:{self.stack.rtmp_port}/live/{external_id}/{key}"
        self.encoder = self.stack.start("encoder", _encoder_argv(url, self.args.duration + 600))
        self.result.encoder_starts += 1

    # --- tasks -----------------------------------------------------------------------------

    async def run(self) -> SoakResult:
        from clutchcall.streams import AsyncStreams

        async with AsyncStreams(base_url=self.stack.base_url, api_key=self.stack.api_key,
                                org_id=self.stack.org_id) as streams:  # fmt: skip
            created = await streams.live_inputs.create(name="soak", ingest="rtmp")
            self.inp = created.input
            self.start_encoder(self.inp.external_input_id, created.stream_key)
            self.t0 = time.monotonic()
            stop_at = self.t0 + self.args.duration
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sample(stop_at))
                tg.create_task(self._revoker(streams, stop_at))
                tg.create_task(self._rotator(stop_at))
                for slot in range(self.args.viewers):
                    tg.create_task(self._slot(slot, stop_at))
        self.result.load = os.getloadavg()
        return self.result

    async def _api[T](self, call: Callable[[], Awaitable[T]]) -> T | None:
        """A control-plane call, retried on a lost connection (a keep-alive connection the
        server closed as it was reused); None after 5 tries. Both are counted."""
        from clutchcall.streams import ConnectionFailed, ServerError

        for attempt in range(5):
            try:
                return await call()
            except (ConnectionFailed, ServerError) as exc:
                self.result.api_retries += 1
                if attempt == 4:
                    self.result.api_failures += 1
                    self.result.notes.append(f"control-plane call failed: {exc}"[:300])
                    return None
                await asyncio.sleep(0.5 * (attempt + 1))
        return None

    async def _slot(self, slot: int, stop_at: float) -> None:
        from clutchcall.streams import AsyncBroadcastViewer

        rng = random.Random(slot)
        await asyncio.sleep(slot * min(0.2, self.args.duration / 20 / max(1, self.args.viewers)))
        lo, hi = self.args.stay
        while time.monotonic() < stop_at - 2:
            ttl = int(self.args.duration) + 600
            ticket = await self._api(partial(self.inp.signed_playback_url, ttl_seconds=ttl))
            if ticket is None:
                await asyncio.sleep(2.0)
                continue
            session = Session(slot, ticket.jti, time.monotonic())
            self.sessions.append(session)
            viewer = await AsyncBroadcastViewer.open(
                ticket.url, cafile=self.stack.cafile, start_timeout=60,
                on_chunk=session.chunk_callback,
            )  # fmt: skip
            self.watching[slot] = (session, viewer)
            stay = min(rng.uniform(lo, hi), stop_at - time.monotonic())
            session.leaves_at = time.monotonic() + stay
            try:
                reason, _ = await asyncio.wait_for(asyncio.shield(viewer.wait_closed()), stay)
            except TimeoutError:
                if session.revoked:
                    # Leaving now would hide whether the POP ends it: give it the 15 s.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(viewer.wait_closed()), 15)
                reason, _ = await viewer.close()
            self.watching.pop(slot, None)
            session.ended, session.reason = time.monotonic(), reason
            session.sessions = int(viewer.statistics().get("sessions") or 1)
            await asyncio.sleep(rng.uniform(0.5, 3.0))

    async def _revoker(self, streams: Any, stop_at: float) -> None:
        rng = random.Random(7)
        while time.monotonic() < stop_at - 20:
            await asyncio.sleep(self.args.revoke_every)
            # A viewer about to leave (less than 20 s of its stay left) would close on its
            # own before the POP could be seen to end it: pick among the others.
            playing = [
                (s, v)
                for s, v in self.watching.values()
                if s.chunks > 0 and not v.closed and s.leaves_at - time.monotonic() > 20
            ]
            if not playing:
                continue
            session, viewer = rng.choice(playing)
            session.revoked = True
            self.result.revocations += 1
            if await self._api(partial(streams.playback_tokens.revoke, jti=session.jti)) is None:
                continue
            revoked_at = time.monotonic()
            try:
                reason, _ = await asyncio.wait_for(asyncio.shield(viewer.wait_closed()), 60)
            except TimeoutError:
                reason = "open_after_60s"
            took = time.monotonic() - revoked_at
            r = self.result
            r.revocation_close_s.append(round(took, 2))
            r.revocation_reasons[reason] = r.revocation_reasons.get(reason, 0) + 1
            if reason == "auth_failed" and took <= 15:
                r.revocations_enforced += 1

    async def _rotator(self, stop_at: float) -> None:
        if self.args.rotate_every <= 0:
            return
        while time.monotonic() + self.args.rotate_every < stop_at - 10:
            await asyncio.sleep(self.args.rotate_every)
            rotated = await self._api(self.inp.rotate_stream_key)
            if rotated is None:
                continue
            self.result.rotations += 1
            await asyncio.sleep(1.0)  # the origin drops the old key's encoder
            await asyncio.to_thread(
                self.start_encoder, self.inp.external_input_id, rotated.stream_key
            )

    async def _sample(self, stop_at: float) -> None:
        while True:
            now = time.monotonic()
            rss: dict[str, int] = {}
            for proc in (self.stack.origin, self.stack.pop, self.stack.control):
                with contextlib.suppress(OSError):
                    rss[proc.name] = rss_bytes(proc.pid)
            rss["ffmpeg"] = sum(_safe_rss(p) for p in self.stack.ffmpeg_pids())
            rss["viewers"] = len(self.watching)
            self.samples.append((now - self.t0, rss))
            if now >= stop_at:
                return
            await asyncio.sleep(min(self.args.sample_every, max(0.0, stop_at - now)))

    # --- figures ---------------------------------------------------------------------------

    def finish(self) -> None:
        r = self.result
        r.sessions = len(self.sessions)
        for s in self.sessions:
            r.chunks += s.chunks
            r.close_reasons[s.reason or "running"] = (
                r.close_reasons.get(s.reason or "running", 0) + 1
            )
            if s.sessions == 1:
                r.sessions_kept_up += 1
                r.objects_lost_kept_up += s.lost
                r.groups_skipped_kept_up += s.groups_skipped
                r.disorder_kept_up += s.disorder
                r.join_groups_skipped += s.join_skipped
            else:
                r.objects_lost_reconnected += s.lost
        warm_lo, warm_hi = self.args.warmup, self.args.warmup + max(60.0, self.args.duration / 20)
        tail = self.args.duration * 0.9
        for name in ("origin", "pop", "control"):
            first = [s[name] for t, s in self.samples if warm_lo <= t <= warm_hi and name in s]
            last = [s[name] for t, s in self.samples if t >= tail and name in s]
            if not first or not last:
                r.notes.append(f"{name}: not enough RSS samples")
                continue
            a, b = statistics.median(first) / 2**20, statistics.median(last) / 2**20
            r.rss_mb[name] = [round(a, 1), round(b, 1)]
            r.rss_growth_pct[name] = round((b - a) / a * 100, 2)
            equal = _growth_at_equal_viewers(self.samples, name, (warm_lo, warm_hi), tail)
            if equal is not None:
                r.rss_growth_equal_viewers_pct[name] = equal
        r.samples = [
            {"t": round(t, 1), **{k: (v if k == "viewers" else round(v / 2**20, 2))
                                  for k, v in s.items()}}
            for t, s in self.samples
        ]  # fmt: skip
        reconnects = _upstream_reconnects(self.stack.log("pop"))
        r.upstream_reconnects = len(reconnects)
        r.groups_skipped_at_reconnects = sum(
            n
            for s in self.sessions
            if s.sessions == 1
            for at, n in s.skips
            if any(t - 1 <= at <= t + 6 for t in reconnects)
        )
        for name in ("control", "origin", "pop"):
            for line in self.stack.log(name).read_text(errors="replace").splitlines():
                if _is_error(line):
                    r.error_lines += 1
                    if len(r.error_samples) < 5:
                        r.error_samples.append(f"{name}: {line[:300]}")


def _growth_at_equal_viewers(
    samples: list[tuple[float, dict[str, int]]], name: str, warm: tuple[float, float], tail: float
) -> float | None:
    """RSS growth (%) of ``name`` from the warm-up window to the tail, compared between
    samples with the same number of viewers connected: the median of the per-count growths
    over every count seen in both windows (None when no count is)."""
    first: dict[int, list[int]] = {}
    last: dict[int, list[int]] = {}
    for t, s in samples:
        if name not in s:
            continue
        if warm[0] <= t <= warm[1]:
            first.setdefault(s["viewers"], []).append(s[name])
        if t >= tail:
            last.setdefault(s["viewers"], []).append(s[name])
    growths = [
        (statistics.median(last[v]) - statistics.median(first[v])) / statistics.median(first[v])
        for v in first.keys() & last.keys()
    ]
    return round(statistics.median(growths) * 100, 2) if growths else None


def _upstream_reconnects(log: Path) -> list[float]:
    """Wall times (s) at which the POP lost its upstream link to the origin
    (``upstream_closed``: stalled, node down, ...): its tracks then resubscribe from the
    next group that starts, so its viewers skip the rest of the group in progress and
    any group that began while the link was silent."""
    import datetime as dt

    out: list[float] = []
    for line in log.read_text(errors="replace").splitlines():
        if '"upstream_closed"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record = json.loads(line)
            if record.get("event") == "upstream_closed":
                ts = str(record["ts"]).replace("Z", "+00:00")
                out.append(dt.datetime.fromisoformat(ts).timestamp())
    return out


def _safe_rss(pid: int) -> int:
    try:
        return rss_bytes(pid)
    except OSError:
        return 0


def _is_error(line: str) -> bool:
    if line.startswith("Traceback") or "[error" in line or "[critical" in line:
        return True
    if '"level"' not in line:
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return str(record.get("level", "")).lower() in ("error", "critical", "exception")


def run(args: argparse.Namespace) -> SoakResult:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clutchcall-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stack = _Stack(workdir)
    soak = _Soak(stack, args)
    try:
        asyncio.run(soak.run())
    finally:
        stack.stop()
    soak.finish()
    soak.result.notes.append(f"logs in {workdir}")
    return soak.result


def format_result(r: SoakResult) -> str:
    lines = [
        f"soak: {r.duration:.0f} s, {r.viewers} viewer slots, {r.sessions} viewer sessions "
        f"({r.sessions_kept_up} on one MoQT session), {r.chunks} chunks received",
        f"objects lost by viewers that kept up: {r.objects_lost_kept_up} "
        f"(whole groups skipped {r.groups_skipped_kept_up}, out of order "
        f"{r.disorder_kept_up}); by sessions that reconnected: {r.objects_lost_reconnected}; "
        f"groups passed over while joining: {r.join_groups_skipped}",
        f"POP upstream link lost (stalled, node down) and re-established: {r.upstream_reconnects} "
        f"times; whole groups skipped by viewers that kept up from 1 s before to 6 s after one: "
        f"{r.groups_skipped_at_reconnects}",
        f"token revocations: {r.revocations}, enforced (auth_failed within 15 s): "
        f"{r.revocations_enforced}; revocation -> viewer closed (s): {_spread(r.revocation_close_s)}"
        f", how: " + ", ".join(f"{k} {v}" for k, v in sorted(r.revocation_reasons.items())),
        f"stream key rotations: {r.rotations}, encoder starts: "
        f"{r.encoder_starts}; control-plane calls retried {r.api_retries}, failed "
        f"{r.api_failures}",
        "viewer closes: " + ", ".join(f"{k} {v}" for k, v in sorted(r.close_reasons.items())),
        "RSS after warm-up -> end (MB): "
        + ", ".join(
            f"{n} {a:.1f} -> {b:.1f} ({r.rss_growth_pct[n]:+.2f} %)"
            for n, (a, b) in r.rss_mb.items()
        ),
        "  at equal viewer counts: "
        + ", ".join(f"{n} {g:+.2f} %" for n, g in r.rss_growth_equal_viewers_pct.items()),
        f"error log lines: {r.error_lines}",
        *[f"  {s}" for s in r.error_samples],
        f"load average at the end: {r.load[0]:.2f} {r.load[1]:.2f} {r.load[2]:.2f} "
        f"({os.cpu_count()} cores, shared with other work)",
        *[f"note: {n}" for n in r.notes],
    ]
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else values * 9
    return f"median {statistics.median(values):.2f}, p90 {q[8]:.2f}, max {max(values):.2f}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3600.0, help="seconds (default 1 hour)")
    p.add_argument("--viewers", type=int, default=50, help="viewer slots")
    p.add_argument("--warmup", type=float, default=300.0, help="seconds before RSS is compared")
    p.add_argument("--stay", type=float, nargs=2, default=(30.0, 240.0), metavar=("MIN", "MAX"),
                   help="seconds a viewer watches before leaving (uniform)")  # fmt: skip
    p.add_argument("--revoke-every", type=float, default=30.0)
    p.add_argument("--rotate-every", type=float, default=600.0, help="0: no key rotation")
    p.add_argument("--sample-every", type=float, default=10.0, help="RSS sampling period")
    p.add_argument("--workdir", default=None, help="logs and state (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.viewers <= 0 or args.revoke_every <= 0:
        p.error("--duration, --viewers and --revoke-every must be positive")
    if args.warmup >= args.duration:
        p.error("--warmup must be shorter than --duration")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    import structlog

    args = parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    result = run(args)
    print(format_result(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
