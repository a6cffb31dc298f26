"""The SDK runs inside the user's program: it prints nothing, configures no logging, logs
through the standard ``logging`` module under ``clutchcall``, and a broadcast that ends
normally closes its viewers with ``ended`` (live, sync and async; on demand is covered by
tests/clutchcall/test_assets_vod.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clutchcall.streams import AsyncBroadcastViewer, AsyncPublisher, BroadcastViewer
from moqt.aio import MoqtConnection, SessionOptions, serve, server_configuration, write_self_signed
from moqt.errors import PublishDoneCode, SessionCloseCode
from moqt.events import Event, SubscribeRequested
from moqt.types import ObjectStatus
from tests.clutchcall.dataplane import NAMESPACE, Recorder, running_relay

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]

_IMPORT_CHECK = """
import json, logging
root = logging.getLogger()
before = (list(root.handlers), root.level, logging.lastResort)
import clutchcall.streams
import structlog
lib = logging.getLogger("clutchcall")
print(json.dumps({
    "root_same": (list(root.handlers), root.level, logging.lastResort) == before,
    "clutchcall": [type(h).__name__ for h in lib.handlers],
    "clutchcall_level": lib.level,
    "structlog_configured": structlog.is_configured(),
}))
"""

# A user's program that configures no logging, publishes and watches a broadcast to its
# end; it writes what it saw to a file (argv[4]) and must print nothing itself.
_CLIENT = """
import asyncio, json, logging, sys
from clutchcall.streams import AsyncBroadcastViewer, AsyncPublisher

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append([record.name, record.levelname, record.getMessage()])

sdk = logging.getLogger("clutchcall")
sdk.addHandler(Keep())
sdk.setLevel(logging.DEBUG)

async def main(relay, playback, cafile, out, namespace):
    pub = AsyncPublisher(relay, timeslice_ms=500, cafile=cafile)
    await pub.publish("lv_test", "sk_test", "testsrc", namespace)
    media = asyncio.Event()
    def on_chunk(is_init, chunk):
        if not is_init:
            media.set()
    viewer = await AsyncBroadcastViewer.open(playback, on_chunk=on_chunk, cafile=cafile)
    await asyncio.wait_for(media.wait(), 30)
    result = await pub.stop()
    closed = await asyncio.wait_for(viewer.wait_closed(), 15)
    with open(out, "w") as f:
        json.dump({"closed": list(closed), "result": repr(result), "records": records}, f)

asyncio.run(main(*sys.argv[1:6]))
"""


def test_importing_the_sdk_configures_no_logging() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    seen = json.loads(done.stdout)
    assert seen["root_same"], "importing clutchcall.streams changed the root logger"
    assert seen["clutchcall"] == ["NullHandler"]
    assert seen["clutchcall_level"] == logging.NOTSET
    assert not seen["structlog_configured"]


async def test_a_publisher_and_a_viewer_print_nothing_and_log_under_clutchcall(
    tmp_path: Path,
) -> None:
    out = tmp_path / "seen.json"
    async with running_relay(tmp_path) as relay:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CLIENT, relay.url(), relay.playback_url(), str(relay.cert),
            str(out), NAMESPACE, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 75)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert stdout == b"", stdout.decode()[:2000]
    assert stderr == b"", stderr.decode()[:2000]
    seen = json.loads(out.read_text())
    assert seen["closed"][0] == "ended", seen
    names = {name for name, _, _ in seen["records"]}
    assert {"clutchcall.streams.viewer", "clutchcall.streams.publisher"} <= names, names
    assert all(name.startswith("clutchcall.") for name in names)
    messages = [message for _, _, message in seen["records"]]
    assert any(m.startswith("viewer_closing reason='ended'") for m in messages), messages


def test_sync_viewer_closes_ended_and_logs_through_logging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clutchcall")
    closes: list[tuple[str, str]] = []

    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            pub = AsyncPublisher(relay.url(), timeslice_ms=500, cafile=str(relay.cert))
            await pub.publish("lv_test", "sk_test", "testsrc", NAMESPACE)
            media = asyncio.Event()
            loop = asyncio.get_running_loop()

            def on_chunk(is_init: bool, chunk: object) -> None:
                if not is_init:
                    loop.call_soon_threadsafe(media.set)

            viewer = await asyncio.to_thread(
                BroadcastViewer.open, relay.playback_url(), on_chunk=on_chunk,
                on_close=lambda reason, detail: closes.append((reason, detail)),
                cafile=str(relay.cert),
            )  # fmt: skip
            await asyncio.wait_for(media.wait(), 30)
            await pub.stop()
            assert (await asyncio.to_thread(viewer.wait, 15))[0] == "ended"

    asyncio.run(main())
    assert [reason for reason, _ in closes] == ["ended"]
    viewer_records = [r for r in caplog.records if r.name == "clutchcall.streams.viewer"]
    assert any(getattr(r, "event", "") == "viewer_closing" for r in viewer_records)
    closing = next(r for r in viewer_records if getattr(r, "event", "") == "viewer_closing")
    assert closing.fields["reason"] == "ended"  # type: ignore[attr-defined]
    publisher = [r for r in caplog.records if r.name == "clutchcall.streams.publisher"]
    assert any(getattr(r, "event", "") == "publishing" for r in publisher)


_DONE_CODES = {
    "too_far_behind": PublishDoneCode.TOO_FAR_BEHIND,
    "internal_error": PublishDoneCode.INTERNAL_ERROR,
}


async def _ending_server(tmp_path: Path, mode: str) -> tuple[object, int]:
    """A MoQT publisher that ends its broadcast at once: PUBLISH_DONE (TRACK_ENDED) followed
    by the session's end before the viewer's end grace is over, or an END_OF_TRACK object."""
    cert, key = write_self_signed(tmp_path, ["localhost"])

    def on_session(conn: MoqtConnection) -> None:
        def handle(c: MoqtConnection, event: Event) -> None:
            if not isinstance(event, SubscribeRequested):
                return
            c.session.accept_subscribe(event.request_id)
            if mode in _DONE_CODES:
                c.session.publish_done(event.request_id, _DONE_CODES[mode], mode)
            elif mode == "done_then_close":
                c.session.publish_done(event.request_id, PublishDoneCode.TRACK_ENDED, "over")
                # Closing at once would drop the PUBLISH_DONE still queued; close while the
                # viewer still delivers the end (its grace is 0.5 s).
                asyncio.get_running_loop().call_later(
                    0.15, c.close, SessionCloseCode.NO_ERROR, "bye"
                )
            else:
                handle_ = c.session.open_subgroup(event.request_id, 0, 0)
                c.session.write_object(handle_, 0, b"", status=ObjectStatus.END_OF_TRACK)
                c.session.end_subgroup(handle_)

        conn.set_event_handler(handle)

    server = await serve(
        "127.0.0.1", 0, configuration=server_configuration(cert, key), on_session=on_session,
        options=SessionOptions(),
    )  # fmt: skip
    return server, server.address[1]


@pytest.mark.parametrize("mode", ["done_then_close", "end_of_track"])
@pytest.mark.parametrize("api", ["async", "sync"])
async def test_a_normal_end_is_ended_whatever_follows_it(
    tmp_path: Path, mode: str, api: str
) -> None:
    server, port = await _ending_server(tmp_path, mode)
    url = f"moqt://127.0.0.1:{port}/{NAMESPACE}?token=t"
    rec = Recorder()
    started = time.monotonic()
    try:
        if api == "async":
            viewer = await AsyncBroadcastViewer.open(
                url, on_chunk=rec.on_chunk, on_close=rec.on_close, verify=False
            )
            reason, detail = await asyncio.wait_for(viewer.wait_closed(), 10)
        else:
            sync = await asyncio.to_thread(
                BroadcastViewer.open, url, on_chunk=rec.on_chunk, on_close=rec.on_close,
                verify=False,
            )  # fmt: skip
            reason, detail = await asyncio.to_thread(sync.wait, 10)
    finally:
        server.close()  # type: ignore[attr-defined]
    assert reason == "ended", (reason, detail)
    assert rec.closes == [(reason, detail)]
    assert time.monotonic() - started < 8


@pytest.mark.parametrize(
    ("mode", "expected"), [("too_far_behind", "network"), ("internal_error", "error")]
)
async def test_a_publish_done_that_is_not_an_end_is_not_ended(
    tmp_path: Path, mode: str, expected: str
) -> None:
    server, port = await _ending_server(tmp_path, mode)
    rec = Recorder()
    try:
        viewer = await AsyncBroadcastViewer.open(
            f"moqt://127.0.0.1:{port}/{NAMESPACE}?token=t", on_chunk=rec.on_chunk,
            on_close=rec.on_close, verify=False, reconnect=0,
        )  # fmt: skip
        reason, detail = await asyncio.wait_for(viewer.wait_closed(), 10)
    finally:
        server.close()  # type: ignore[attr-defined]
    assert (reason, detail) == (expected, f".catalog: {mode}")
    assert rec.closes == [(reason, detail)]
