"""The synchronous Streams client: the ``_ops`` / ``_asset_ops`` plans run with
``httpx.Client`` and ``time.sleep`` (``_aio`` runs the same plans with
``httpx.AsyncClient``; tests/clutchcall/test_api_parity.py pins that both have one API)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from clutchcall.streams._asset_types import file_pieces
from clutchcall.streams._assets import Assets
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
from clutchcall.streams._plan import Call, Effect, Plan, Retries, Send, paginate, run
from clutchcall.streams._player import AsyncPlayer, PlaybackError, Player
from clutchcall.streams._publisher import Publisher
from clutchcall.streams._viewer_sync import BroadcastViewer
from clutchcall.streams._webhooks import Webhooks

__all__ = ["LiveInput", "LiveInputs", "PlaybackTokens", "Streams"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveInput(LiveInputFields):
    """A live input bound to the client that fetched it."""

    _streams: Streams = field(repr=False, compare=False)

    def signed_playback_url(self, *, ttl_seconds: int = 3600) -> PlaybackTicket:
        """A signed URL (and token) for viewers, valid ``ttl_seconds`` (60 s to 24 h)."""
        return self._streams.live_inputs.signed_playback_url(id=self.id, ttl_seconds=ttl_seconds)

    def rotate_stream_key(
        self, *, idempotency_key: str | None = None
    ) -> LiveInputWithKey[LiveInput]:
        """A fresh stream key; the old one stops working at every origin."""
        return self._streams.live_inputs.rotate_stream_key(
            id=self.id, idempotency_key=idempotency_key
        )

    def revoke_playback(self) -> Revocation:
        """Revoke every playback token of this input issued so far."""
        return self._streams.live_inputs.revoke_playback(id=self.id)

    def refresh(self) -> LiveInput:
        """The input as the control plane sees it now (e.g. its live status)."""
        return self._streams.live_inputs.get(id=self.id)

    def update(self, *, name: str | None = None, ingest: Ingest | None = None) -> LiveInput:
        return self._streams.live_inputs.update(id=self.id, name=name, ingest=ingest)

    def delete(self) -> None:
        self._streams.live_inputs.delete(id=self.id)


class LiveInputs:
    """``streams.live_inputs``: create, get, list, update, delete live inputs."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams
        self._ops = LiveInputOps(lambda fields: LiveInput(**fields, _streams=streams))

    def create(
        self, *, name: str, ingest: Ingest = "fmp4", idempotency_key: str | None = None
    ) -> LiveInputWithKey[LiveInput]:
        """A new input and its stream key. Store the key now: it is never returned again.

        Sent with an Idempotency-Key (``idempotency_key``, else a new UUID) and retried
        under it after a cut connection or a 502/503/504: one input, whatever was lost."""
        return self._streams._run(self._ops.create(name, ingest, idempotency_key))

    def get(self, *, id: str) -> LiveInput:
        return self._streams._run(self._ops.get(id))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> LiveInputPage[LiveInput]:
        """One page, oldest first; ``page.next_cursor`` fetches the next one."""
        return self._streams._run(self._ops.list(limit, cursor))

    def iter_all(self, *, page_size: int = 100) -> Iterator[LiveInput]:
        """Every input of the org, fetching pages as needed."""
        yield from paginate(self.list, page_size)

    def update(
        self, *, id: str, name: str | None = None, ingest: Ingest | None = None
    ) -> LiveInput:
        return self._streams._run(self._ops.update(id, name, ingest))

    def delete(self, *, id: str) -> None:
        self._streams._run(self._ops.delete(id))

    def rotate_stream_key(
        self, *, id: str, idempotency_key: str | None = None
    ) -> LiveInputWithKey[LiveInput]:
        return self._streams._run(self._ops.rotate_stream_key(id, idempotency_key))

    def signed_playback_url(self, *, id: str, ttl_seconds: int = 3600) -> PlaybackTicket:
        return self._streams._run(self._ops.signed_playback_url(id, ttl_seconds))

    def revoke_playback(self, *, id: str) -> Revocation:
        return self._streams._run(self._ops.revoke_playback(id))


class PlaybackTokens:
    """``streams.playback_tokens``: revoke one token by its ``jti``."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams

    def revoke(self, *, jti: str) -> Revocation:
        return self._streams._run(PlaybackTokenOps.revoke(jti))


class Streams(ClientBase):
    """The ClutchCall Streams client.

    Control plane: ``Streams(base_url=, api_key=, org_id=)``. Data plane:
    ``Streams(relay_url=)`` or ``Streams(token=)`` (``api_base`` is accepted as an
    alias of ``base_url``, as in the TypeScript SDK). Use it as a context manager
    or call :meth:`close` to release its connections.

    ``retry``: how creates (every POST, sent with an Idempotency-Key) are retried after
    a cut connection, a timeout, a 502/503/504 or a 409 "still in progress": a
    :class:`RetryPolicy` (default ``RetryPolicy(retries=4, base=0.25, cap=5.0,
    statuses={502, 503, 504})``; ``RetryPolicy(retries=0)``: never). Other requests are
    not retried.
    """

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
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, api_key, org_id, relay_url, token, api_base, timeout, retry)
        self._http = http_client
        self._own_http = http_client is None
        self.live_inputs = LiveInputs(self)
        self.playback_tokens = PlaybackTokens(self)
        self.assets = Assets(self)
        self.webhooks = Webhooks(self)

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.config.timeout)
        return self._http

    def _run[T](self, plan: Plan[T]) -> T:
        return run(plan, self._perform)

    def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Call):
            return self._request(
                effect.method,
                effect.path,
                json=effect.json,
                params=effect.params,
                extra=effect.headers,
            )
        if isinstance(effect, Send):
            body = effect.body
            content = (
                None if body is None else file_pieces(body.file, body.start, body.end, body.sent)
            )
            return self._client().request(
                effect.method, effect.url, headers=effect.headers, content=content
            )
        if isinstance(effect, Retries):
            return self.config.retry
        time.sleep(effect.seconds)
        return None

    def _request(
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
            response = self._client().request(
                method, base + path, json=json, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise self._unreachable(method, base + path, exc) from exc
        return check_response(response)

    # --- data plane (MoQT) --------------------------------------------------------------

    def publisher(self, *, timeslice_ms: int = 1000, **options: Any) -> Publisher:
        """A MoQT publisher to ``relay_url`` (the seed's ``publisher({ timesliceMs })``)."""
        return Publisher(relay_of(self.config), timeslice_ms=timeslice_ms, **options)

    def open_viewer(
        self, namespace: str | None = None, *, token: str | None = None, **options: Any
    ) -> BroadcastViewer:
        """Watch ``namespace`` (default: the one the client's playback token grants)
        through ``relay_url``; see :meth:`BroadcastViewer.open` for ``options``."""
        url, tok, ns = viewer_target(self.config, namespace, token)
        return BroadcastViewer.open(url, token=tok, namespace=ns, **options)

    def viewer(
        self,
        *,
        on_started: Callable[[], object] | None = None,
        on_error: Callable[[PlaybackError], object] | None = None,
        **options: Any,
    ) -> Player:
        """The seed's ``viewer({ onStarted, onError })``: ``attach(sink)``, ``play("lv_...")``
        (needs ``relay_url`` and a playback ``token``) or ``play("pb_...")`` (needs
        ``base_url``; ``token`` for signed assets), ``stop()``."""
        return Player(AsyncPlayer(self.config, on_started=on_started, on_error=on_error, **options))

    def close(self) -> None:
        if self._http is not None and self._own_http:
            self._http.close()
        self._http = None

    def __enter__(self) -> Streams:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
