"""The relay core shared by every node role: track registry, group cache, forwarder.

Sans-I/O: attach sessions (``moqt.session.Session``, any transport) with
:meth:`Relay.attach` and feed their events to :meth:`Relay.handle_event`;
:func:`serve_relay` runs it over ``moqt.aio`` on one UDP port.
"""

from ._cache import CachedGroup, CachedObject, CacheLimits, TrackCache
from ._peer import Peer
from ._relay import Relay, RelayConfig
from ._track import Subscriber, Track, Upstream, UpstreamKind

__all__ = [
    "CacheLimits",
    "CachedGroup",
    "CachedObject",
    "Peer",
    "Relay",
    "RelayConfig",
    "Subscriber",
    "Track",
    "TrackCache",
    "Upstream",
    "UpstreamKind",
]
