"""pb_ playback in the Python SDK: the seed's recipe 4 given an on-demand URL writes a
playable MP4, against a really packaged asset served by the real ``/vod/`` router."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm

from clutchcall.streams import (
    AsyncStreams,
    BroadcastViewer,
    Chunk,
    ConfigurationError,
    Streams,
)
from clutchcall.streams._vod import is_vod_url, vod_url
from control.problems import install_problem_handlers
from control.server import bind
from media.ladder import AudioSpec, LadderSpec, VideoRung
from vod.delivery import AssetLocation, control_plane_verifier, delivery_router
from vod.packaging import PackagingJob, package_asset

from ..vod._clips import make_clip

pytestmark = pytest.mark.timeout(180)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
ORG = "org_vod"
PUBLIC = "pb_public1"
SIGNED = "pb_signed1"
SECONDS = 5.0


class Keys:
    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.document = {"keys": [{**public, "kid": "k1", "alg": "ES256", "use": "sig"}]}

    async def jwks(self) -> dict[str, Any]:
        return self.document

    def mint(self, sub: str, *, ttl: float = 600) -> str:
        now = time.time()
        claims = {"sub": sub, "org": ORG, "aud": "clutchcall-playback", "iat": now,
                  "exp": int(now + ttl), "jti": "jt_" + secrets.token_hex(8)}  # fmt: skip
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vodsdk")
    clip = make_clip(root / "c.mp4", seconds=SECONDS, width=640, height=360)
    out = root / "assets" / "as_1"
    ladder = LadderSpec(
        (VideoRung("360p", 360, 500_000), VideoRung("180p", 180, 200_000)),
        audio=AudioSpec(),
    )
    job = PackagingJob("as_1", PUBLIC, f"stream/{ORG}/{PUBLIC}", clip, out, None)
    asyncio.run(package_asset(job, ladder=ladder))
    return out


@dataclass
class Server:
    base_url: str
    keys: Keys


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@pytest.fixture
async def server(packaged: Path) -> AsyncIterator[Server]:
    keys = Keys()
    locations = {
        PUBLIC: AssetLocation(packaged, ORG, PUBLIC, False),
        SIGNED: AssetLocation(packaged, ORG, SIGNED, True),
    }

    async def resolve(pb_id: str) -> AssetLocation | None:
        return locations.get(pb_id)

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(delivery_router(resolve, control_plane_verifier(keys.jwks, None)))
    sock = bind("127.0.0.1", 0)
    srv = _Uvicorn(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.ensure_future(srv.serve(sockets=[sock]))
    while not srv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{sock.getsockname()[1]}", keys)
    finally:
        srv.should_exit = True
        await task
        sock.close()


def decoded_seconds(path: Path) -> tuple[float, str]:
    """(media time ffmpeg decoded, its error output) for every stream of ``path``."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-stats", "-i", str(path),
         "-map", "0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    times = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", out.stderr)
    assert out.returncode == 0 and times, out.stderr
    h, m, s = times[-1]
    errors = "\n".join(
        line for line in out.stderr.replace("\r", "\n").splitlines()
        if line.strip() and not line.startswith(("frame=", "size="))
    )  # fmt: skip
    return int(h) * 3600 + int(m) * 60 + float(s), errors


def streams_of(path: Path) -> str:
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return out.stderr


class Capture:
    """The seed's recipe 4 callbacks, with an event to wait on instead of sleeping."""

    def __init__(self, path: Path) -> None:
        self.out = path.open("wb")
        self.kinds: list[tuple[bool, str]] = []
        self.closed: tuple[str, str] | None = None
        self.done = threading.Event()

    def on_chunk(self, is_init: bool, chunk: Chunk) -> None:
        self.kinds.append((is_init, chunk.kind))
        self.out.write(chunk.data)

    def on_close(self, reason: str, detail: str) -> None:
        self.out.close()
        self.closed = (reason, detail)
        self.done.set()


def run_recipe_4(url: str, path: Path, **options: Any) -> Capture:
    capture = Capture(path)
    viewer = BroadcastViewer.open(
        url, on_chunk=capture.on_chunk, on_close=capture.on_close, **options
    )
    try:
        assert capture.done.wait(60), "the viewer never closed"
    finally:
        viewer.close()
    return capture


async def test_recipe_4_writes_a_playable_mp4_of_a_signed_asset(
    server: Server, tmp_path: Path
) -> None:
    token = server.keys.mint(SIGNED)
    url = vod_url(server.base_url, SIGNED, token)
    assert url.endswith(f"/vod/{SIGNED}/catalog.json?token={token}") and is_vod_url(url)
    out = tmp_path / "broadcast.mp4"
    capture = await asyncio.to_thread(run_recipe_4, url, out)
    assert capture.closed is not None and capture.closed[0] == "ended", capture.closed
    assert capture.kinds[0] == (True, "init")
    assert sum(k == "video" for _, k in capture.kinds) == 3  # 5 s on 2 s groups
    assert sum(k == "audio" for _, k in capture.kinds) == 3
    assert all(not init for init, _ in capture.kinds[1:])
    seconds, errors = decoded_seconds(out)
    assert errors == ""
    assert abs(seconds - SECONDS) < 0.25, seconds
    info = streams_of(out)
    assert "Video: h264" in info and "640x360" in info and "Audio: aac" in info


async def test_rendition_start_and_refusals(server: Server, tmp_path: Path) -> None:
    token = server.keys.mint(SIGNED)
    url = vod_url(server.base_url, SIGNED, token)
    low = await asyncio.to_thread(
        run_recipe_4, url, tmp_path / "low.mp4", rendition="180p", audio=False, start=2.5
    )
    assert low.closed is not None and low.closed[0] == "ended"
    assert [k for _, k in low.kinds] == ["init", "video", "video"]  # groups 1 and 2
    seconds, errors = decoded_seconds(tmp_path / "low.mp4")
    assert errors == "" and abs(seconds - 3.0) < 0.3, seconds
    assert "320x180" in streams_of(tmp_path / "low.mp4")
    # No token, a token for another asset, an unknown asset.
    for bad, reason in (
        (vod_url(server.base_url, SIGNED), "auth_failed"),
        (vod_url(server.base_url, SIGNED, server.keys.mint(PUBLIC)), "auth_failed"),
        (vod_url(server.base_url, "pb_nothere1"), "not_found"),
    ):
        c = await asyncio.to_thread(run_recipe_4, bad, tmp_path / "bad.mp4")
        assert c.closed is not None and c.closed[0] == reason, (bad, c.closed)
        assert c.kinds == []
    # Nothing listening: network, quickly (retries are short).
    c = await asyncio.to_thread(
        run_recipe_4, "http://127.0.0.1:9/vod/pb_x1/catalog.json", tmp_path / "n.mp4", retries=0
    )
    assert c.closed is not None and c.closed[0] == "network"


async def test_player_plays_pb_ids(server: Server, tmp_path: Path) -> None:
    def play() -> tuple[tuple[str, str], list[str], bool]:
        errors: list[str] = []
        streams = Streams(base_url=server.base_url)
        player = streams.viewer(on_error=lambda e: errors.append(str(e)))
        out = (tmp_path / "player.mp4").open("wb")
        player.attach(out)
        player.play(PUBLIC)  # an unsigned asset needs no token
        started = player.wait_started(30)
        result = player.wait(60)
        player.stop()
        out.close()
        return result, errors, started

    (reason, _detail), errors, started = await asyncio.to_thread(play)
    assert reason == "ended" and errors == [] and started
    seconds, ffmpeg_errors = decoded_seconds(tmp_path / "player.mp4")
    assert ffmpeg_errors == "" and abs(seconds - SECONDS) < 0.25
    with pytest.raises(ConfigurationError, match="base_url"):
        Streams(relay_url="https://relay.test:4443").viewer().play(PUBLIC)
    token = server.keys.mint(SIGNED)
    with pytest.raises(ConfigurationError, match="not pb_other1"):
        Streams(base_url=server.base_url, token=token).viewer().play("pb_other1")


async def test_async_player_plays_pb_ids(server: Server, tmp_path: Path) -> None:
    """AsyncStreams.viewer(): the same player, awaited (the sync one used to be the only one)."""
    chunks: list[bytes] = []
    errors: list[str] = []
    async with AsyncStreams(base_url=server.base_url) as streams:
        player = streams.viewer(on_error=lambda e: errors.append(str(e)))
        player.attach(chunks.append)
        await player.play(PUBLIC)
        assert await asyncio.wait_for(player.wait_started(), 30)
        reason, _ = await asyncio.wait_for(player.wait(), 60)
        await player.stop()
        with pytest.raises(ConfigurationError, match="not pb_other1"):
            token = server.keys.mint(SIGNED)
            await AsyncStreams(base_url=server.base_url, token=token).viewer().play("pb_other1")
    assert reason == "ended" and errors == []
    (tmp_path / "async.mp4").write_bytes(b"".join(chunks))
    seconds, ffmpeg_errors = decoded_seconds(tmp_path / "async.mp4")
    assert ffmpeg_errors == "" and abs(seconds - SECONDS) < 0.25


def test_vod_url_parsing() -> None:
    assert is_vod_url("https://app.example/vod/pb_abc/catalog.json?token=x")
    assert is_vod_url("http://127.0.0.1:8080/api/vod/pb_abc/")
    assert not is_vod_url("https://pop:4443/stream/org_x/lv_y?token=x")
    assert not is_vod_url("moqt://pop:4443/vod/pb_abc/catalog.json")
    with pytest.raises(ConfigurationError):
        BroadcastViewer.open("https://x/vod/pb_a/catalog.json?token=a", token="b")
