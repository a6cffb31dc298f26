"""The relay core shared by every node role: track registry, group cache, forwarder,
and the per-subscriber scheduler that drops by priority instead of stalling.

Sans-I/O: attach sessions (``moqt.session.Session``, any transport) with
:meth:`Relay.attach` and feed their events to :meth:`Relay.handle_event`;
:class:`RelayNode` (``mesh.relay._node``) runs it over ``moqt.aio`` on one UDP port.
A :class:`Track` owns its :class:`Subscription` objects (ended only by
``Subscription.end``); node roles plug in with :class:`RelayHooks`.
"""

from ._cache import CachedGroup, CachedObject, CacheLimits, TrackCache
from ._hooks import RelayHooks
from ._peer import Peer
from ._relay import Relay, RelayConfig
from ._scheduling import DropReason, SchedulerLimits, SchedulerStatistics, deliver_all_limits
from ._track import Subscription, Track, Upstream, UpstreamKind

__all__ = [
    "CacheLimits",
    "CachedGroup",
    "CachedObject",
    "DropReason",
    "Peer",
    "Relay",
    "RelayConfig",
    "RelayHooks",
    "SchedulerLimits",
    "SchedulerStatistics",
    "Subscription",
    "Track",
    "TrackCache",
    "Upstream",
    "UpstreamKind",
    "deliver_all_limits",
]
