"""The SDK sends every create with an Idempotency-Key and retries it under the same key.

Between the SDK and a real control plane process sits a TCP proxy that, for the first
``POST /v1/live_inputs`` (or another chosen request), lets the request through, waits
for the control plane's answer (the handler ran: the input exists) and then cuts the
client's connection: the answer is lost. The SDK retries with the same key and gets
the first answer replayed: the same input and stream key, exactly one input made.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clutchcall.streams import (
    AsyncStreams,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    ServerError,
    Streams,
    ValidationError,
)
from clutchcall.streams._http import RetryPolicy, retry_worthy
from control.ids import sha256_hex
from control.store import open_repository
from tests.control.server import ControlServer

from .conftest import OrgMaker

GATEWAY_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
    b"content-length: 4\r\nconnection: close\r\n\r\nbusy"
)


class FaultyProxy:
    """A TCP proxy in a thread of its own. The first ``times`` requests starting with
    ``match`` meet ``fault``: ``"drop"`` (forwarded, then the answer withheld and the
    connection cut), ``"hold"`` (forwarded, the answer withheld until the client gives up
    waiting) or ``"503"`` (answered 503 by the proxy, never forwarded)."""

    def __init__(self, upstream_port: int, match: bytes, fault: str, times: int = 1) -> None:
        self.upstream_port = upstream_port
        self.match = match
        self.fault = fault
        self.left = times
        self.faults = 0
        self.requests: list[bytes] = []  # the head of every request seen
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers_of(self, match: bytes) -> list[dict[str, str]]:
        out = []
        for head in self.requests:
            if head.startswith(match):
                lines = head.decode("latin-1").split("\r\n")[1:]
                out.append(
                    {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
                )
        return out

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        assert self._ready.wait(30), "proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(self._loop)  # connections the clients kept open
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        faulty = asyncio.Event()

        async def client_to_upstream() -> None:
            while data := await reader.read(65536):
                if data[:8].split(b" ")[0] in (b"GET", b"POST", b"PATCH", b"DELETE", b"HEAD"):
                    self.requests.append(data.split(b"\r\n\r\n")[0])
                    if data.startswith(self.match) and self.left > 0:
                        self.left -= 1
                        self.faults += 1
                        faulty.set()
                        if self.fault == "503":
                            writer.write(GATEWAY_503)
                            await writer.drain()
                            writer.close()
                            return
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def upstream_to_client() -> None:
            while data := await up_reader.read(65536):
                if faulty.is_set():  # the control plane answered: lose the answer
                    if self.fault == "hold":  # until the client times out and hangs up
                        await asyncio.Event().wait()
                    writer.transport.abort()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        tasks = [
            asyncio.ensure_future(client_to_upstream()),
            asyncio.ensure_future(upstream_to_client()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if faulty.is_set() or writer.is_closing():
                for task in tasks:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            up_writer.close()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
def proxy(request: pytest.FixtureRequest, control_server: ControlServer) -> Iterator[FaultyProxy]:
    match, fault = request.param
    with FaultyProxy(control_server.port, match, fault) as p:
        yield p


def _stored_inputs(db: str, org: str) -> list[Any]:
    repo = open_repository(db)
    try:
        return repo.list_live_inputs(org, limit=100, after=None)
    finally:
        repo.close()


CREATE = b"POST /v1/live_inputs "


@pytest.mark.parametrize("proxy", [(CREATE, "drop"), (CREATE, "503")], indirect=True)
def test_a_create_whose_answer_is_lost_is_retried_and_made_once(
    proxy: FaultyProxy, control_db: str, make_org: OrgMaker
) -> None:
    org, key = make_org("lost-answer")
    with Streams(base_url=proxy.url, api_key=key, org_id=org) as streams:
        made = streams.live_inputs.create(name="Lost")
    assert proxy.faults == 1
    sent = proxy.headers_of(CREATE)
    assert len(sent) == 2  # the lost one and its retry
    assert sent[0]["idempotency-key"] == sent[1]["idempotency-key"]
    (stored,) = _stored_inputs(control_db, org)  # exactly one input made
    assert stored.id == made.input.id
    assert stored.stream_key_sha256 == sha256_hex(made.stream_key)  # the key that works


@pytest.mark.parametrize("proxy", [(CREATE, "hold")], indirect=True)
def test_a_create_whose_answer_times_out_is_retried_and_made_once(
    proxy: FaultyProxy, control_db: str, make_org: OrgMaker
) -> None:
    org, key = make_org("slow-answer")
    with Streams(base_url=proxy.url, api_key=key, org_id=org, timeout=3.0) as streams:
        made = streams.live_inputs.create(name="Slow")
    sent = proxy.headers_of(CREATE)
    assert len(sent) == 2 and sent[0]["idempotency-key"] == sent[1]["idempotency-key"]
    (stored,) = _stored_inputs(control_db, org)
    assert stored.stream_key_sha256 == sha256_hex(made.stream_key)


def test_what_is_retried_and_how_long_it_waits() -> None:
    cut = ConnectionFailed("cut")
    cut.__cause__ = httpx.RemoteProtocolError("Server disconnected without sending a response")
    bad_scheme = ConnectionFailed("bad url")
    bad_scheme.__cause__ = httpx.UnsupportedProtocol("ftp://")
    in_use = Conflict(
        409, "Conflict", "", type="https://clutchcall.dev/problems/idempotency-key-in-use"
    )
    assert retry_worthy(cut) and retry_worthy(in_use)
    assert retry_worthy(ServerError(503, "Service Unavailable", ""))
    assert not retry_worthy(bad_scheme)
    assert not retry_worthy(ServerError(500, "Internal Server Error", ""))  # may have run
    assert not retry_worthy(
        Conflict(409, "Conflict", "", type="https://clutchcall.dev/problems/conflict")
    )
    assert not retry_worthy(ValidationError(422, "Unprocessable", ""))
    policy = RetryPolicy(retries=3, base=0.5, cap=4.0)
    assert 0.4 <= policy.delay(1, cut) <= 0.5 and 3.2 <= policy.delay(9, cut) <= 4.0
    named = ServerError(503, "Service Unavailable", "", headers={"retry-after": "2"})
    assert policy.delay(1, named) == 2.0
    assert policy.delay(1, ServerError(503, "x", "", headers={"retry-after": "60"})) == 4.0


@pytest.mark.parametrize("proxy", [(CREATE, "drop")], indirect=True)
async def test_the_async_client_retries_with_the_key_it_was_given(
    proxy: FaultyProxy, control_db: str, make_org: OrgMaker
) -> None:
    org, key = await asyncio.to_thread(make_org, "lost-answer-async")
    async with AsyncStreams(base_url=proxy.url, api_key=key, org_id=org) as streams:
        made = await streams.live_inputs.create(name="Lost", idempotency_key="order-42")
        again = await streams.live_inputs.create(name="Lost", idempotency_key="order-42")
    assert again == made  # a later call with the same key: the same answer
    assert [h["idempotency-key"] for h in proxy.headers_of(CREATE)] == ["order-42"] * 3
    (stored,) = await asyncio.to_thread(_stored_inputs, control_db, org)
    assert stored.stream_key_sha256 == sha256_hex(made.stream_key)


@pytest.mark.parametrize("proxy", [(b"POST /v1/live_inputs/", "drop")], indirect=True)
def test_a_rotation_whose_answer_is_lost_rotates_once(
    proxy: FaultyProxy, control_db: str, make_org: OrgMaker
) -> None:
    org, key = make_org("lost-rotation")
    with Streams(base_url=proxy.url, api_key=key, org_id=org) as streams:
        made = streams.live_inputs.create(name="Cam")
        rotated = made.input.rotate_stream_key()
    assert proxy.faults == 1
    rotations = proxy.headers_of(b"POST /v1/live_inputs/")
    assert len({h["idempotency-key"] for h in rotations}) == 1 and len(rotations) == 2
    (stored,) = _stored_inputs(control_db, org)
    assert stored.stream_key_sha256 == sha256_hex(rotated.stream_key)
    assert rotated.stream_key != made.stream_key


@pytest.mark.parametrize("proxy", [(b"NOTHING", "drop")], indirect=True)
def test_each_create_has_its_own_key_and_refusals_are_not_retried(
    proxy: FaultyProxy, make_org: OrgMaker
) -> None:
    org, key = make_org("keys")
    with Streams(base_url=proxy.url, api_key=key, org_id=org) as streams:
        streams.live_inputs.create(name="A")
        streams.live_inputs.create(name="A")
        with pytest.raises(ValidationError):
            streams.live_inputs.create(name="")
        with pytest.raises(ConfigurationError):
            streams.live_inputs.create(name="A", idempotency_key="x" * 256)
    keys = [h["idempotency-key"] for h in proxy.headers_of(CREATE)]
    assert len(keys) == 3 and len(set(keys)) == 3  # no retry of the 422
