"""The relay's track registry: every track by full name, bounded in number.

Counters of tracks that are dropped are kept, so totals reported as
Prometheus counters never go down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from moqt.types import Namespace, TrackName

from ._cache import CacheLimits
from ._track import Track

__all__ = ["TrackRegistry"]

FullTrackName = tuple[Namespace, TrackName]

_TOTALS = ("objects_out", "bytes_out", "cache_hits", "cache_misses", "cache_evicted_groups")


class TrackRegistry:
    def __init__(
        self,
        limits: CacheLimits,
        max_tracks: int,
        *,
        on_unwatched: Callable[[Track], None] | None = None,
    ) -> None:
        self._limits = limits
        self._max_tracks = max_tracks
        self._on_unwatched = on_unwatched  # given to every track (see Track)
        self._tracks: dict[FullTrackName, Track] = {}
        self._retired = dict.fromkeys(_TOTALS, 0)

    def __iter__(self) -> Iterator[Track]:
        return iter(list(self._tracks.values()))

    def __len__(self) -> int:
        return len(self._tracks)

    def get(self, namespace: Namespace, name: TrackName) -> Track | None:
        return self._tracks.get((namespace, name))

    def get_or_create(self, namespace: Namespace, name: TrackName) -> Track | None:
        """The track, created if needed; None when the registry is full of live tracks."""
        track = self._tracks.get((namespace, name))
        if track is None:
            if len(self._tracks) >= self._max_tracks and not self._drop_one_dead():
                return None
            track = Track(namespace, name, self._limits, self._on_unwatched)
            self._tracks[(namespace, name)] = track
        return track

    def drop_unused(self) -> None:
        """Forget tracks with no upstream, no subscriber and nothing cached."""
        for key, track in list(self._tracks.items()):
            if track.upstream is None and not track.watched and track.cache.largest is None:
                self._retire(key)

    def _drop_one_dead(self) -> bool:
        for key, track in self._tracks.items():
            if track.upstream is None and not track.watched:
                self._retire(key)
                return True
        return False

    def _retire(self, key: FullTrackName) -> None:
        track = self._tracks.pop(key)
        for name, value in _track_totals(track).items():
            self._retired[name] += value

    def statistics(self) -> dict[str, int]:
        tracks = list(self._tracks.values())
        stats = dict(self._retired)
        for track in tracks:
            for name, value in _track_totals(track).items():
                stats[name] += value
        stats.update(
            tracks=len(tracks),
            upstream_subscriptions=sum(1 for t in tracks if t.upstream is not None),
            subscriptions=sum(len(t.subscribers) for t in tracks),
            cache_bytes=sum(t.cache.size for t in tracks),
            cache_groups=sum(len(t.cache.group_ids()) for t in tracks),
        )
        return stats


def _track_totals(track: Track) -> dict[str, int]:
    return {
        "objects_out": track.objects_out,
        "bytes_out": track.bytes_out,
        "cache_hits": track.cache.hits,
        "cache_misses": track.cache.misses,
        "cache_evicted_groups": track.cache.evicted_groups,
    }
