"""Keep the start group of a new upstream subscription whole: refetch a tail the upstream lost.

A POP that subscribes upstream for its first viewers does SUBSCRIBE (LargestObject,
the live part from ``L.next``, ``L`` being the Largest Location in SUBSCRIBE_OK) plus
a joining FETCH (the start group up to ``L``). Both leave the upstream at once, and
the upstream writes the FETCH answer - most of a group - straight into the QUIC
connection. On a long path that connection is still in slow start, so the live
objects of the start group queue behind those bytes at the upstream; when the next
group begins there, the upstream's per-subscriber scheduler treats the start group
as stale and skips its tail (``mesh.relay`` stale-group skipping, module doc (a)).
Nobody behind this POP would ever get objects ``L.next`` .. end of that group: not
its first viewers (subscribed from ``L.next``), not late joiners (their joining
FETCH ends at ``L`` too).

:class:`StartGroups` notices that loss on the live subscription - the first object of
a later group arrives while nothing of the start group after ``L`` did, or the
upstream resets the start group's stream - and asks the upstream for the rest of
the start group with one standalone FETCH, which an upstream answers from its cache
and never drops. Only the start group is repaired: losses in later groups are the
upstream's congestion decisions, and refetching them would defeat them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.relay import Peer, Track
from moqt.types import Location

__all__ = ["StartGroup", "StartGroups"]


@dataclass(slots=True)
class StartGroup:
    """The start group of one upstream subscription, until it is known whole or repaired."""

    peer: Peer  # the upstream session
    track: Track
    start: Location  # where its live part starts (L.next)
    live: bool = False  # an object of the start group arrived on the live subscription
    open: set[int] = field(default_factory=set)  # its live subgroup streams not yet ended
    later: bool = False  # an object of a later group arrived
    subgroups: set[int] = field(default_factory=set)  # subgroups the repair delivered
    objects: int = 0  # objects the repair delivered

    @property
    def group(self) -> int:
        return self.start.group

    def repair_range(self) -> tuple[Location, Location]:
        """FETCH range: from the live start to the end of the group ({g, 0} = all of g)."""
        return self.start, Location(self.group, 0)


class StartGroups:
    """Start groups being watched (by upstream session and SUBSCRIBE) and repairs under way
    (by upstream session and FETCH).

    A start group is watched until its live part is known whole (a later group began
    and every live stream of it ended with FIN) or found short (a later group began
    and nothing of it came live, or the upstream reset one of its streams)."""

    def __init__(self) -> None:
        self._watched: dict[tuple[Peer, int], StartGroup] = {}
        self._repairs: dict[tuple[Peer, int], StartGroup] = {}
        self.repairs_total = 0

    def watch(self, peer: Peer, request_id: int, track: Track, largest: Location | None) -> None:
        """Our upstream SUBSCRIBE ``request_id`` on ``peer`` was accepted with Largest
        Location ``largest`` (None: the track had nothing yet, so no start group)."""
        if largest is not None:
            self._watched[(peer, request_id)] = StartGroup(peer, track, largest.next_object())

    def forget_peer(self, peer: Peer) -> None:
        """The upstream session went away: nothing of it is watched or repaired any more."""
        for key in [k for k in self._watched if k[0] is peer]:
            del self._watched[key]
        for key in [k for k in self._repairs if k[0] is peer]:
            del self._repairs[key]

    def forget_track(self, track: Track) -> None:
        """The track left its upstream (re-routed, released): stop watching it."""
        for key in [k for k, s in self._watched.items() if s.track is track]:
            del self._watched[key]

    def prune(self) -> None:
        """Stop watching subscriptions that are no longer their track's upstream."""
        for key, start in list(self._watched.items()):
            upstream = start.track.upstream
            if upstream is None or upstream.peer is not key[0] or upstream.request_id != key[1]:
                del self._watched[key]

    def on_live_object(
        self, peer: Peer, request_id: int, group: int, subgroup: int | None
    ) -> StartGroup | None:
        """An object of subscription ``request_id`` arrived live: the start group to repair
        now, if this shows that its tail was lost."""
        key = (peer, request_id)
        start = self._watched.get(key)
        if start is None or group < start.group:
            return None
        if group == start.group:
            start.live = True
            if subgroup is not None:
                start.open.add(subgroup)
            return None
        start.later = True
        if not start.live:
            # A later group began and nothing of the start group came live.
            del self._watched[key]
            return start
        if not start.open:
            del self._watched[key]  # whole
        return None

    def on_live_end(self, peer: Peer, request_id: int, group: int, subgroup: int) -> None:
        """A live subgroup stream ended with FIN."""
        key = (peer, request_id)
        start = self._watched.get(key)
        if start is None or group != start.group:
            return
        start.open.discard(subgroup)
        if start.later and not start.open:
            del self._watched[key]  # whole

    def on_live_reset(self, peer: Peer, request_id: int, group: int) -> StartGroup | None:
        """The upstream reset a live stream in ``group``: the start group to repair, if so."""
        key = (peer, request_id)
        start = self._watched.get(key)
        if start is None or group != start.group:
            return None
        del self._watched[key]
        return start

    def repairing(self, peer: Peer, fetch_id: int, start: StartGroup) -> None:
        self._repairs[(peer, fetch_id)] = start
        self.repairs_total += 1

    def repair(self, peer: Peer, fetch_id: int) -> StartGroup | None:
        """The start group FETCH ``fetch_id`` on ``peer`` repairs, if it is one of ours."""
        return self._repairs.get((peer, fetch_id))

    def repair_done(self, peer: Peer, fetch_id: int) -> StartGroup | None:
        return self._repairs.pop((peer, fetch_id), None)

    def statistics(self) -> dict[str, int]:
        return {
            "start_groups_watched": len(self._watched),
            "start_group_repairs": len(self._repairs),
            "start_group_repairs_total": self.repairs_total,
        }
