"""Put one track's received objects back in order, starting at a group boundary.

Objects of a subscription arrive on one stream per group, and a late joiner's
joining FETCH brings the start of the current group on yet another stream, so
arrival order is not play order. :class:`TrackSequencer` (sans-I/O: time is
passed in) releases objects strictly by (group, object):

* it starts at a group's object 0 (a keyframe): the earliest group whose object
  0 it holds, once no joining fetch is still on its way; earlier objects are
  dropped;
* within a group it releases object ``n`` only after ``n - 1``;
* it moves on to group ``g + 1`` as soon as group ``g``'s stream ended (FIN or
  reset) and ``g + 1``'s object 0 is here; otherwise (no end signal, or the next
  group start it holds is further ahead) it waits ``gap_wait`` seconds after
  that start arrived and then skips what is missing;
* it holds at most ``max_buffered`` objects; beyond that it skips ahead to the
  next group start (a viewer that stalls must not grow without bound).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Released", "SequencerStatistics", "TrackSequencer"]


@dataclass(frozen=True, slots=True)
class Released:
    group_id: int
    object_id: int
    payload: bytes
    arrived: float


@dataclass(frozen=True, slots=True)
class SequencerStatistics:
    released: int
    dropped: int
    skipped_groups: int
    buffered: int
    group: int | None


class TrackSequencer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        gap_wait: float = 0.3,
        max_buffered: int = 512,
        min_group: int | None = None,
        hold: bool = False,
    ) -> None:
        if gap_wait < 0 or max_buffered < 1:
            raise ValueError("gap_wait must be >= 0 and max_buffered >= 1")
        self._gap_wait = gap_wait
        self._max = max_buffered
        self._min_group = min_group
        self._hold = hold
        self._buf: dict[tuple[int, int], Released] = {}
        self._group: int | None = None
        self._next = 0
        self._ended: set[int] = set()
        self._waiting_since: float | None = None
        self._fetch_pending = False
        self._released = 0
        self._dropped = 0
        self._skipped = 0

    @property
    def started(self) -> bool:
        return self._group is not None

    @property
    def group(self) -> int | None:
        return self._group

    def statistics(self) -> SequencerStatistics:
        return SequencerStatistics(
            self._released, self._dropped, self._skipped, len(self._buf), self._group
        )

    # --- inputs ----------------------------------------------------------------------------

    def expect_fetch(self) -> None:
        """A joining fetch for the current group is on its way: wait for it before starting."""
        if self._group is None:
            self._fetch_pending = True

    def fetch_done(self, now: float) -> list[Released]:
        self._fetch_pending = False
        return self._drain(now)

    def start_at(self, group: int, now: float) -> list[Released]:
        """Release nothing before ``group`` and start as soon as its object 0 (or a later
        group start) is here - how the audio track follows the video's first group."""
        self._min_group = group
        self._hold = False
        for key in [k for k in self._buf if k[0] < group]:
            del self._buf[key]
            self._dropped += 1
        return self._drain(now)

    def push(self, group: int, object_id: int, payload: bytes, now: float) -> list[Released]:
        key = (group, object_id)
        if (
            key in self._buf
            or (self._min_group is not None and group < self._min_group)
            or (self._group is not None and (group, object_id) < (self._group, self._next))
        ):
            self._dropped += 1
            return []
        self._buf[key] = Released(group, object_id, payload, now)
        out = self._drain(now)
        if len(self._buf) > self._max:
            out += self._overflow(now)
        return out

    def group_ended(self, group: int, now: float) -> list[Released]:
        """The stream carrying ``group`` ended (FIN or reset): nothing more of it will come."""
        self._ended.add(group)
        if len(self._ended) > 64:
            self._ended = {g for g in self._ended if self._group is None or g >= self._group}
        return self._drain(now)

    def poll(self, now: float) -> list[Released]:
        return self._drain(now)

    def flush(self) -> list[Released]:
        """Everything still buffered that can play, in order (the track ended)."""
        out: list[Released] = []
        if self._group is None:
            starts = sorted(g for g, o in self._buf if o == 0)
            if not starts:
                return out
            self._begin(starts[0])
        for key in sorted(self._buf):
            assert self._group is not None
            if key < (self._group, self._next):
                continue
            if key[1] == 0 or key == (self._group, self._next):
                self._group, self._next = key[0], key[1] + 1
                out.append(self._buf[key])
        self._released += len(out)
        self._buf.clear()
        return out

    # --- internals -------------------------------------------------------------------------

    def _begin(self, group: int) -> None:
        self._group, self._next = group, 0
        for key in [k for k in self._buf if k[0] < group]:
            del self._buf[key]
            self._dropped += 1

    def _next_start(self) -> int | None:
        assert self._group is not None
        later = [g for g, o in self._buf if o == 0 and g > self._group]
        return min(later) if later else None

    def _drain(self, now: float) -> list[Released]:
        out: list[Released] = []
        if self._group is None:
            if self._hold or self._fetch_pending:
                return out
            starts = [g for g, o in self._buf if o == 0]
            if not starts:
                return out
            self._begin(min(starts))
        while True:
            assert self._group is not None
            item = self._buf.pop((self._group, self._next), None)
            if item is not None:
                out.append(item)
                self._next += 1
                self._waiting_since = None
                continue
            following = self._next_start()
            if following is None:
                self._waiting_since = None
                break
            # Straight on to the next group once this one ended; a gap (this group not
            # ended, or group ids missing in between) gets gap_wait to fill in first.
            if self._group not in self._ended or following != self._group + 1:
                if self._waiting_since is None:
                    self._waiting_since = now
                if now - self._waiting_since < self._gap_wait:
                    break
            self._skip_to(following)
        self._released += len(out)
        return out

    def _skip_to(self, group: int) -> None:
        assert self._group is not None
        if self._group not in self._ended:
            self._skipped += 1
        for key in [k for k in self._buf if k[0] < group]:
            del self._buf[key]
            self._dropped += 1
        self._group, self._next = group, 0
        self._waiting_since = None

    def _overflow(self, now: float) -> list[Released]:
        if self._group is None:
            oldest = min(self._buf)
            del self._buf[oldest]
            self._dropped += 1
            return []
        following = self._next_start()
        if following is None:
            # No later group start to jump to: drop the newest until one comes.
            newest = max(self._buf)
            del self._buf[newest]
            self._dropped += 1
            return []
        self._skip_to(following)
        return self._drain(now)
