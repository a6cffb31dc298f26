"""Opus in CMAF (``Opus`` sample entry + ``dOps``) through the origin's MoQT ingest.

The browser publisher sends Opus (Chromium's AudioEncoder has no AAC), so the
origin must take it: ffmpeg makes H.264 + Opus fragmented MP4 live, the SDK's
publisher splits it into single-track CMAF and publishes it, the origin validates and
re-publishes it, and a viewer gets an ``opus`` track whose objects decode with ffmpeg.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from clutchcall.streams import AsyncPublisher
from media.ffmpeg import ffmpeg_exe
from tests.mesh.conftest import wait_until

from .conftest import ORG, Origin
from .helpers import Viewer, check_media, init_of, ns

pytestmark = [pytest.mark.timeout(90), pytest.mark.e2e]


def opus_source(seconds: float) -> subprocess.Popen[bytes]:
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error",
        "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
        "-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "64k", "-ac", "2",
        "-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_keyframe+cmaf",
        "-frag_duration", "500000", "pipe:1",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


async def test_opus_cmaf_is_ingested_validated_and_relayed(origin: Origin, tmp_path: Path) -> None:
    input_id, key = await origin.new_input()
    source = opus_source(30)
    publisher = AsyncPublisher(origin.url, verify=False, reconnect=0)
    try:
        await publisher.publish(input_id, key, source, f"stream/{ORG}/{input_id}")
        await wait_until(lambda: origin.node.inputs.get(input_id) is not None, 30, step=0.05)
        async with Viewer.open(origin.url, ns(ORG, input_id)) as viewer:
            catalog = await viewer.catalog()
            audio = next(t for t in catalog.tracks if t.name != "video" and t.role == "audio")
            assert audio.codec == "opus", audio
            init = init_of(catalog, audio.name)
            assert init.track.fourcc == "Opus"
            assert init.track.sample_rate == 48000 and init.track.channel_count == 2
            await viewer.subscribe(audio.name)
            objects = await viewer.wait_objects(audio.name, 4)
            check_media(objects, init)
        # The relayed bytes decode as Opus.
        clip = tmp_path / "opus.mp4"
        clip.write_bytes(init.data + b"".join(o.payload for o in objects))
        proc = await asyncio.create_subprocess_exec(
            ffmpeg_exe(), "-v", "error", "-i", str(clip), "-map", "0:a", "-f", "framecrc", "-",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr
        frames = [line for line in stdout.decode().splitlines() if not line.startswith("#")]
        assert len(frames) >= 20, stdout
    finally:
        await publisher.stop()
        source.kill()
        source.wait()
