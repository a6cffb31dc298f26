"""How a node role plugs into the relay core: :class:`RelayHooks`.

The core (:class:`mesh.relay.Relay`) owns tracks, subscriptions and the single
upstream subscription per track. A role that needs more (the edge POP: tokens
upstream, a joining FETCH with each new upstream, tracks that outlive their
upstream session) passes a :class:`RelayHooks` to the relay instead of
overriding its internals. Every hook has a default that is the plain relay's
behaviour; hooks are called synchronously from within the relay and must not
call back into the relay's event handling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from moqt.events import RequestRejected

    from ._peer import Peer
    from ._track import Track

__all__ = ["RelayHooks"]

logger = structlog.get_logger("mesh.relay")


class RelayHooks:
    """The relay's extension points; subclass and override what the role needs."""

    def upstream_token(self, track: Track) -> bytes | None:
        """The authorization token for upstream requests of ``track`` (None: none)."""
        return None

    def upstream_opened(self, track: Track, publisher: Peer) -> None:
        """A subscriber wanted ``track`` and the relay just sent its upstream SUBSCRIBE to
        ``publisher`` (``track.upstream`` is that subscription, not accepted yet)."""

    def upstream_failed(self, publisher: Peer, error: str) -> None:
        """An upstream SUBSCRIBE could not even be sent (e.g. out of request ids)."""
        logger.warning("upstream_subscribe_failed", session=publisher.name, error=error)

    def upstream_refused(self, track: Track, event: RequestRejected) -> None:
        """The upstream refused ``track``'s SUBSCRIBE; the relay refuses the waiting
        SUBSCRIBEs with the same error after this returns."""

    def upstream_lost(self, track: Track) -> bool:
        """``track``'s upstream session went away without PUBLISH_DONE. True: keep the
        track's subscriptions (their open streams are cut) for a new upstream the role
        finds (``Relay.subscribe_upstream``) or gives up on (``Relay.end_track``); False
        (default): the track ends, PUBLISH_DONE to its subscribers."""
        return False

    def upstream_released(self, track: Track) -> None:
        """Nobody watched ``track`` any more (after ``upstream_linger``): its upstream
        SUBSCRIBE was just UNSUBSCRIBEd (``track.upstream`` is None now)."""
