"""Publishers that are not ours: aiomoqt's pub_example against the origin.

``--publish-auth none`` admits a publisher that presents no key at all, and with
stream keys a publisher can put its key wherever a client can: CLIENT_SETUP,
PUBLISH_NAMESPACE, PUBLISH, or the connection URL (``?key=``). pub_example
sends a bare PUBLISH (no token on it), so the URL is its way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomoqt
import pytest

from moqt.aio import SessionOptions, connect
from moqt.errors import RequestErrorCode
from moqt.events import RequestRejected
from moqt.types import Namespace

from .conftest import ORG, Origin, running_origin

pytestmark = pytest.mark.timeout(60)

PUB_EXAMPLE = Path(aiomoqt.__file__).parent / "examples" / "pub_example.py"


@contextlib.asynccontextmanager
async def pub_example(url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Path]:
    log = tmp_path / "pub_example.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(PUB_EXAMPLE), url, "-N", namespace, "-T", "video", "-k",
            "-t", "20", "--draft", "16", "-r", "10", stdout=out, stderr=out,
        )  # fmt: skip
    try:
        yield log
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.wait_for(process.wait(), 5)


async def admitted(
    origin: Origin, input_id: str, within: float = 15.0, refused_before: int = 0
) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        downs = list(origin.node._downstream.values())
        if any(input_id in d.ingest.inputs() for d in downs):
            return True
        if origin.node.statistics().moqt_refused > refused_before:
            return False
        await asyncio.sleep(0.05)
    return False


async def test_publish_auth_none_admits_a_publisher_without_key(
    tmp_path: Path, redis_url: str
) -> None:
    async with running_origin(tmp_path, redis_url, rtmp="", publish_auth="none") as origin:
        async with pub_example(origin.url, "stream/org_dev/lv_open", tmp_path) as log:
            assert await admitted(origin, "lv_open"), log.read_text()[-2000:]
        assert origin.node.statistics().moqt_refused == 0


async def test_stream_key_in_the_connection_url(tmp_path: Path, redis_url: str) -> None:
    async with running_origin(tmp_path, redis_url, rtmp="") as origin:
        input_id, key = await origin.new_input()
        namespace = f"stream/{ORG}/{input_id}"
        async with pub_example(f"{origin.url}/?key=wrong", namespace, tmp_path) as log:
            assert not await admitted(origin, input_id, within=10), log.read_text()[-2000:]
        refused = origin.node.statistics().moqt_refused
        assert refused >= 1
        async with pub_example(f"{origin.url}/?key={key}", namespace, tmp_path) as log:
            assert await admitted(origin, input_id, refused_before=refused), log.read_text()[-2000:]
        assert origin.node.statistics().moqt_refused == refused


def _ns(input_id: str) -> Namespace:
    return (b"stream", ORG.encode(), input_id.encode())


@pytest.mark.parametrize("place", ["setup", "publish", "publish_namespace", "url"])
async def test_stream_key_everywhere_a_client_can_put_it(
    tmp_path: Path, redis_url: str, place: str
) -> None:
    async with running_origin(tmp_path, redis_url, rtmp="") as origin:
        input_id, key = await origin.new_input()
        url = origin.url + (f"/?key={key}" if place == "url" else "")
        options = SessionOptions(auth_token=key.encode() if place == "setup" else None)
        async with connect(url, verify=False, options=options) as conn:
            token = key.encode() if place == "publish_namespace" else None
            rid = conn.session.publish_namespace(_ns(input_id), auth_token=token)
            answer = await asyncio.wait_for(conn.wait_response(rid), 5)
            if place == "publish":
                # Without a key the namespace is refused; the PUBLISH with its key is not.
                assert isinstance(answer, RequestRejected)
                assert answer.code == RequestErrorCode.UNAUTHORIZED
                rid = conn.session.publish(_ns(input_id), b"video", auth_token=key.encode())
                answer = await asyncio.wait_for(conn.wait_response(rid), 5)
            assert not isinstance(answer, RequestRejected), answer
            assert await admitted(origin, input_id, within=5)
