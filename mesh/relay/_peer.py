"""One session attached to the relay, and the small helpers every relay part uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from moqt.errors import LocalError
from moqt.events import FetchRequested
from moqt.session import Session
from moqt.types import Namespace, TrackName

from ._scheduling import DropReason

if TYPE_CHECKING:
    from ._scheduler import SubscriberScheduler
    from ._track import Subscription, Track

__all__ = ["SCHEDULER_TOTALS", "Peer", "call_peer", "label", "scheduler_totals", "starts_with"]

logger = structlog.get_logger("mesh.relay")


@dataclass(slots=True, eq=False)
class Peer:
    """One session attached to the relay and what it has going on."""

    session: Session
    name: str
    # everything sent to this peer for its subscriptions goes through it
    scheduler: SubscriberScheduler
    # peer's PUBLISH_NAMESPACE request id -> namespace
    announced: dict[int, Namespace] = field(default_factory=dict)
    # peer's SUBSCRIBE_NAMESPACE request id -> (prefix, options)
    namespace_subscriptions: dict[int, tuple[Namespace, int]] = field(default_factory=dict)
    # namespaces routed to this peer by configuration (e.g. a POP's parent relay)
    routes: set[Namespace] = field(default_factory=set)
    # draft-14: namespaces we announced to this peer -> our PUBLISH_NAMESPACE request id
    namespaces_sent: dict[Namespace, int] = field(default_factory=dict)
    # our upstream requests on this peer (SUBSCRIBE) and its PUBLISHes -> track
    upstream: dict[int, Track] = field(default_factory=dict)
    # the peer's subscriptions (its SUBSCRIBE, or our PUBLISH to it), by request id:
    # an index of what the tracks own (``Track.subscribers``; ``Subscription.end``)
    downstream: dict[int, Subscription] = field(default_factory=dict)
    # the peer's SUBSCRIBEs waiting for our upstream SUBSCRIBE_OK -> their track
    # (an index of ``Track.waiting``; ``Track.hold`` / ``Track.withdraw``)
    waiting: dict[int, Track] = field(default_factory=dict)
    # joining FETCHes for a SUBSCRIBE still in ``waiting``, served once it is accepted
    deferred_fetches: dict[int, list[FetchRequested]] = field(default_factory=dict)
    # another relay (its scheduler uses RelayConfig.relay_link_scheduler)
    relay_link: bool = False
    closed: bool = False


def starts_with(namespace: Namespace, prefix: Namespace) -> bool:
    return namespace[: len(prefix)] == prefix


def label(namespace: Namespace, name: TrackName | None = None) -> str:
    parts = [f.decode("utf-8", "replace") for f in namespace]
    if name is not None:
        parts.append(name.decode("utf-8", "replace"))
    return "/".join(parts)


def call_peer(peer: Peer, fn: Callable[..., object], *args: object, **kwargs: object) -> object:
    """Call a session method; a LocalError (e.g. the session just closed) only concerns that peer."""
    try:
        return fn(*args, **kwargs)
    except LocalError as exc:
        logger.debug("peer_call_failed", session=peer.name, error=str(exc))
        return None


SCHEDULER_TOTALS = (
    "objects_sent",
    "bytes_sent",
    *(f"drops_{reason.value}" for reason in DropReason),
    "streams_reset",
    # not our drops (the publisher reset the stream, the viewer stopped it, the upstream
    # went away) but objects a subscriber did not get all the same: counted, not hidden
    "discarded_cancelled",
)


def scheduler_totals(peer: Peer) -> dict[str, int]:
    st = peer.scheduler.statistics()
    totals = {"objects_sent": st.objects_sent, "bytes_sent": st.bytes_sent}
    for reason, count in peer.scheduler.drops().items():
        totals[f"drops_{reason.value}"] = count
    totals["streams_reset"] = st.streams_reset
    totals["discarded_cancelled"] = st.discarded_cancelled
    return totals
