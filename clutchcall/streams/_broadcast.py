"""The MoQT side of a publisher: answer SUBSCRIBEs and send groups/objects to every subscriber.

:class:`BroadcastSender` is fed the session's events (``on_event``) and what
the packager produces (``send_catalog``, ``send_object``). Each track keeps its
subscribers and, per subscriber, the subgroup stream of the group in progress:

* object 0 of a group ends the previous group's stream (FIN) and opens a new one;
* a subscriber that joins mid-group gets the rest of the current group (its
  LargestObject filter starts right after the largest object);
* the catalog is one object per group; it is sent again, as a new group, when a
  new catalog subscriber arrives and at every new video group, so a viewer
  behind a relay that joined after the last change still gets it within a GOP.

``finish`` ends the broadcast: the final catalog (tracks not live,
``isComplete``), FIN on every stream, PUBLISH_DONE to every subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from media import CATALOG_TRACK, MSF_CATALOG_TRACK, Catalog
from moqt._log import library_logger
from moqt.errors import LocalError, PublishDoneCode, RequestErrorCode
from moqt.events import (
    Event,
    FetchRequested,
    SubscribeRequested,
    SubscriptionUpdated,
    TrackStatusRequested,
    Unsubscribed,
)
from moqt.session import Session, SubgroupHandle
from moqt.types import GroupOrder, Location

__all__ = ["BroadcastSender", "SenderStatistics"]

_log = library_logger("clutchcall.streams.publisher")

CATALOG_PRIORITY = 0


@dataclass(slots=True, eq=False)
class _Subscriber:
    request_id: int
    handle: SubgroupHandle | None = None
    forward: bool = True


@dataclass(slots=True, eq=False)
class _Track:
    name: bytes
    priority: int
    largest: Location | None = None
    subscribers: dict[int, _Subscriber] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SenderStatistics:
    subscribers: int
    objects_sent: int
    bytes_sent: int
    catalogs_sent: int


class BroadcastSender:
    """Serve the tracks of one namespace on one session (see the module docstring)."""

    def __init__(
        self, session: Session, namespace: tuple[bytes, ...], *, first_catalog_group: int = 0
    ) -> None:
        """``first_catalog_group``: where the catalog's group ids continue (a publisher
        that reconnects keeps them increasing for caches that saw the earlier ones)."""
        self._session = session
        self._namespace = namespace
        self._catalog_track = _Track(CATALOG_TRACK.encode(), CATALOG_PRIORITY)
        if first_catalog_group > 0:
            self._catalog_track.largest = Location(first_catalog_group - 1, 0)
        self._tracks: dict[bytes, _Track] = {
            CATALOG_TRACK.encode(): self._catalog_track,
            MSF_CATALOG_TRACK.encode(): self._catalog_track,
        }
        self._catalog: bytes | None = None
        self._by_request: dict[int, _Track] = {}
        self._objects = 0
        self._bytes = 0
        self._catalogs = 0
        self._finished = False

    # --- setup ---------------------------------------------------------------------------

    def add_track(self, name: str, priority: int) -> None:
        key = name.encode()
        if key not in self._tracks:
            self._tracks[key] = _Track(key, priority)

    def statistics(self) -> SenderStatistics:
        subs = sum(len(t.subscribers) for t in self._unique_tracks())
        return SenderStatistics(subs, self._objects, self._bytes, self._catalogs)

    @property
    def next_catalog_group(self) -> int:
        largest = self._catalog_track.largest
        return 0 if largest is None else largest.group + 1

    def subscribers(self, name: str) -> int:
        track = self._tracks.get(name.encode())
        return 0 if track is None else len(track.subscribers)

    def _unique_tracks(self) -> list[_Track]:
        return list({id(t): t for t in self._tracks.values()}.values())

    # --- events ----------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if isinstance(event, SubscribeRequested):
            self._on_subscribe(event)
        elif isinstance(event, Unsubscribed):
            track = self._by_request.pop(event.request_id, None)
            if track is not None:
                track.subscribers.pop(event.request_id, None)
        elif isinstance(event, SubscriptionUpdated):
            track = self._by_request.get(event.request_id)
            sub = track.subscribers.get(event.request_id) if track else None
            if sub is not None:
                sub.forward = event.forward
            self._call(self._session.accept_update, event.update_request_id)
        elif isinstance(event, TrackStatusRequested):
            track = self._tracks.get(event.name) if event.namespace == self._namespace else None
            if track is None:
                self._call(
                    self._session.reject_request,
                    event.request_id,
                    RequestErrorCode.DOES_NOT_EXIST,
                    "no such track",
                )
            else:
                self._call(
                    self._session.answer_track_status, event.request_id, largest=track.largest
                )
        elif isinstance(event, FetchRequested):
            self._call(
                self._session.reject_request,
                event.request_id,
                RequestErrorCode.NOT_SUPPORTED,
                "this publisher keeps no history: subscribe instead",
            )

    def _on_subscribe(self, event: SubscribeRequested) -> None:
        track = self._tracks.get(event.name) if event.namespace == self._namespace else None
        if track is None or self._finished:
            self._call(
                self._session.reject_request,
                event.request_id,
                RequestErrorCode.DOES_NOT_EXIST,
                "no such track" if track is None else "the broadcast ended",
            )
            return
        try:
            self._session.accept_subscribe(
                event.request_id, largest=track.largest, group_order=GroupOrder.ASCENDING
            )
        except LocalError as exc:
            _log.warning("accept_subscribe_failed", error=str(exc))
            return
        track.subscribers[event.request_id] = _Subscriber(event.request_id, forward=event.forward)
        self._by_request[event.request_id] = track
        _log.info("subscribed", track=track.name.decode(), request_id=event.request_id)
        if track is self._catalog_track and self._catalog is not None:
            self._send_catalog_group()

    # --- data ------------------------------------------------------------------------------

    def send_catalog(self, catalog: Catalog) -> None:
        """Publish ``catalog`` as a new group of the catalog track."""
        self._catalog = catalog.to_json()
        self._send_catalog_group()

    def repeat_catalog(self) -> None:
        """Send the current catalog again as a new group (late joiners behind a cache)."""
        if self._catalog is not None and self._catalog_track.subscribers:
            self._send_catalog_group()

    def _send_catalog_group(self) -> None:
        assert self._catalog is not None
        track = self._catalog_track
        group = 0 if track.largest is None else track.largest.group + 1
        self._catalogs += 1
        self._write(track, group, 0, self._catalog, end_group=True)

    def send_object(self, name: str, group_id: int, object_id: int, payload: bytes) -> None:
        track = self._tracks.get(name.encode())
        if track is None:
            raise KeyError(f"unknown track {name!r}")
        self._write(track, group_id, object_id, payload, end_group=False)

    def _write(
        self, track: _Track, group: int, object_id: int, payload: bytes, *, end_group: bool
    ) -> None:
        loc = Location(group, object_id)
        if track.largest is not None and loc <= track.largest:
            raise ValueError(f"{track.name.decode()}: {loc} is not after {track.largest}")
        track.largest = loc
        for sub in list(track.subscribers.values()):
            if not sub.forward:
                continue
            handle = sub.handle
            if handle is not None and handle.group_id != group:
                self._call(self._session.end_subgroup, handle)
                handle = sub.handle = None
            if handle is None or handle.closed:
                opened = self._call(
                    self._session.open_subgroup,
                    sub.request_id,
                    group,
                    0,
                    priority=track.priority,
                )
                if not isinstance(opened, SubgroupHandle):
                    continue
                handle = sub.handle = opened
            self._call(self._session.write_object, handle, object_id, payload)
            self._objects += 1
            self._bytes += len(payload)
            if end_group:
                self._call(self._session.end_subgroup, handle)
                sub.handle = None

    def finish(self, final_catalog: Catalog | None, reason: str = "broadcast ended") -> None:
        """End every subscription: final catalog, FIN, PUBLISH_DONE (TRACK_ENDED)."""
        if self._finished:
            return
        if final_catalog is not None:
            self.send_catalog(final_catalog)
        self._finished = True
        for track in self._unique_tracks():
            for sub in list(track.subscribers.values()):
                if sub.handle is not None:
                    self._call(self._session.end_subgroup, sub.handle)
                    sub.handle = None
                self._call(
                    self._session.publish_done,
                    sub.request_id,
                    PublishDoneCode.TRACK_ENDED,
                    reason,
                )
            track.subscribers.clear()
        self._by_request.clear()

    def _call(self, fn: object, *args: object, **kwargs: object) -> object:
        """A session call whose failure concerns one subscription (raced with its end)."""
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except LocalError as exc:
            _log.debug("session_call_failed", call=getattr(fn, "__name__", "?"), error=str(exc))
            return None
