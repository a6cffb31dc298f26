"""Per-request state the session keeps (one record per request id, either side's).

Request ids of the two endpoints never collide (the client's are even, the
server's odd: draft-16 "Request ID"), so one table keyed by id holds both.
Records are mutable and private to the session.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._handles import FetchHandle, SubgroupHandle
from .events import RequestKind
from .types import FetchType, GroupOrder, Location, Namespace, SubscriptionFilter, TrackName

__all__ = [
    "FetchReq",
    "NamespaceReq",
    "Req",
    "State",
    "SubNamespaceReq",
    "SubReq",
    "TrackStatusReq",
    "UpdateReq",
]


class State(enum.Enum):
    PENDING = "pending"  # sent / received, not answered yet
    ESTABLISHED = "established"  # accepted
    DONE = "done"  # finished; kept only while late data may still arrive


@dataclass(slots=True, eq=False)
class Req:
    request_id: int
    ours: bool  # True when we sent the request
    state: State = State.PENDING

    kind: RequestKind = field(init=False, default=RequestKind.SUBSCRIBE)


@dataclass(slots=True, eq=False)
class SubReq(Req):
    """A subscription: SUBSCRIBE (either side) or PUBLISH (either side).

    ``receiving`` is True when objects flow to us: our SUBSCRIBE or the peer's PUBLISH.
    """

    namespace: Namespace = ()
    name: TrackName = b""
    receiving: bool = True
    is_publish: bool = False
    filter: SubscriptionFilter | None = None
    # The filter the subscription began with (joining fetches need LargestObject there,
    # whatever later updates did to ``filter``).
    original_filter: SubscriptionFilter | None = None
    priority: int = 128
    group_order: GroupOrder = GroupOrder.ORIGINAL
    forward: bool = True
    delivery_timeout: int | None = None
    track_alias: int | None = None
    largest: Location | None = None
    default_priority: int = 128
    # sending side
    streams_opened: int = 0
    open_handles: dict[int, SubgroupHandle] = field(default_factory=dict)
    # receiving side
    streams_seen: int = 0
    done_stream_count: int | None = None
    done_deadline: float | None = None

    def __post_init__(self) -> None:
        self.kind = RequestKind.PUBLISH if self.is_publish else RequestKind.SUBSCRIBE


@dataclass(slots=True, eq=False)
class FetchReq(Req):
    namespace: Namespace = ()
    name: TrackName = b""
    fetch_type: FetchType = FetchType.STANDALONE
    start: Location | None = None
    end: Location | None = None
    priority: int = 128
    group_order: GroupOrder = GroupOrder.ASCENDING
    joining_request_id: int | None = None
    answered: bool = False
    # receiving side: the data stream once it appeared; sending side: our handle
    stream_id: int | None = None
    handle: FetchHandle | None = None

    def __post_init__(self) -> None:
        self.kind = RequestKind.FETCH


@dataclass(slots=True, eq=False)
class NamespaceReq(Req):
    """PUBLISH_NAMESPACE (either side)."""

    namespace: Namespace = ()

    def __post_init__(self) -> None:
        self.kind = RequestKind.PUBLISH_NAMESPACE


@dataclass(slots=True, eq=False)
class SubNamespaceReq(Req):
    """SUBSCRIBE_NAMESPACE (either side); draft-16 runs it on its own bidi stream."""

    prefix: Namespace = ()
    options: int = 2
    stream_id: int | None = None
    announced: set[Namespace] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.kind = RequestKind.SUBSCRIBE_NAMESPACE


@dataclass(slots=True, eq=False)
class TrackStatusReq(Req):
    namespace: Namespace = ()
    name: TrackName = b""

    def __post_init__(self) -> None:
        self.kind = RequestKind.TRACK_STATUS


@dataclass(slots=True, eq=False)
class UpdateReq(Req):
    """A REQUEST_UPDATE (16) / SUBSCRIBE_UPDATE (14) of request ``target``."""

    target: int = 0

    def __post_init__(self) -> None:
        self.kind = RequestKind.REQUEST_UPDATE
