"""The asyncio Streams client (control plane over httpx.AsyncClient): same shape, awaitable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from clutchcall.streams._assets_aio import AsyncAssets
from clutchcall.streams._dataplane import relay_of, viewer_target
from clutchcall.streams._errors import ConnectionFailed
from clutchcall.streams._http import ClientConfig, check_response, path_id, resolve_config
from clutchcall.streams._models import (
    Ingest,
    LiveInputFields,
    LiveInputPage,
    LiveInputWithKey,
    PlaybackTicket,
    Revocation,
)
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

    async def rotate_stream_key(self) -> LiveInputWithKey[AsyncLiveInput]:
        return await self._streams.live_inputs.rotate_stream_key(id=self.id)

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

    def _input(self, data: dict[str, Any]) -> AsyncLiveInput:
        return AsyncLiveInput(**LiveInputFields.fields_from(data), _streams=self._streams)

    def _with_key(self, data: dict[str, Any]) -> LiveInputWithKey[AsyncLiveInput]:
        return LiveInputWithKey(self._input(data["input"]), data["streamKey"])

    async def create(
        self, *, name: str, ingest: Ingest = "fmp4"
    ) -> LiveInputWithKey[AsyncLiveInput]:
        data = await self._streams._request(
            "POST", "/v1/live_inputs", json={"name": name, "ingest": ingest}
        )
        return self._with_key(data)

    async def get(self, *, id: str) -> AsyncLiveInput:
        return self._input(await self._streams._request("GET", f"/v1/live_inputs/{path_id(id)}"))

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> LiveInputPage[AsyncLiveInput]:
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        data = await self._streams._request("GET", "/v1/live_inputs", params=params)
        return LiveInputPage([self._input(d) for d in data["data"]], data.get("next_cursor"))

    async def iter_all(self, *, page_size: int = 100) -> AsyncIterator[AsyncLiveInput]:
        cursor: str | None = None
        while True:
            page = await self.list(limit=page_size, cursor=cursor)
            for item in page:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update(
        self,
        *,
        id: str,
        name: str | None = None,
        ingest: Ingest | None = None,
    ) -> AsyncLiveInput:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if ingest is not None:
            body["ingest"] = ingest
        return self._input(
            await self._streams._request("PATCH", f"/v1/live_inputs/{path_id(id)}", json=body)
        )

    async def delete(self, *, id: str) -> None:
        await self._streams._request("DELETE", f"/v1/live_inputs/{path_id(id)}")

    async def rotate_stream_key(self, *, id: str) -> LiveInputWithKey[AsyncLiveInput]:
        return self._with_key(
            await self._streams._request("POST", f"/v1/live_inputs/{path_id(id)}/rotate_stream_key")
        )

    async def signed_playback_url(
        self,
        *,
        id: str,
        ttl_seconds: int = 3600,
    ) -> PlaybackTicket:
        data = await self._streams._request(
            "POST",
            f"/v1/live_inputs/{path_id(id)}/playback_urls",
            json={"ttl_seconds": ttl_seconds},
        )
        return PlaybackTicket.from_json(data)

    async def revoke_playback(self, *, id: str) -> Revocation:
        data = await self._streams._request(
            "POST", f"/v1/live_inputs/{path_id(id)}/revoke_playback"
        )
        return Revocation.from_json(data)


class AsyncPlaybackTokens:
    def __init__(self, streams: AsyncStreams) -> None:
        self._streams = streams

    async def revoke(self, *, jti: str) -> Revocation:
        data = await self._streams._request("POST", f"/v1/playback_tokens/{path_id(jti)}/revoke")
        return Revocation.from_json(data)


class AsyncStreams:
    """The asyncio twin of :class:`~clutchcall.streams.Streams` (``async with AsyncStreams(...)``)."""

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
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config: ClientConfig = resolve_config(
            base_url, api_key, org_id, relay_url, token, api_base, timeout
        )
        self._http = http_client
        self._own_http = http_client is None
        self.live_inputs = AsyncLiveInputs(self)
        self.playback_tokens = AsyncPlaybackTokens(self)
        self.assets = AsyncAssets(self)
        self.webhooks = AsyncWebhooks(self)

    @property
    def base_url(self) -> str | None:
        return self.config.base_url

    @property
    def org_id(self) -> str | None:
        return self.config.org_id

    @property
    def relay_url(self) -> str | None:
        return self.config.relay_url

    @property
    def token(self) -> str | None:
        return self.config.token

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.timeout)
        return self._http

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        base, headers = self.config.control()
        try:
            response = await self._client().request(
                method, base + path, json=json, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{method} {base}{path}: {exc}") from exc
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

    async def aclose(self) -> None:
        if self._http is not None and self._own_http:
            await self._http.aclose()
        self._http = None

    async def __aenter__(self) -> AsyncStreams:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"AsyncStreams(base_url={self.config.base_url!r}, org_id={self.config.org_id!r}, "
            f"relay_url={self.config.relay_url!r})"
        )
