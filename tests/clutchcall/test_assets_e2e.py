"""On demand end to end through ``clutchcall control``: the SDK uploads a real clip, the
server packages it, the asset.ready webhook arrives signed, and the seed's recipe 4
captures the signed pb_ URL into an MP4 that ffmpeg decodes at the clip's duration."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clutchcall.streams import BroadcastViewer, Chunk, Streams, verify_webhook
from tests.clutchcall.test_assets_vod import decoded_seconds, streams_of
from tests.control.server import ControlServer, create_org
from tests.control.webhook_receiver import Receiver
from tests.vod._clips import make_clip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SECONDS = 4.0


@pytest.fixture
def control(tmp_path: Path) -> Iterator[tuple[ControlServer, str]]:
    db = f"sqlite:///{tmp_path / 'control.db'}"
    org = create_org(db)
    server = ControlServer(
        db, "--data-dir", str(tmp_path / "data"), "--webhook-retry-base", "0.5",
        "--webhook-allow-private",  # the receiver is on this machine
    )  # fmt: skip
    try:
        yield server, str(org["api_key"])
    finally:
        server.close()


def test_upload_ready_webhook_and_recipe_4_capture(
    control: tuple[ControlServer, str], tmp_path: Path
) -> None:
    server, api_key = control
    clip = make_clip(tmp_path / "Session-Recording.mp4", seconds=SECONDS)
    receiver = Receiver(statuses=[500])  # the first delivery fails, the retry succeeds
    try:
        with Streams(base_url=server.base_url, api_key=api_key) as streams:
            hook = streams.webhooks.create(url=receiver.url, events=["asset.ready"])
            assert hook.secret is not None
            seen: list[int] = []
            asset = streams.assets.upload(
                clip, name="Session", require_signed_urls=True,
                on_progress=lambda sent, _total: seen.append(sent),
            )  # fmt: skip
            assert seen[-1] == clip.stat().st_size
            ready = streams.assets.wait_ready(asset.id, timeout=180, poll=0.2)
            assert ready.status == "ready" and ready.playback_url is None  # signed only
            assert ready.duration is not None and abs(ready.duration - SECONDS) < 0.3
            assert {r.name for r in ready.renditions} >= {"360p", "audio"}
            ticket = ready.signed_playback_url(ttl_seconds=600)
            assert f"/vod/{ready.playback_id}/catalog.json?token=" in ticket.url

            # The seed's recipe 4, as printed, on the pb_ URL.
            out = (tmp_path / "broadcast.mp4").open("wb")
            closed: list[tuple[str, str]] = []
            done = threading.Event()

            def on_chunk(is_init: bool, chunk: Chunk) -> None:
                out.write(chunk.data)

            def on_close(reason: str, detail: str) -> None:
                out.close()
                closed.append((reason, detail))
                done.set()

            viewer = BroadcastViewer.open(ticket.url, on_chunk=on_chunk, on_close=on_close)
            assert done.wait(60)
            viewer.close()
            assert closed == [("ended", "the asset ended")]
            seconds, errors = decoded_seconds(tmp_path / "broadcast.mp4")
            assert errors == "" and abs(seconds - SECONDS) < 0.3, (seconds, errors)
            assert "Video: h264" in streams_of(tmp_path / "broadcast.mp4")

            # Without the token the asset is refused: auth_failed through on_close.
            refused = threading.Event()
            reasons: list[str] = []
            unsigned = ticket.url.split("?", 1)[0]
            BroadcastViewer.open(
                unsigned, on_close=lambda r, _d: (reasons.append(r), refused.set())
            ).wait(30)
            assert reasons == ["auth_failed"]

            # asset.ready reached the endpoint, signed, after one retry.
            got = receiver._wait(lambda rs: any(r.answered == 200 for r in rs), 30)
            assert [r.answered for r in got] == [500, 200]
            event = verify_webhook(
                hook.secret, got[-1].headers["ClutchCall-Signature"], got[-1].body
            )
            assert event["type"] == "asset.ready"
            assert json.dumps(event["data"]).count(asset.id) >= 1
    finally:
        receiver.close()
