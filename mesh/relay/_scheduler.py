"""Per-subscriber send scheduling: drop by priority instead of stalling.

One :class:`SubscriberScheduler` per downstream session (a viewer's connection)
sits between the relay's forwarder and ``moqt.session.Session``'s data-out
methods. Sans-I/O: time is passed in as ``now``; the only thing it asks the
world is ``send_backlog()``, the bytes the connection has queued in QUIC but
not yet put on the wire (``moqt.aio``'s transports expose it).

Order of sending - draft-ietf-moq-transport-16, section "Priorities",
subsection "Scheduling Algorithm": among the schedulable objects (the next
object of a subgroup, or a datagram) the one with the highest *subscriber*
priority goes first (lowest number), then the highest *publisher* priority,
then, within one subscription, the subscription's *group order*, then the
lowest subgroup id (datagrams: object id). Equal priorities across different
subscriptions are "implementation-defined": here the one waiting longest.

As long as the transport keeps up (backlog below ``backlog_threshold`` and
nothing queued) an object is written straight through: no queue, no copy.
Otherwise it is queued (references to the relay's cached objects, never
copies) and :meth:`SubscriberScheduler.pump` - called on every arrival and
whenever the connection may have room again - writes queued objects in the
order above while the backlog stays below the threshold.

Objects inside one subgroup stream are never reordered nor dropped: a stream
is only ever abandoned as a whole, with RESET_STREAM ("Stream Cancellation":
streams "MAY be canceled due to congestion"; "The publisher and subscriber
MUST cancel a stream, preferably the one with the lowest priority, after
reaching a resource limit"), and an abandoned subgroup is never reopened.
When the connection cannot keep up, in this order:

0. *The subscriber's DELIVERY_TIMEOUT* (SUBSCRIBE, PUBLISH_OK or an update; draft-16
   "DELIVERY TIMEOUT"): "If an object in a subgroup exceeds the delivery timeout,
   the publisher MUST reset the underlying transport stream" and not reopen it, so a
   subgroup whose next object waited longer is abandoned, in any group
   (``delivery_timeout``). Without a negotiated timeout the draft wants every object
   delivered; (a) and (b) are the node's own live-edge policy on top of it and are
   off when ``skip_after``/``max_lag`` are None (``deliver_all_limits()``, the plain
   relay's default).
a. *Skip stale groups, lower priorities first.* A group is stale once a newer
   group of the same track has arrived. Walking the tracks from the lowest
   priority up, a track whose stale group has an object waiting longer than
   ``skip_after`` first makes every lower priority give up the subgroups it has
   queued (``low_priority``: their current group may be further behind, its
   successor just not started yet) and, if that did not get its stale objects
   out, skips every group older than its newest one (queued objects dropped,
   open streams reset, late objects of them dropped on arrival). After each
   track the scheduler tries to send again and stops skipping as soon as the
   queue drained, so higher priorities keep their older groups when skipping
   the lower ones was enough.
b. *Jump to the newest group.* A track whose oldest queued object waited
   longer than ``max_lag`` (its newest group is already too old) drops what it
   has queued and resumes at the next group that starts.
c. *TOO_FAR_BEHIND.* The subscriber is *behind* while its highest-priority
   track loses data to (a)/(b) or to the memory bound and has not caught up
   since (caught up = nothing of it queued). Behind for
   ``too_far_behind_after`` seconds ends every subscription of the subscriber
   with PUBLISH_DONE ``TOO_FAR_BEHIND`` (draft-16, DELIVERY TIMEOUT: "If a
   subscriber fails to consume Objects at a sufficient rate, ... the publisher
   MAY terminate the subscription with error TOO_FAR_BEHIND").

Memory is bounded by ``max_queued_bytes`` (payload plus a fixed per-object
overhead): an object that does not fit first evicts whole subgroups of
lower-priority tracks (``low_priority``), then older groups of its own
priority (``queue_full``), else its own subgroup is abandoned (``queue_full``).
Every dropped object is counted under a :class:`DropReason` whose values are
the ``reason`` labels of ``clutchcall_drops_total`` (``mesh.metrics``).

This module decides what is written when; the congestion response (0, a-c and
the memory bound) is :mod:`mesh.relay._congestion`'s, the base class. After
TOO_FAR_BEHIND the scheduler has sent PUBLISH_DONE and forgotten the
subscriptions; ``on_too_far_behind`` tells the owner (the relay ends each one
everywhere else through ``Subscription.end``).
"""

from __future__ import annotations

from collections.abc import Callable

from moqt.errors import LocalError
from moqt.session import Session, SubgroupHandle
from moqt.types import GroupOrder

from ._cache import CachedObject
from ._congestion import CongestionResponse
from ._scheduling import (
    OBJECT_OVERHEAD,
    DropReason,
    Key,
    SchedulerLimits,
    SchedulerStatistics,
    Subgroup,
    TrackQueue,
)

__all__ = [
    "OBJECT_OVERHEAD",
    "DropReason",
    "SchedulerLimits",
    "SchedulerStatistics",
    "SubscriberScheduler",
]


class SubscriberScheduler(CongestionResponse):
    """Everything one downstream session is sent for its subscriptions (see module doc)."""

    def __init__(
        self,
        session: Session,
        send_backlog: Callable[[], int],
        limits: SchedulerLimits | None = None,
        *,
        on_too_far_behind: Callable[[int], None] | None = None,
        name: str = "",
    ) -> None:
        super().__init__(session, limits or SchedulerLimits(), on_too_far_behind, name)
        self._backlog = send_backlog
        self._seq = 0
        self._queued_peak = 0
        self._exit_backlog = 0  # the transport backlog when we last wrote (at most)
        self._pumping = False
        self._sent_objects = 0
        self._sent_bytes = 0
        self._queued_total = 0

    def detach(self) -> None:
        """The peer left the relay: let go of the connection's backlog reading and the
        relay's callback. Both point back at what holds this scheduler (the peer, its
        connection), a reference cycle that would keep an ended session's connection in
        memory until one of CPython's rare full collections."""
        self._backlog = no_backlog
        self._on_too_far_behind = None

    # --- subscriptions -----------------------------------------------------------------

    def add_track(
        self,
        request_id: int,
        *,
        subscriber_priority: int = 128,
        group_order: GroupOrder = GroupOrder.ASCENDING,
        delivery_timeout: float | None = None,
    ) -> None:
        """Schedule subscription ``request_id`` (an accepted SUBSCRIBE or our PUBLISH);
        ``delivery_timeout``: the subscriber's DELIVERY_TIMEOUT in seconds, if any."""
        if not 0 <= subscriber_priority <= 255:
            raise ValueError("subscriber priority is 0..255")
        track = TrackQueue(request_id, subscriber_priority, group_order == GroupOrder.DESCENDING)
        self._tracks[request_id] = track
        self.set_delivery_timeout(request_id, delivery_timeout)

    def set_delivery_timeout(self, request_id: int, seconds: float | None) -> None:
        """The subscriber (re)negotiated DELIVERY_TIMEOUT: applies to what is queued too."""
        if seconds is not None and seconds <= 0:
            raise ValueError("a delivery timeout is positive")
        track = self._tracks.get(request_id)
        if track is not None:
            track.delivery_timeout = seconds

    def delivery_timeout(self, request_id: int) -> float | None:
        """The delivery timeout (seconds) in force for subscription ``request_id``, if any."""
        track = self._tracks.get(request_id)
        return track.delivery_timeout if track is not None else None

    def set_subscriber_priority(self, request_id: int, subscriber_priority: int) -> None:
        """REQUEST_UPDATE changed it: applies to everything not yet written."""
        if not 0 <= subscriber_priority <= 255:
            raise ValueError("subscriber priority is 0..255")
        track = self._tracks.get(request_id)
        if track is not None:
            track.subscriber_priority = subscriber_priority

    def remove_track(self, request_id: int) -> None:
        """The subscription is gone (UNSUBSCRIBE, session end): reset what is open, forget it."""
        track = self._tracks.pop(request_id, None)
        if track is None:
            return
        for sg in track.subgroups.values():
            self._unqueue(track, sg)
            if sg.handle is not None:
                self._reset(sg)

    def cut_streams(self, request_id: int) -> None:
        """The subscription's upstream went away mid-stream (its streams will never end):
        reset what is open, discard what is queued (counted as cancelled) and refuse the
        rest of those subgroups; the subscription stays and its next group starts clean."""
        track = self._tracks.get(request_id)
        if track is None:
            return
        for sg in list(track.subgroups.values()):
            self._cancelled += len(sg.objects)
            self._abandon(track, sg, None, self._last_now)

    def open_handles(self, request_id: int) -> dict[tuple[int, int], SubgroupHandle]:
        """The subscription's open subgroup streams, by (group, subgroup): a snapshot."""
        track = self._tracks.get(request_id)
        if track is None:
            return {}
        return {
            (sg.group_id, sg.subgroup_id): sg.handle
            for sg in track.subgroups.values()
            if sg.handle is not None and sg.subgroup_id is not None
        }

    def finish_track(self, request_id: int) -> None:
        """The track ended upstream: write what is queued of its newest group (bounded; a
        stale group still queued is dropped and its stream reset), FIN every open stream
        and forget the subscription (the caller sends PUBLISH_DONE next)."""
        track = self._tracks.pop(request_id, None)
        if track is None:
            return
        for sg in sorted(track.subgroups.values(), key=lambda s: s.seq):
            if sg.objects and sg.group_id < track.newest:
                self._drops[DropReason.STALE_GROUP] += len(sg.objects)
                self._unqueue(track, sg)
                if sg.handle is not None:
                    self._reset(sg)
                continue
            try:
                while sg.objects:
                    self._write(track, sg)
                if sg.handle is not None and not sg.handle.closed:
                    self._session.end_subgroup(sg.handle)
            except LocalError as exc:
                self._log.debug("finish_failed", request_id=request_id, error=str(exc))
            self._unqueue(track, sg)
            if sg.handle is not None:
                sg.handle = None
                self._open -= 1

    @property
    def behind(self) -> bool:
        """The highest-priority track lost data and has not caught up since."""
        return self._behind_since is not None

    @property
    def idle(self) -> bool:
        """Nothing queued: :meth:`pump` has nothing to do until the next object."""
        return self._queued_objects == 0 and self._behind_since is None

    @property
    def queued_objects(self) -> int:
        return self._queued_objects

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    # --- upstream data -----------------------------------------------------------------

    def push(self, request_id: int, obj: CachedObject, now: float) -> None:
        """One object for subscription ``request_id``: written now, queued, or dropped."""
        track = self._tracks.get(request_id)
        if track is None:
            return
        self._last_now = now
        group_id = obj.group_id
        if group_id < track.floor:
            self._drop(DropReason.STALE_GROUP)
            return
        key: Key = (group_id, obj.subgroup_id)
        if key in track.dropped:
            reason = track.dropped[key]
            if reason is None:
                self._cancelled += 1
            else:
                self._drop(reason)
            return
        if group_id > track.newest:
            track.newest = group_id
        track.publisher_priority = obj.publisher_priority
        sg = track.subgroups.get(key)
        if sg is None:
            self._seq += 1
            sg = Subgroup(group_id, obj.subgroup_id, obj.publisher_priority, self._seq)
            track.subgroups[key] = sg
        elif sg.fin:
            return  # after the upstream FIN: cannot belong to this stream
        if self._queued_objects == 0:
            # Between our writes the transport only drains: the backlog after our last
            # write bounds it from above, and is asked for only when that bound is too high.
            backlog = self._exit_backlog
            if backlog >= self.limits.backlog_threshold:
                backlog = self._backlog()
            if backlog < self.limits.backlog_threshold:
                # Fast path: nothing waits and the connection keeps up.
                self._exit_backlog = backlog + len(obj.payload)
                try:
                    self._send(track, sg, obj)
                except LocalError as exc:
                    self._failed(track, exc)
                return
        if not self._make_room(track, sg, obj, now):
            return
        sg.objects.append((now, obj))
        track.queued += 1
        self._queued_objects += 1
        self._queued_bytes += len(obj.payload) + OBJECT_OVERHEAD
        self._queued_total += 1
        if self._queued_bytes > self._queued_peak:
            self._queued_peak = self._queued_bytes
        self.pump(now)

    def end_subgroup(self, request_id: int, group_id: int, subgroup_id: int, now: float) -> None:
        """The upstream subgroup stream ended (FIN): FIN ours once its queue is written."""
        track = self._tracks.get(request_id)
        if track is None:
            return
        key: Key = (group_id, subgroup_id)
        if key in track.dropped:
            del track.dropped[key]
            return
        sg = track.subgroups.get(key)
        if sg is None:
            return
        sg.fin = True
        if not sg.objects:
            self._close(track, sg)
        else:
            self.pump(now)

    def reset_subgroup(self, request_id: int, group_id: int, subgroup_id: int) -> None:
        """The upstream reset the subgroup stream: so do we, with what is still queued."""
        track = self._tracks.get(request_id)
        if track is None:
            return
        key: Key = (group_id, subgroup_id)
        track.dropped.pop(key, None)
        sg = track.subgroups.pop(key, None)
        if sg is None:
            return
        self._cancelled += len(sg.objects)
        self._unqueue(track, sg)
        if sg.handle is not None:
            self._reset(sg)

    # --- scheduling --------------------------------------------------------------------

    def pump(self, now: float) -> None:
        """Write what the connection takes, then respond to congestion (module doc a-c)."""
        if self._pumping:
            return
        self._last_now = now
        self._pumping = True
        try:
            entry = self._backlog()
            # Bytes left the connection since we last wrote (resets of ours aside).
            moved = entry == 0 or entry < self._exit_backlog
            top_drops = self._top_drops
            # Reading the backlog walks the connection's stream rings: a reading taken
            # after our last call into the session is reused instead of asked again.
            last = self._drain(entry)
            # The oldest queued object, found once a pump: the congestion response and
            # the lag both start from it (it is a walk over every queued subgroup).
            first: float | None = None
            if self._queued_objects:
                calls = self._session_calls
                first = self._first_queued()
                if self._respond(now, first):
                    first = self._first_queued()
                if self._session_calls != calls:
                    last = None
            self._check_behind(now, first, caught_up=moved and self._top_drops == top_drops)
            self._exit_backlog = self._backlog() if last is None else last
        finally:
            self._pumping = False

    def _drain(self, backlog: int | None = None) -> int | None:
        """Write queued objects while the backlog stays below the threshold; ``backlog``:
        a reading taken since the last session call. Returns the last reading if no
        session call followed it (None otherwise)."""
        threshold = self.limits.backlog_threshold
        while self._queued_objects:
            if backlog is None:
                backlog = self._backlog()
            if backlog >= threshold:
                return backlog
            best = self._next()
            if best is None:
                return backlog
            track, sg = best
            backlog = None
            try:
                self._write(track, sg)
            except LocalError as exc:
                self._failed(track, exc)
        return backlog

    def _next(self) -> tuple[TrackQueue, Subgroup] | None:
        best: tuple[TrackQueue, Subgroup] | None = None
        best_key: tuple[int, int, float, int] | None = None
        for track in self._tracks.values():
            if not track.queued:
                continue
            sg = track.head()
            if sg is None:
                continue
            key = (track.subscriber_priority, sg.priority, sg.objects[0][0], sg.seq)
            if best_key is None or key < best_key:
                best, best_key = (track, sg), key
        return best

    def _write(self, track: TrackQueue, sg: Subgroup) -> None:
        _, obj = sg.objects.popleft()
        track.queued -= 1
        self._queued_objects -= 1
        self._queued_bytes -= len(obj.payload) + OBJECT_OVERHEAD
        self._send(track, sg, obj)

    def _send(self, track: TrackQueue, sg: Subgroup, obj: CachedObject) -> None:
        self._session_calls += 1
        session = self._session
        if sg.subgroup_id is None:
            session.send_object_datagram(
                track.request_id,
                obj.group_id,
                obj.object_id,
                obj.payload,
                priority=obj.publisher_priority,
                extensions=obj.extensions,
                status=obj.status,
            )
            if not sg.objects:
                track.subgroups.pop((sg.group_id, None), None)
        else:
            handle = sg.handle
            if handle is None:
                if self._open >= self.limits.max_open_subgroups:
                    self._reset_oldest_stream()
                handle = session.open_subgroup(
                    track.request_id, obj.group_id, sg.subgroup_id, priority=sg.priority
                )
                sg.handle = handle
                self._open += 1
            elif handle.closed:  # the viewer sent STOP_SENDING, or the session closed
                self._cancelled += 1 + len(sg.objects)
                self._abandon(track, sg, None, 0.0)
                return
            last = handle.last_object_id
            if last is not None and obj.object_id <= last:
                return  # a duplicate: never reorder inside a stream
            session.write_object(
                handle, obj.object_id, obj.payload, extensions=obj.extensions, status=obj.status
            )
            if sg.fin and not sg.objects:
                self._close(track, sg)
        self._sent_objects += 1
        self._sent_bytes += len(obj.payload)

    # --- helpers -----------------------------------------------------------------------

    def _close(self, track: TrackQueue, sg: Subgroup) -> None:
        """FIN ``sg``'s stream (its queue is empty and the upstream ended it)."""
        track.subgroups.pop((sg.group_id, sg.subgroup_id), None)
        handle = sg.handle
        if handle is None:
            return
        sg.handle = None
        self._open -= 1
        self._session_calls += 1
        try:
            self._session.end_subgroup(handle)
        except LocalError as exc:
            self._failed(track, exc)

    def _failed(self, track: TrackQueue, exc: LocalError) -> None:
        """A session call refused (the subscription or session is gone): stop serving it."""
        self._log.debug("forward_failed", request_id=track.request_id, error=str(exc))
        if self._tracks.get(track.request_id) is track:
            self.remove_track(track.request_id)

    # --- introspection -----------------------------------------------------------------

    def drops(self) -> dict[DropReason, int]:
        return dict(self._drops)

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(
            tracks=len(self._tracks),
            queued_objects=self._queued_objects,
            queued_bytes=self._queued_bytes,
            queued_bytes_peak=self._queued_peak,
            open_subgroups=self._open,
            objects_sent=self._sent_objects,
            bytes_sent=self._sent_bytes,
            objects_queued_total=self._queued_total,
            streams_reset=self._streams_reset,
            groups_skipped=self._groups_skipped,
            jumps=self._jumps,
            dropped_stale_group=self._drops[DropReason.STALE_GROUP],
            dropped_delivery_timeout=self._drops[DropReason.DELIVERY_TIMEOUT],
            dropped_low_priority=self._drops[DropReason.LOW_PRIORITY],
            dropped_queue_full=self._drops[DropReason.QUEUE_FULL],
            dropped_too_far_behind=self._drops[DropReason.TOO_FAR_BEHIND],
            discarded_cancelled=self._cancelled,
            lag=self._lag,
            behind=self._behind_since is not None,
            ended_too_far_behind=self._ended_total,
        )


def no_backlog() -> int:
    """The backlog of a peer with no connection to ask: none."""
    return 0
