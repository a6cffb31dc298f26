"""The asyncio Streams client: the same ``_ops`` / ``_asset_ops`` plans as
:class:`~clutchcall.streams.Streams`, run with ``httpx.AsyncClient`` and ``asyncio.sleep``
(tests/clutchcall/test_api_parity.py pins that both have one API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

from clutchcall.streams._asset_types import READ_SIZE, UploadFailed
from clutchcall.streams._assets_aio import AsyncAssets
from clutchcall.streams._dataplane import relay_of, viewer_target
from clutchcall.streams._http import ClientBase, RetryPolicy, check_response
from clutchcall.streams._models import (
    Ingest,
    LiveInputFields,
    LiveInputPage,
    LiveInputWithKey,
    PlaybackTicket,
    Revocation,
)
from clutchcall.streams._ops import LiveInputOps, PlaybackTokenOps
from clutchcall.streams._plan import (
    Call,
    Effect,
    FileRange,
    Plan,
    Retries,
    Send,
    apaginate,
    arun,
)
from clutchcall.streams._player import AsyncPlayer, PlaybackError
from clutchcall.streams._publisher import AsyncPublisher
from clutchcall.streams._viewer import AsyncBroadcastViewer
from clutchcall.streams._webhooks import AsyncWebhooks

__all__ = ["AsyncLiveInput", "AsyncLiveInputs", "AsyncPlaybackTokens", "AsyncStreams"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AsyncLiveInput(LiveInputFields):
    """A live input bound to the async client that fetched it."""

    _streams: AsyncStreams = field(repr=False, compare=False)

    async def signed_playback_url(self, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        return await self._streams.live_inputs.signed_playback_url(
            id=self.id, ttl_seconds=ttl_seconds
        )

    async def rotate_stream_key(
        self, *, idempotency_key: str | None = None
    ) -> LiveInputWithKey[AsyncLiveInput]:
        return await self._streams.live_inputs.rotate_stream_key(
            id=self.id, idempotency_key=idempotency_key
        )

    async def revoke_playback(self) -> Revocation:
        return await self._streams.live_inputs.revoke_playback(id=self.id)

    async def refresh(self) -> AsyncLiveInput:
        return await self._streams.live_inputs.get(id=self.id)

    async def update(
        self, *, name: str | None = None, ingest: Ingest | None = None
    ) -> AsyncLiveInput:
        return await self._streams.live_inputs.update(id=self.id, name=name, ingest=ingest)

    async def delete(self) -> None:
        await self._streams.live_inputs.delete(id=self.id)


class AsyncLiveInputs:
    def __init__(self, streams: AsyncStreams) -> None:
        self._streams = streams
        self._ops = LiveInputOps(lambda fields: AsyncLiveInput(**fields, _streams=streams))

    async def create(
        self, *, name: str, ingest: Ingest = "fmp4", idempotency_key: str | None = None
    ) -> LiveInputWithKey[AsyncLiveInput]:
        return await self._streams._run(self._ops.create(name, ingest, idempotency_key))

    async def get(self, *, id: str) -> AsyncLiveInput:
        return await self._streams._run(self._ops.get(id))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> LiveInputPage[AsyncLiveInput]:
        return await self._streams._run(self._ops.list(limit, cursor))

    async def iter_all(self, *, page_size: int = 100) -> AsyncIterator[AsyncLiveInput]:
        async for item in apaginate(self.list, page_size):
            yield item

    async def update(
        self, *, id: str, name: str | None = None, ingest: Ingest | None = None
    ) -> AsyncLiveInput:
        return await self._streams._run(self._ops.update(id, name, ingest))

    async def delete(self, *, id: str) -> None:
        await self._streams._run(self._ops.delete(id))

    async def rotate_stream_key(
        self, *, id: str, idempotency_key: str | None = None
    ) -> LiveInputWithKey[AsyncLiveInput]:
        return await self._streams._run(self._ops.rotate_stream_key(id, idempotency_key))

    async def signed_playback_url(self, *, id: str, ttl_seconds: int = 3600) -> PlaybackTicket:
        return await self._streams._run(self._ops.signed_playback_url(id, ttl_seconds))

    async def revoke_playback(self, *, id: str) -> Revocation:
        return await self._streams._run(self._ops.revoke_playback(id))


class AsyncPlaybackTokens:
    def __init__(self, streams: AsyncStreams) -> None:
        self._streams = streams

    async def revoke(self, *, jti: str) -> Revocation:
        return await self._streams._run(PlaybackTokenOps.revoke(jti))


class AsyncStreams(ClientBase):
    """The asyncio twin of :class:`~clutchcall.streams.Streams` (``async with AsyncStreams(...)``),
    with the same options (``retry``: a :class:`RetryPolicy` for the creates)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        org_id: str | None = None,
        *,
        relay_url: str | None = None,
        token: str | None = None,
        api_base: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, api_key, org_id, relay_url, token, api_base, timeout, retry)
        self._http = http_client
        self._own_http = http_client is None
        self.live_inputs = AsyncLiveInputs(self)
        self.playback_tokens = AsyncPlaybackTokens(self)
        self.assets = AsyncAssets(self)
        self.webhooks = AsyncWebhooks(self)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.timeout)
        return self._http

    async def _run[T](self, plan: Plan[T]) -> T:
        return await arun(plan, self._perform)

    async def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Call):
            return await self._request(
                effect.method,
                effect.path,
                json=effect.json,
                params=effect.params,
                extra=effect.headers,
            )
        if isinstance(effect, Send):
            content = None if effect.body is None else _pieces(effect.body)
            return await self._client().request(
                effect.method, effect.url, headers=effect.headers, content=content
            )
        if isinstance(effect, Retries):
            return self.config.retry
        await asyncio.sleep(effect.seconds)
        return None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        extra: dict[str, str] | None = None,
    ) -> Any:
        base, headers = self.config.control()
        headers.update(extra or {})
        try:
            response = await self._client().request(
                method, base + path, json=json, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise self._unreachable(method, base + path, exc) from exc
        return check_response(response)

    # --- data plane (MoQT) --------------------------------------------------------------

    def publisher(self, *, timeslice_ms: int = 1000, **options: Any) -> AsyncPublisher:
        """A MoQT publisher to ``relay_url`` (the seed's ``publisher({ timesliceMs })``)."""
        return AsyncPublisher(relay_of(self.config), timeslice_ms=timeslice_ms, **options)

    async def open_viewer(
        self, namespace: str | None = None, *, token: str | None = None, **options: Any
    ) -> AsyncBroadcastViewer:
        """Watch ``namespace`` (default: the one the client's playback token grants)."""
        url, tok, ns = viewer_target(self.config, namespace, token)
        return await AsyncBroadcastViewer.open(url, token=tok, namespace=ns, **options)

    def viewer(
        self,
        *,
        on_started: Callable[[], object] | None = None,
        on_error: Callable[[PlaybackError], object] | None = None,
        **options: Any,
    ) -> AsyncPlayer:
        """The seed's ``viewer({ onStarted, onError })``: ``attach(sink)``,
        ``await play("lv_..." | "pb_...")``, ``await stop()`` (see :meth:`Streams.viewer`)."""
        return AsyncPlayer(self.config, on_started=on_started, on_error=on_error, **options)

    async def aclose(self) -> None:
        if self._http is not None and self._own_http:
            await self._http.aclose()
        self._http = None

    async def __aenter__(self) -> AsyncStreams:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _pieces(body: FileRange) -> AsyncIterator[bytes]:
    """The file range as the request body, read off the event loop."""
    f: IO[bytes] = body.file
    await asyncio.to_thread(f.seek, body.start)
    pos = body.start
    while pos < body.end:
        data = await asyncio.to_thread(f.read, min(READ_SIZE, body.end - pos))
        if not data:
            raise UploadFailed(f"the file is shorter than expected (ended at {pos} of {body.end})")
        pos += len(data)
        yield data
        body.sent(pos)
