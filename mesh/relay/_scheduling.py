"""Value types and per-subscription state of the per-subscriber scheduler.

Limits, drop reasons and statistics (public), and the queues the scheduler keeps
per subscription and per subgroup (internal). See :mod:`mesh.relay._scheduler`.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from moqt.session import SubgroupHandle

from ._cache import CachedObject

__all__ = [
    "MAX_DROPPED_MARKS",
    "OBJECT_OVERHEAD",
    "DropReason",
    "Key",
    "SchedulerLimits",
    "SchedulerStatistics",
    "Subgroup",
    "TrackQueue",
    "deliver_all_limits",
    "relay_link_limits",
]

#: Bytes a queued object is charged on top of its payload (tuple, deque slot, ...).
OBJECT_OVERHEAD = 64


class DropReason(enum.StrEnum):
    """Why objects were not delivered; the values are ``mesh.metrics.DropReason``'s labels."""

    STALE_GROUP = "stale_group"  # a newer group of the track exists, or older than max_lag
    DELIVERY_TIMEOUT = "delivery_timeout"  # waited longer than the subscriber's DELIVERY_TIMEOUT
    LOW_PRIORITY = "low_priority"  # evicted to make room for higher-priority data
    QUEUE_FULL = "queue_full"  # memory bound reached and nothing of lower priority to evict
    TOO_FAR_BEHIND = "too_far_behind"  # discarded when the subscriber was ended


@dataclass(frozen=True, slots=True)
class SchedulerLimits:
    """Tuning of every :class:`SubscriberScheduler` of a relay."""

    #: Write while the transport's unsent bytes are below this.
    backlog_threshold: int = 16 * 1024
    #: Bound of the bytes queued per subscriber (payload + OBJECT_OVERHEAD each).
    max_queued_bytes: int = 4 << 20
    #: A stale group is skipped once one of its objects waited this long (seconds).
    #: None: the node never skips by age on its own; only a subscriber's DELIVERY_TIMEOUT
    #: (or the memory bound) ends what it waits for - draft-16 "DELIVERY TIMEOUT": with
    #: no timeout negotiated "all Objects in the track ... are delivered".
    skip_after: float | None = 0.1
    #: A track whose oldest queued object waited longer jumps to the next group (None: never).
    max_lag: float | None = 2.0
    #: Behind this long -> PUBLISH_DONE TOO_FAR_BEHIND; None never ends a subscriber.
    too_far_behind_after: float | None = 5.0
    #: Subgroup streams open at once per subscriber; beyond, the oldest is reset.
    max_open_subgroups: int = 64

    def __post_init__(self) -> None:
        if self.backlog_threshold <= 0 or self.max_queued_bytes <= 0:
            raise ValueError("backlog_threshold and max_queued_bytes must be positive")
        if (self.skip_after is not None and self.skip_after < 0) or (
            self.max_lag is not None and self.max_lag <= 0
        ):
            raise ValueError("skip_after must not be negative and max_lag must be positive")
        if self.too_far_behind_after is not None and self.too_far_behind_after <= 0:
            raise ValueError("too_far_behind_after must be positive (or None)")
        if self.max_open_subgroups < 1:
            raise ValueError("max_open_subgroups must be at least 1")


def deliver_all_limits() -> SchedulerLimits:
    """The draft's default for a plain relay: nothing is dropped for its age unless the
    subscriber negotiated a DELIVERY_TIMEOUT; a subscriber that cannot keep up fills its
    bounded queue, loses data to it and, behind for longer, gets TOO_FAR_BEHIND."""
    return SchedulerLimits(skip_after=None, max_lag=None)


def relay_link_limits() -> SchedulerLimits:
    """Scheduling toward another relay (an origin's POPs, a parent POP's children).

    A relay link fans out to many viewers, so dropping there costs all of them,
    and its congestion is mostly QUIC loss recovery on a long path (a backlog for
    a few RTTs), not a link that cannot keep up. Drop decisions belong to the edge:
    a relay link only skips groups that are seconds stale and never ends early.
    """
    return SchedulerLimits(
        backlog_threshold=64 * 1024,
        max_queued_bytes=32 << 20,
        skip_after=2.0,
        max_lag=4.0,
        too_far_behind_after=30.0,
        max_open_subgroups=256,
    )


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """One subscriber's scheduler, flat numbers (exportable as gauges/counters)."""

    tracks: int
    queued_objects: int
    queued_bytes: int
    queued_bytes_peak: int
    open_subgroups: int
    objects_sent: int
    bytes_sent: int
    objects_queued_total: int
    streams_reset: int
    groups_skipped: int
    jumps: int
    dropped_stale_group: int
    dropped_delivery_timeout: int
    dropped_low_priority: int
    dropped_queue_full: int
    dropped_too_far_behind: int
    #: Objects discarded because the publisher reset or the viewer stopped the stream.
    discarded_cancelled: int
    lag: float
    behind: bool
    #: Times every subscription was ended with TOO_FAR_BEHIND.
    ended_too_far_behind: int

    @property
    def dropped(self) -> int:
        return (
            self.dropped_stale_group
            + self.dropped_delivery_timeout
            + self.dropped_low_priority
            + self.dropped_queue_full
            + self.dropped_too_far_behind
        )


# (group id, subgroup id); subgroup None = the track's datagrams of that group.
Key = tuple[int, int | None]

MAX_DROPPED_MARKS = 1024


class Subgroup:
    """A subgroup stream (or a group's datagrams) of one track for one subscriber."""

    __slots__ = ("fin", "group_id", "handle", "objects", "priority", "seq", "subgroup_id")

    def __init__(self, group_id: int, subgroup_id: int | None, priority: int, seq: int) -> None:
        self.group_id = group_id
        self.subgroup_id = subgroup_id
        self.priority = priority
        self.seq = seq  # order of creation: ties between equal priorities
        self.objects: deque[tuple[float, CachedObject]] = deque()
        self.handle: SubgroupHandle | None = None
        self.fin = False  # the upstream stream ended: FIN once the queue is written


class TrackQueue:
    """One subscription of the subscriber: its priority, order and subgroups."""

    __slots__ = (
        "delivery_timeout",
        "descending",
        "dropped",
        "floor",
        "newest",
        "publisher_priority",
        "queued",
        "request_id",
        "subgroups",
        "subscriber_priority",
    )

    def __init__(self, request_id: int, subscriber_priority: int, descending: bool) -> None:
        self.request_id = request_id
        self.subscriber_priority = subscriber_priority
        self.descending = descending
        self.publisher_priority = 128  # of the latest object: ranks the track
        self.subgroups: dict[Key, Subgroup] = {}
        self.newest = -1  # newest group id seen
        self.floor = 0  # groups below were skipped
        # Abandoned subgroups of groups >= floor, and why (None: the viewer stopped it).
        self.dropped: dict[Key, DropReason | None] = {}
        self.queued = 0  # objects queued in this track
        # The subscriber's DELIVERY_TIMEOUT in seconds (None: none negotiated).
        self.delivery_timeout: float | None = None

    @property
    def rank(self) -> tuple[int, int]:
        return (self.subscriber_priority, self.publisher_priority)

    def oldest(self) -> float | None:
        """When its longest-waiting queued object was queued (None: nothing queued)."""
        if not self.queued:
            return None
        best: float | None = None
        for sg in self.subgroups.values():
            objects = sg.objects
            if objects:
                queued_at = objects[0][0]
                if best is None or queued_at < best:
                    best = queued_at
        return best

    def head(self) -> Subgroup | None:
        """Its next schedulable subgroup: publisher priority, group order, subgroup id."""
        best: Subgroup | None = None
        best_key: tuple[int, int, int] | None = None
        for sg in self.subgroups.values():
            if not sg.objects:
                continue
            group = -sg.group_id if self.descending else sg.group_id
            key = (sg.priority, group, -1 if sg.subgroup_id is None else sg.subgroup_id)
            if best_key is None or key < best_key:
                best, best_key = sg, key
        return best
