"""The viewer's stall probe (clutchcall/streams/_viewer_session.py): a session that goes
silent is PINGed; a relay that does not answer is left for the next POP well before
QUIC's 30 s idle timeout, and a relay that answers (a publisher pause) is kept.

A real relay, a real publisher (ffmpeg), and bench.impair's UDP proxy in front of the
relay for the path that freezes (every datagram dropped both ways, as a SIGSTOPped or
SIGKILLed POP looks to its viewers: no CONNECTION_CLOSE, no ICMP).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.impair import ImpairmentProxy
from clutchcall.streams import AsyncBroadcastViewer, AsyncPublisher, ConfigurationError
from media.ffmpeg import ffmpeg_exe
from moqt.aio import ConnectionClosed, connect
from tests.clutchcall.dataplane import NAMESPACE, Recorder, running_relay

pytestmark = pytest.mark.timeout(90)


def _video(rec: Recorder) -> list[tuple[int, int]]:
    return [(c.group_id or 0, c.object_id or 0) for c in rec.chunks if c.kind == "video"]


async def _more_video(rec: Recorder, count: int, within: float) -> float:
    """Wait for ``count`` more video chunks; returns when the first of them arrived."""
    start = len(_video(rec))
    deadline = time.monotonic() + within
    first: float | None = None
    while len(_video(rec)) < start + count:
        assert not rec.closes, f"the viewer closed: {rec.closes}"
        assert time.monotonic() < deadline, f"{len(_video(rec)) - start} of {count} in {within}s"
        if first is None and len(_video(rec)) > start:
            first = time.monotonic()
        await asyncio.sleep(0.02)
    return first if first is not None else time.monotonic()


@pytest.mark.latency
async def test_a_frozen_relay_is_left_for_the_fallback_within_seconds(tmp_path: Path) -> None:
    """Without the probe the viewer waits out QUIC's 30 s idle timeout (the bound below
    fails); with it: silence of max(2 s, 3 x the 1 s groups) + a 1.5 s PING deadline,
    then the fallback URL, resuming at the next group."""
    async with running_relay(tmp_path) as relay:
        pub = AsyncPublisher(relay.url(), cafile=str(relay.cert), group_duration=1.0)
        await pub.publish("lv_test", "sk_test", "testsrc", NAMESPACE)
        upstream = ("127.0.0.1", relay.node.address[1])
        async with ImpairmentProxy(("127.0.0.1", 0), upstream) as proxy:
            rec = Recorder()
            frozen_url = f"moqt://127.0.0.1:{proxy.address[1]}/{NAMESPACE}?token=t0ken"
            viewer = await AsyncBroadcastViewer.open(
                frozen_url, on_chunk=rec.on_chunk, on_close=rec.on_close,
                cafile=str(relay.cert), fallback_urls=[relay.playback_url()],
            )  # fmt: skip
            try:
                await _more_video(rec, 4, within=30)
                last = _video(rec)[-1]
                proxy.blackhole = True  # the POP freezes: nothing in, nothing out
                frozen = time.monotonic()
                resumed = await _more_video(rec, 4, within=25)
                gap = resumed - frozen
                stats = viewer.statistics()
                print(f"\nfrozen relay: back after {gap:.2f} s, {stats}")
                assert stats["sessions"] == 2 and stats["stalls"] == 1
                # max(2, 3 x 1 s) of silence (from the last object, before the freeze)
                # + 1.5 s PING deadline + reconnect; 30 s without the probe.
                assert gap < 15.0
                video = _video(rec)
                assert video == sorted(video) and len(set(video)) == len(video)
                assert video[-1][0] > last[0]
                assert not viewer.closed
            finally:
                await viewer.close()
                await pub.stop()


async def _pausing_testsrc(gate: asyncio.Event) -> AsyncIterator[bytes]:
    """ffmpeg's live test pattern as fMP4 (1 s GOP), held back while ``gate`` is clear."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
        "-pix_fmt", "yuv420p", "-an", "-f", "mp4",
        "-movflags", "empty_moov+default_base_moof+frag_keyframe", "pipe:1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        while data := await proc.stdout.read(64 * 1024):
            await gate.wait()
            yield data
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.mark.latency
async def test_a_publisher_pause_on_a_live_relay_is_not_a_lost_session(tmp_path: Path) -> None:
    """The publisher sends nothing for 7 s (more than twice the 3 s stall threshold): the
    viewer PINGs, the relay answers, and it stays on its session (no reconnect, no
    close); playback goes on when the publisher does."""
    async with running_relay(tmp_path) as relay:
        gate = asyncio.Event()
        gate.set()
        pub = AsyncPublisher(relay.url(), cafile=str(relay.cert), group_duration=1.0)
        await pub.publish("lv_test", "sk_test", _pausing_testsrc(gate), NAMESPACE)
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_chunk=rec.on_chunk, on_close=rec.on_close,
            cafile=str(relay.cert), audio=False,
        )  # fmt: skip
        try:
            await _more_video(rec, 4, within=30)
            gate.clear()
            paused = time.monotonic()
            # Wait until the silence has been probed (and answered) twice.
            while viewer.statistics()["probes"] < 2:
                assert time.monotonic() - paused < 20, viewer.statistics()
                assert not rec.closes, rec.closes
                await asyncio.sleep(0.05)
            quiet = time.monotonic() - paused
            gate.set()
            await _more_video(rec, 4, within=30)
            stats = viewer.statistics()
            print(f"\npublisher pause: {quiet:.2f} s quiet, {stats}")
            assert stats["sessions"] == 1 and stats["stalls"] == 0 and stats["probes"] >= 2
            assert not viewer.closed and not rec.closes
            video = _video(rec)
            assert video == sorted(video) and len(set(video)) == len(video)
        finally:
            await viewer.close()
            await pub.stop()
    assert rec.closes == [("closed", "closed by the application")]


async def test_the_probe_settings_are_checked_and_can_be_turned_off(tmp_path: Path) -> None:
    url = "moqt://127.0.0.1:1/stream/o/l"
    with pytest.raises(ConfigurationError):
        await AsyncBroadcastViewer.open(url, verify=False, stall_timeout=-1.0)
    with pytest.raises(ConfigurationError):
        await AsyncBroadcastViewer.open(url, verify=False, ping_timeout=0.0)
    async with running_relay(tmp_path) as relay:
        async with connect(relay.url(), cafile=str(relay.cert)) as conn:
            await asyncio.wait_for(conn.ping(), 5)  # a live peer ACKs a QUIC PING
            conn.close()
            with pytest.raises(ConnectionClosed):
                await conn.ping()  # a closed session: a typed error at once, no wait
        # No broadcast (never any object) and the probe off: no PING is sent.
        rec = Recorder()
        viewer = await AsyncBroadcastViewer.open(
            relay.playback_url(), on_close=rec.on_close, cafile=str(relay.cert),
            stall_timeout=0, start_timeout=3.5,
        )  # fmt: skip
        assert (await viewer.wait_closed())[0] == "not_found"
        assert viewer.statistics()["probes"] == 0
