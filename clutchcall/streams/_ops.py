"""Live inputs and playback tokens: each call written once, as a plan
(``_plan``) that both clients run. ``wrap`` binds a returned live input to the client
that fetched it (``LiveInput`` or ``AsyncLiveInput``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clutchcall.streams._http import path_id
from clutchcall.streams._models import (
    Ingest,
    LiveInputFields,
    LiveInputPage,
    LiveInputWithKey,
    PlaybackTicket,
    Revocation,
)
from clutchcall.streams._plan import Call, Plan, idempotent

__all__ = ["LiveInputOps", "PlaybackTokenOps", "page_params"]


def page_params(limit: int | None, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    return params


class LiveInputOps[InputT: LiveInputFields]:
    def __init__(self, wrap: Callable[[dict[str, Any]], InputT]) -> None:
        self._wrap = wrap

    def _input(self, data: dict[str, Any]) -> InputT:
        return self._wrap(LiveInputFields.fields_from(data))

    def _with_key(self, data: dict[str, Any]) -> LiveInputWithKey[InputT]:
        return LiveInputWithKey(self._input(data["input"]), data["streamKey"])

    # Every POST below is a create: an Idempotency-Key, retried safely (_plan.idempotent).

    def create(
        self, name: str, ingest: Ingest, key: str | None = None
    ) -> Plan[LiveInputWithKey[InputT]]:
        body = {"name": name, "ingest": ingest}
        data = yield from idempotent("POST", "/v1/live_inputs", body, key=key)
        return self._with_key(data)

    def get(self, id: str) -> Plan[InputT]:
        return self._input((yield Call("GET", f"/v1/live_inputs/{path_id(id)}")))

    def list(self, limit: int | None, cursor: str | None) -> Plan[LiveInputPage[InputT]]:
        data = yield Call("GET", "/v1/live_inputs", params=page_params(limit, cursor))
        return LiveInputPage([self._input(d) for d in data["data"]], data.get("next_cursor"))

    def update(self, id: str, name: str | None, ingest: Ingest | None) -> Plan[InputT]:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if ingest is not None:
            body["ingest"] = ingest
        return self._input((yield Call("PATCH", f"/v1/live_inputs/{path_id(id)}", json=body)))

    def delete(self, id: str) -> Plan[None]:
        yield Call("DELETE", f"/v1/live_inputs/{path_id(id)}")

    def rotate_stream_key(self, id: str, key: str | None = None) -> Plan[LiveInputWithKey[InputT]]:
        path = f"/v1/live_inputs/{path_id(id)}/rotate_stream_key"
        return self._with_key((yield from idempotent("POST", path, key=key)))

    def signed_playback_url(self, id: str, ttl_seconds: int) -> Plan[PlaybackTicket]:
        data = yield from idempotent(
            "POST", f"/v1/live_inputs/{path_id(id)}/playback_urls", {"ttl_seconds": ttl_seconds}
        )
        return PlaybackTicket.from_json(data)

    def revoke_playback(self, id: str) -> Plan[Revocation]:
        data = yield from idempotent("POST", f"/v1/live_inputs/{path_id(id)}/revoke_playback")
        return Revocation.from_json(data)


class PlaybackTokenOps:
    @staticmethod
    def revoke(jti: str) -> Plan[Revocation]:
        data = yield from idempotent("POST", f"/v1/playback_tokens/{path_id(jti)}/revoke")
        return Revocation.from_json(data)
