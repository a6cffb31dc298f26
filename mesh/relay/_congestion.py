"""What a subscriber's scheduler gives up when its connection cannot keep up.

The state of one subscriber's queues (per subscription :class:`TrackQueue`, per
subgroup :class:`Subgroup`) and the congestion response of
:mod:`mesh.relay._scheduler` (its module doc, steps 0 and a-c and the memory
bound): delivery timeouts, skipping stale groups lower priorities first, jumping
to the newest group, evicting to stay within ``max_queued_bytes``, and
TOO_FAR_BEHIND. :class:`~mesh.relay._scheduler.SubscriberScheduler` adds what
is written when (admission, order, stream ends) on top.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import structlog

from moqt.errors import DataStreamResetCode, LocalError, PublishDoneCode
from moqt.session import Session

from ._cache import CachedObject
from ._scheduling import (
    MAX_DROPPED_MARKS,
    OBJECT_OVERHEAD,
    DropReason,
    Key,
    SchedulerLimits,
    Subgroup,
    TrackQueue,
)

__all__ = ["CongestionResponse"]

logger = structlog.get_logger("mesh.relay")

_CANCELLED = DataStreamResetCode.CANCELLED
_DELIVERY_TIMEOUT = DataStreamResetCode.DELIVERY_TIMEOUT


class CongestionResponse:
    """One subscriber's queues and the drops that keep them bounded (see module doc)."""

    def __init__(
        self,
        session: Session,
        limits: SchedulerLimits,
        on_too_far_behind: Callable[[int], None] | None,
        name: str,
    ) -> None:
        self._session = session
        self.limits = limits
        # Told each subscription's request id after TOO_FAR_BEHIND ended it (its
        # state is gone and PUBLISH_DONE sent): the owner ends it everywhere else.
        self._on_too_far_behind = on_too_far_behind
        self._tracks: dict[int, TrackQueue] = {}
        self._queued_objects = 0
        self._queued_bytes = 0
        self._open = 0
        self._behind_since: float | None = None
        self._top_drops = 0  # times the highest priority lost data
        self._lag = 0.0
        self._last_now = 0.0  # the latest time passed in
        self._ended_total = 0
        self._streams_reset = 0
        self._groups_skipped = 0
        self._jumps = 0
        self._cancelled = 0
        self._drops = dict.fromkeys(DropReason, 0)
        # Calls into the session that may change the send backlog (writes, FINs, resets,
        # PUBLISH_DONE): a backlog reading is current while this has not moved.
        self._session_calls = 0
        self._log = logger.bind(session=name) if name else logger

    def _drain(self, backlog: int | None = None) -> int | None:
        """Write queued objects while the connection takes them (the scheduler's)."""
        raise NotImplementedError

    # --- congestion response -----------------------------------------------------------

    def _respond(self, now: float, first: float | None) -> bool:
        """Drop what waited too long (module doc a-c); ``first``: when the longest-waiting
        queued object was queued (:meth:`_first_queued`). False: nothing could act, the
        queues are as they were."""
        if not self._may_respond(now, first):
            return False
        lowest_first = sorted(self._tracks.values(), key=lambda t: t.rank, reverse=True)
        # (0) what waited longer than the subscriber's delivery timeout.
        expired = False
        for track in lowest_first:
            if track.delivery_timeout is not None:
                expired |= self._expire(track, now - track.delivery_timeout, now)
        if expired:
            self._drain()
            if not self._queued_objects:
                return True
        # (a) stale groups, lowest priority first, until the queue drains.
        skip_after = self.limits.skip_after
        if skip_after is not None:
            for track in lowest_first:
                if not self._has_stale(track, now - skip_after):
                    continue
                # Before a track loses a group, lower priorities give up what they queued
                # (a lower track's current group can be further behind than this one's
                # stale group: its next group has just not started yet).
                if self._evict_below(track, now):
                    self._drain()
                    if not self._has_stale(track, now - skip_after):
                        if not self._queued_objects:
                            return True
                        continue
                self._groups_skipped += 1
                self._skip_below(track, track.newest, DropReason.STALE_GROUP, now)
                self._drain()
                if not self._queued_objects:
                    return True
        # (b) a track lagging more than max_lag jumps to the next group.
        max_lag = self.limits.max_lag
        if max_lag is None:
            return True
        for track in lowest_first:
            oldest = track.oldest()
            if oldest is not None and now - oldest > max_lag:
                self._jumps += 1
                self._skip_below(track, track.newest + 1, DropReason.STALE_GROUP, now)
                self._drain()
        return True

    def _first_queued(self) -> float | None:
        """When the longest-waiting queued object of any track was queued (None: none)."""
        first: float | None = None
        for track in self._tracks.values():
            queued_at = track.oldest()
            if queued_at is not None and (first is None or queued_at < first):
                first = queued_at
        return first

    def _may_respond(self, now: float, first: float | None) -> bool:
        """Whether any step of :meth:`_respond` can act: some queued object waited past
        a delivery timeout, ``skip_after`` or ``max_lag`` (the same comparisons as those
        steps, on the oldest queued object, queued at ``first``). Most pumps of a
        congested subscriber find nothing that old; this spares them the sort and the
        per-track walks."""
        if first is None:
            return False
        for track in self._tracks.values():
            timeout = track.delivery_timeout
            if timeout is not None and first < now - timeout:
                return True
        limits = self.limits
        if limits.skip_after is not None and first <= now - limits.skip_after:
            return True
        return limits.max_lag is not None and now - first > limits.max_lag

    def _evict_below(self, track: TrackQueue, now: float) -> bool:
        """Abandon every subgroup with queued objects of a lower priority than ``track``."""
        victims = [
            (other, sg)
            for other in self._tracks.values()
            if other.rank > track.rank
            for sg in other.subgroups.values()
            if sg.objects
        ]
        for other, sg in victims:
            self._abandon(other, sg, DropReason.LOW_PRIORITY, now)
        return bool(victims)

    def _expire(self, track: TrackQueue, deadline: float, now: float) -> bool:
        """Abandon every subgroup of ``track`` whose next object arrived before ``deadline``;
        of a group's datagrams only the late ones go (the timeout bounds their queueing)."""
        late = [sg for sg in track.subgroups.values() if sg.objects and sg.objects[0][0] < deadline]
        for sg in late:
            if sg.subgroup_id is not None:
                self._abandon(track, sg, DropReason.DELIVERY_TIMEOUT, now)
                continue
            while sg.objects and sg.objects[0][0] < deadline:
                _, obj = sg.objects.popleft()
                track.queued -= 1
                self._queued_objects -= 1
                self._queued_bytes -= len(obj.payload) + OBJECT_OVERHEAD
                self._drops[DropReason.DELIVERY_TIMEOUT] += 1
            if not sg.objects:
                track.subgroups.pop((sg.group_id, None), None)
        return bool(late)

    def _has_stale(self, track: TrackQueue, deadline: float) -> bool:
        return any(
            sg.group_id < track.newest and sg.objects and sg.objects[0][0] <= deadline
            for sg in track.subgroups.values()
        )

    def _skip_below(self, track: TrackQueue, floor: int, reason: DropReason, now: float) -> None:
        """Abandon every subgroup of ``track`` in a group below ``floor``."""
        if floor <= track.floor:
            return
        track.floor = floor
        for key in [k for k in track.dropped if k[0] < floor]:
            del track.dropped[key]
        for key, sg in list(track.subgroups.items()):
            if key[0] < floor:
                self._abandon(track, sg, reason, now)

    def _abandon(
        self, track: TrackQueue, sg: Subgroup, reason: DropReason | None, now: float
    ) -> None:
        """Drop ``sg``'s queue (counted under ``reason``), reset its stream, refuse the rest.
        ``reason`` None: not our decision (the viewer stopped the stream)."""
        key: Key = (sg.group_id, sg.subgroup_id)
        track.subgroups.pop(key, None)
        if reason is not None:
            self._drops[reason] += len(sg.objects)
            if (sg.objects or sg.handle is not None) and self._is_top(track):
                self._note_behind(now)
        self._unqueue(track, sg)
        if sg.handle is not None:
            # draft-16 "Closing Subgroup Streams": DELIVERY_TIMEOUT (0x2) says why.
            self._reset(
                sg, _DELIVERY_TIMEOUT if reason is DropReason.DELIVERY_TIMEOUT else _CANCELLED
            )
        if not sg.fin and sg.group_id >= track.floor:
            track.dropped[key] = reason
            if len(track.dropped) > MAX_DROPPED_MARKS:
                del track.dropped[min(track.dropped, key=_sort_key)]

    def _make_room(self, track: TrackQueue, sg: Subgroup, obj: CachedObject, now: float) -> bool:
        """Keep the memory bound: evict lower priorities, then older groups, else drop ``sg``."""
        need = len(obj.payload) + OBJECT_OVERHEAD
        limit = self.limits.max_queued_bytes
        if self._queued_bytes + need <= limit:
            return True
        rank = (track.subscriber_priority, sg.priority)
        for victim_track, victim, reason in self._victims(track, sg, rank):
            self._abandon(victim_track, victim, reason, now)
            if self._queued_bytes + need <= limit:
                return True
        # Nothing else to give up: the object goes, and with it its subgroup stream
        # (a datagram goes alone).
        self._drops[DropReason.QUEUE_FULL] += 1
        if sg.subgroup_id is not None:
            self._abandon(track, sg, DropReason.QUEUE_FULL, now)
        elif not sg.objects:
            track.subgroups.pop((sg.group_id, None), None)
        if self._is_top(track):
            self._note_behind(now)
        return False

    def _victims(
        self, track: TrackQueue, sg: Subgroup, rank: tuple[int, int]
    ) -> Iterator[tuple[TrackQueue, Subgroup, DropReason]]:
        candidates: list[tuple[tuple[int, int], int, TrackQueue, Subgroup]] = []
        for other in self._tracks.values():
            for victim in other.subgroups.values():
                if victim is sg or not victim.objects:
                    continue
                victim_rank = (other.subscriber_priority, victim.priority)
                if victim_rank > rank or (
                    victim_rank == rank
                    and (other is not track or victim.group_id < sg.group_id)
                    and victim.seq < sg.seq
                ):
                    candidates.append((victim_rank, victim.seq, other, victim))
        # Lowest priority first, then oldest first.
        candidates.sort(key=lambda c: (-c[0][0], -c[0][1], c[1]))
        for victim_rank, _, other, victim in candidates:
            yield (
                other,
                victim,
                (DropReason.LOW_PRIORITY if victim_rank > rank else DropReason.QUEUE_FULL),
            )

    def _is_top(self, track: TrackQueue) -> bool:
        """Whether ``track`` is of the subscriber's highest priority (lowest rank)."""
        rank = track.rank
        return all(rank <= other.rank for other in self._tracks.values())

    def _note_behind(self, now: float) -> None:
        self._top_drops += 1
        if self._behind_since is None:
            self._behind_since = now

    def _check_behind(self, now: float, first: float | None, *, caught_up: bool) -> None:
        """``first``: when the longest-waiting queued object was queued, as the pump left
        the queues (None: nothing queued). ``caught_up``: the connection moved bytes since
        the last pump and the highest priority lost nothing in this one; with nothing of
        it queued, it is not behind."""
        self._lag = now - first if first is not None else 0.0
        if self._behind_since is None:
            return
        if caught_up and not any(t.queued for t in self._tracks.values() if self._is_top(t)):
            self._behind_since = None
            return
        limit = self.limits.too_far_behind_after
        if limit is not None and now - self._behind_since >= limit:
            self._end_too_far_behind(now)

    def _end_too_far_behind(self, now: float) -> None:
        self._ended_total += 1
        self._session_calls += 1
        ended = list(self._tracks)
        self._log.info(
            "subscriber_too_far_behind",
            behind_for=round(now - (self._behind_since or now), 3),
            subscriptions=len(ended),
            queued_objects=self._queued_objects,
        )
        for track in list(self._tracks.values()):
            for sg in list(track.subgroups.values()):
                self._abandon(track, sg, DropReason.TOO_FAR_BEHIND, now)
        self._tracks.clear()
        self._behind_since = None
        for request_id in ended:
            try:
                self._session.publish_done(
                    request_id, PublishDoneCode.TOO_FAR_BEHIND, "subscriber too far behind"
                )
            except LocalError as exc:
                self._log.debug("publish_done_failed", request_id=request_id, error=str(exc))
            if self._on_too_far_behind is not None:
                self._on_too_far_behind(request_id)

    # --- queue and stream helpers ---------------------------------------------------

    def _reset(
        self, sg: Subgroup, code: DataStreamResetCode = DataStreamResetCode.CANCELLED
    ) -> None:
        handle = sg.handle
        assert handle is not None
        sg.handle = None
        self._open -= 1
        if handle.closed:
            return
        self._streams_reset += 1
        self._session_calls += 1
        try:
            self._session.reset_subgroup(handle, code)
        except LocalError as exc:
            self._log.debug("reset_failed", error=str(exc))

    def _reset_oldest_stream(self) -> None:
        oldest: tuple[TrackQueue, Subgroup] | None = None
        for track in self._tracks.values():
            for sg in track.subgroups.values():
                if sg.handle is not None and (oldest is None or sg.seq < oldest[1].seq):
                    oldest = (track, sg)
        if oldest is not None:
            self._abandon(oldest[0], oldest[1], DropReason.QUEUE_FULL, self._last_now)

    def _unqueue(self, track: TrackQueue, sg: Subgroup) -> None:
        """Forget what ``sg`` has queued."""
        count = len(sg.objects)
        if not count:
            return
        size = sum(len(obj.payload) for _, obj in sg.objects) + count * OBJECT_OVERHEAD
        sg.objects.clear()
        track.queued -= count
        self._queued_objects -= count
        self._queued_bytes -= size

    def _drop(self, reason: DropReason) -> None:
        self._drops[reason] += 1


def _sort_key(key: Key) -> tuple[int, int]:
    return (key[0], -1 if key[1] is None else key[1])
