"""The origin's live inputs: one broadcast per external input id, whatever the ingest path.

:class:`LiveInputs` is where both ingest paths start and end a broadcast. Beginning
one creates its :class:`~origin.broadcast.Broadcast` in the relay, writes the
namespace route (``clutchcall:route:<namespace>``, refreshed by the topology
heartbeat) and reports the input ``live``; ending it sends PUBLISH_DONE, removes
the route, reports ``idle`` and tells the authorizer to stop watching the key.
:meth:`LiveInputs.kick` ends a broadcast *now* (stream key rotated or deleted): the
ingest's own ``kick`` callback closes the encoder's connection.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from mesh.relay import Relay
from moqt.errors import PublishDoneCode

from .broadcast import Broadcast
from .status import InputStatus, StatusReporter

__all__ = ["LiveInput", "LiveInputs"]

_log = structlog.get_logger("origin.inputs")

Kick = Callable[[str], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], None]
RouteChange = Callable[[str, bool], Coroutine[Any, Any, None]]


@dataclass(slots=True, eq=False)
class LiveInput:
    external_input_id: str
    namespace: str
    kind: str  # "rtmp" | "moqt"
    broadcast: Broadcast
    kick: Kick
    started: float


async def _kick(kick: Kick, reason: str) -> None:
    try:
        await kick(reason)
    except Exception:
        _log.exception("kick_failed", reason=reason)


class LiveInputs:
    def __init__(
        self,
        relay: Relay,
        reporter: StatusReporter,
        *,
        spawn: Spawn,
        on_route: RouteChange | None = None,
        release: Callable[[str], None] | None = None,
    ) -> None:
        self._relay = relay
        self._reporter = reporter
        self._spawn = spawn
        self._on_route = on_route
        self._release = release
        self._live: dict[str, LiveInput] = {}
        self.started_total = 0
        self.kicked_total = 0

    def get(self, external_input_id: str) -> LiveInput | None:
        return self._live.get(external_input_id)

    def all(self) -> list[LiveInput]:
        return list(self._live.values())

    def begin(
        self,
        external_input_id: str,
        namespace: str,
        kind: str,
        kick: Kick,
        *,
        first_catalog_group: int = 0,
    ) -> Broadcast:
        """Start the broadcast of an input (the caller checked it may replace a live one).

        A broadcast it replaces ends with GOING_AWAY and no final catalog (the input goes
        on: viewers re-subscribe and find this one); a MoQT publisher replaced by another
        MoQT publish (a reconnect after its session was lost, its old session not timed
        out yet) is kicked, so two holders of one key cannot both send."""
        old = self._live.pop(external_input_id, None)
        if old is not None:
            old.broadcast.end(
                PublishDoneCode.GOING_AWAY, "replaced by a new publish", final_catalog=False
            )
            if old.kind == "moqt" and kind == "moqt" and old.kick != kick:
                self._spawn(_kick(old.kick, "replaced by a new publish of this input"))
        broadcast = Broadcast(
            self._relay, namespace, first_catalog_group=first_catalog_group,
            name=f"{kind}:{external_input_id}",
        )  # fmt: skip
        self._live[external_input_id] = LiveInput(
            external_input_id, namespace, kind, broadcast, kick, time.time()
        )
        self.started_total += 1
        _log.info("broadcast_started", input=external_input_id, track=namespace, ingest=kind)
        if self._on_route is not None:
            self._spawn(self._on_route(namespace, True))
        return broadcast

    def report(
        self, external_input_id: str, status: InputStatus, detail: str | None = None
    ) -> None:
        self._spawn(self._report(external_input_id, status, detail))

    async def _report(
        self, external_input_id: str, status: InputStatus, detail: str | None
    ) -> None:
        await self._reporter.report(external_input_id, status, detail)

    def finish(
        self,
        external_input_id: str,
        broadcast: Broadcast,
        code: int = PublishDoneCode.TRACK_ENDED,
        reason: str = "broadcast ended",
    ) -> None:
        """End ``broadcast`` (if it is still the input's current one, forget the input)."""
        current = self._live.get(external_input_id)
        broadcast.end(code, reason)
        if current is None or current.broadcast is not broadcast:
            return
        del self._live[external_input_id]
        if self._release is not None:
            self._release(external_input_id)
        if self._on_route is not None:
            self._spawn(self._on_route(current.namespace, False))
        # A publisher refused mid-stream is an error the owner should see; anything else idle.
        status = InputStatus.ERROR if code == PublishDoneCode.MALFORMED_TRACK else InputStatus.IDLE
        self.report(external_input_id, status, reason)

    async def kick(self, external_input_id: str, reason: str) -> bool:
        """End an input's broadcast now (PUBLISH_DONE UNAUTHORIZED) and drop its publisher."""
        current = self._live.get(external_input_id)
        if current is None:
            return False
        self.kicked_total += 1
        self.finish(external_input_id, current.broadcast, PublishDoneCode.UNAUTHORIZED, reason)
        try:
            await current.kick(reason)
        except Exception:
            _log.exception("kick_failed", input=external_input_id)
        return True

    async def end_all(self, code: int, reason: str) -> None:
        """End every broadcast (shutdown): routes and idle reports are written before returning."""
        for live in list(self._live.values()):
            del self._live[live.external_input_id]
            live.broadcast.end(code, reason)
            if self._release is not None:
                self._release(live.external_input_id)
            try:
                if self._on_route is not None:
                    await self._on_route(live.namespace, False)
                await self._reporter.report(live.external_input_id, InputStatus.IDLE, reason)
            except Exception:
                _log.exception("end_report_failed", input=live.external_input_id)
