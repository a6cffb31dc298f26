"""The publisher reconnect window, shared by both ingest paths.

When the publisher of a live input drops (an RTMP encoder's connection lost, a MoQT
publisher's session gone), :func:`hold_input` keeps the input live with its
:class:`~origin.broadcast.Broadcast` held: tracks open, no PUBLISH_DONE, route and
"live" status kept. A publisher of the same input (same namespace, its stream key
admitted again) that comes back within ``window`` seconds takes it over (:func:`adopt_input`)
and its groups continue the tracks; otherwise the input is finished as it would have
been at once (PUBLISH_DONE after the final catalog, route withdrawn, status idle).

A held input is still in :class:`~origin._inputs.LiveInputs`, so a stream key
rotated or deleted meanwhile kicks it (the broadcast ends with UNAUTHORIZED at once),
and a node shutting down ends it with the others.
"""

from __future__ import annotations

import structlog

from moqt.errors import PublishDoneCode

from ._inputs import Kick, LiveInputs
from .broadcast import Broadcast
from .status import InputStatus

__all__ = ["adopt_input", "hold_input"]

_log = structlog.get_logger("origin.reconnect")


def hold_input(
    inputs: LiveInputs,
    external_input_id: str,
    broadcast: Broadcast,
    window: float,
    reason: str,
) -> bool:
    """Hold ``broadcast`` for ``window`` seconds; False (nothing done) if it cannot be
    held: no window, the broadcast ended, or it is no longer the input's current one."""
    live = inputs.get(external_input_id)
    if window <= 0 or broadcast.ended or live is None or live.broadcast is not broadcast:
        return False
    if broadcast.held:
        return True  # already waiting for a publisher
    if broadcast.catalog is not None and broadcast.catalog.is_complete:
        return False  # the publisher said it ended (its final catalog) before it went

    def expire() -> None:
        _log.info("publisher_not_back", input=external_input_id, window=window)
        inputs.finish(
            external_input_id, broadcast, PublishDoneCode.TRACK_ENDED,
            f"{reason} (not back within {window:g} s)",
        )  # fmt: skip

    broadcast.hold(window, expire, reason)
    inputs.report(
        external_input_id, InputStatus.LIVE,
        f"{reason}; waiting up to {window:g} s for the publisher to return",
    )  # fmt: skip
    return True


def adopt_input(
    inputs: LiveInputs,
    external_input_id: str,
    namespace: str,
    kind: str,
    kick: Kick,
    *,
    owner: object = None,
) -> Broadcast | None:
    """The held broadcast of this input, resumed for a returning publisher (else None)."""
    live = inputs.get(external_input_id)
    if live is None or live.namespace != namespace or not live.broadcast.held:
        return None
    live.broadcast.resume()
    _log.info("publisher_back", input=external_input_id, ingest=kind)
    live.kind, live.kick = kind, kick
    live.broadcast.owner = owner
    inputs.report(external_input_id, InputStatus.LIVE)
    return live.broadcast
