"""One live broadcast as the relay sees it: a catalog track and one track per rendition.

Both ingest paths end here. A :class:`Broadcast` owns a :class:`~origin._link.LocalLink`
and publishes, under ``stream/<org_id>/<external_input_id>``:

* ``.catalog`` and its MSF alias ``catalog``: one group per catalog version, one
  object (the CMSF JSON) per group, so a subscriber starting at the current group
  gets the current catalog first;
* every media track the catalog lists, pushed with PUBLISH *before* the catalog
  that names it, so a viewer that read the catalog always finds its tracks live.

Media objects arrive as (track, group, subgroup, object, payload); each
(group, subgroup) is one subgroup stream, ended when a newer group of that track
starts or when the producer says so. :meth:`end` sends PUBLISH_DONE on every track
(after the final catalog, ``isComplete``) and withdraws the namespace.

Group ids are the producer's; a broadcast resumed after an encoder reconnect keeps
them increasing (``media.ResumePoint``) and continues the catalog's group ids from
:attr:`Broadcast.next_catalog_group` handed to its successor.

The reconnect window: when the publisher drops, :meth:`Broadcast.hold` keeps every
track open (no PUBLISH_DONE, the route stays) for a few seconds. A publisher of the
same input that comes back within them resumes it (:meth:`~Broadcast.resume`): its groups
continue the same tracks, so a subscribed viewer simply goes on. Its group ids are
rebased above the last group sent if they would not increase (a MoQT publisher that
restarts at group 0); the catalog is re-published by the returning publisher. If
nobody comes back, the hold's ``on_expire`` ends the broadcast as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from media import CATALOG_TRACK, MSF_CATALOG_TRACK, Catalog
from mesh.relay import Relay
from moqt.errors import LocalError, PublishDoneCode, RequestErrorCode
from moqt.events import Event, SubscribeRequested, TrackStatusRequested
from moqt.session import SubgroupHandle
from moqt.types import Namespace

from ._link import LocalLink

__all__ = ["Broadcast", "BroadcastStatistics", "namespace_of", "namespace_text"]

_log = structlog.get_logger("origin.broadcast")

_CATALOG_PRIORITY = 0
_DEFAULT_PRIORITY = 128
# Open subgroup streams kept per track; older ones are ended (a producer that
# interleaves many subgroups cannot make us hold streams without bound).
_MAX_OPEN = 8


def namespace_of(text: str) -> Namespace:
    """``"stream/org_x/lv_y"`` -> ``(b"stream", b"org_x", b"lv_y")``."""
    return tuple(part.encode() for part in text.split("/"))


def _is_media(name: str) -> bool:
    return name not in (CATALOG_TRACK, MSF_CATALOG_TRACK)


def namespace_text(namespace: Namespace) -> str:
    return "/".join(part.decode("utf-8", "replace") for part in namespace)


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    tracks: int
    catalog_versions: int
    objects: int
    bytes: int
    ended: bool


@dataclass(slots=True)
class _Track:
    request_id: int
    priority: int
    handles: dict[tuple[int, int], SubgroupHandle]
    largest_group: int = -1
    # After a hold: groups at or below this were sent by the previous publisher.
    floor: int = -1


class Broadcast:
    """See the module docstring. Synchronous: every call writes through the link at once."""

    def __init__(
        self, relay: Relay, namespace: str, *, first_catalog_group: int = 0, name: str = ""
    ) -> None:
        self.namespace_text = namespace
        self.namespace = namespace_of(namespace)
        self.link = LocalLink(relay, name or f"local:{namespace}")
        self.link.set_handler(self._on_event)
        self.link.start()
        self._tracks: dict[str, _Track] = {}
        self._catalog: Catalog | None = None
        self._catalog_group = first_catalog_group
        self._catalog_versions = 0
        self._objects = 0
        self._bytes = 0
        self._ended = False
        self._hold: asyncio.TimerHandle | None = None
        self._rebase = False  # the next object decides the returning publisher's offset
        self._offset = 0  # added to the producer's group ids (after a rebase)
        self.holds = 0
        #: Who feeds this broadcast now (an ingest's publish); others must stop sending.
        self.owner: object = None
        self._log = _log.bind(track=namespace)
        self._ns_request = self.link.publisher.publish_namespace(self.namespace)

    # --- state ---------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def held(self) -> bool:
        """The publisher is gone and the reconnect window runs (see :meth:`hold`)."""
        return self._hold is not None and not self._ended

    @property
    def catalog(self) -> Catalog | None:
        return self._catalog

    @property
    def next_catalog_group(self) -> int:
        return self._catalog_group

    def track_names(self) -> list[str]:
        return [n for n in self._tracks if n not in (CATALOG_TRACK, MSF_CATALOG_TRACK)]

    def statistics(self) -> BroadcastStatistics:
        return BroadcastStatistics(
            len(self.track_names()), self._catalog_versions, self._objects, self._bytes, self._ended
        )

    # --- publishing ----------------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        """Publish a new catalog version (its media tracks are PUBLISHed first)."""
        if self._ended:
            return
        wanted = {t.name for t in catalog.tracks}
        for t in catalog.tracks:
            if t.name not in self._tracks:
                self._publish_track(
                    t.name, t.priority if t.priority is not None else _DEFAULT_PRIORITY
                )
        for name in [n for n in self.track_names() if n not in wanted]:
            self._end_track(name, PublishDoneCode.TRACK_ENDED, "rendition removed")
        for name in (CATALOG_TRACK, MSF_CATALOG_TRACK):
            if name not in self._tracks:
                self._publish_track(name, _CATALOG_PRIORITY)
        self._catalog = catalog
        payload = catalog.to_json()
        group = self._catalog_group
        self._catalog_group += 1
        self._catalog_versions += 1
        for name in (CATALOG_TRACK, MSF_CATALOG_TRACK):
            self._write(name, group, 0, 0, payload, close_stream=True)

    def send_object(
        self, track: str, group_id: int, object_id: int, payload: bytes, *, subgroup_id: int = 0
    ) -> bool:
        """Forward one media object; False if the track is not (or no longer) published."""
        if self._ended or track not in self._tracks or track in (CATALOG_TRACK, MSF_CATALOG_TRACK):
            return False
        if self._rebase:
            self._rebase = False
            top = max((s.floor for n, s in self._tracks.items() if _is_media(n)), default=-1)
            if group_id + self._offset <= top:
                self._offset = top + 1 - group_id
                self._log.info("groups_rebased", offset=self._offset)
        group_id += self._offset
        if group_id <= self._tracks[track].floor:
            return False  # would go back into the previous publisher's groups
        return self._write(track, group_id, subgroup_id, object_id, payload)

    def end_subgroup(self, track: str, group_id: int, subgroup_id: int = 0) -> None:
        state = self._tracks.get(track)
        if state is None:
            return
        handle = state.handles.pop((group_id + self._offset, subgroup_id), None)
        if handle is not None:
            self._quietly(self.link.publisher.end_subgroup, handle)

    def end(self, code: int = PublishDoneCode.TRACK_ENDED, reason: str = "broadcast ended",
            *, final_catalog: bool = True) -> None:  # fmt: skip
        """PUBLISH_DONE on every track (after the final catalog), then close the link."""
        if self._ended:
            return
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if final_catalog and self._catalog is not None and not self._catalog.is_complete:
            self.set_catalog(self._catalog.ended())
        self._ended = True
        for name in list(self._tracks):
            self._end_track(name, code, reason)
        self._quietly(self.link.publisher.publish_namespace_done, self._ns_request)
        self.link.close(reason)
        self._log.info("broadcast_ended", code=int(code), reason=reason)

    # --- the reconnect window --------------------------------------------------------------

    def hold(self, window: float, on_expire: Callable[[], None], reason: str = "") -> None:
        """The publisher went away: keep every track open for ``window`` seconds, then call
        ``on_expire`` (which ends the broadcast) unless :meth:`resume` came first. The open
        subgroup streams are ended: their groups are over."""
        if self._ended:
            return
        if self._hold is not None:
            self._hold.cancel()
        self._next_publisher()
        self.holds += 1
        self._hold = asyncio.get_running_loop().call_later(window, self._expire, on_expire)
        self._log.info("publisher_lost", reason=reason, window=window)

    def _next_publisher(self) -> None:
        # The open subgroup streams' groups are over; the next publisher's group ids are
        # rebased above every group sent (see send_object).
        for state in self._tracks.values():
            for handle in state.handles.values():
                self._quietly(self.link.publisher.end_subgroup, handle)
            state.handles.clear()
            state.floor = state.largest_group
        self._rebase = True

    def resume(self) -> None:
        """A publisher of the same input is back: its objects continue the tracks."""
        if self._hold is None or self._ended:
            return
        self._hold.cancel()
        self._hold = None
        self._log.info("broadcast_resumed")

    def _expire(self, on_expire: Callable[[], None]) -> None:
        self._hold = None
        if not self._ended:
            on_expire()

    # --- internals -----------------------------------------------------------------------

    def _publish_track(self, name: str, priority: int) -> None:
        try:
            rid = self.link.publisher.publish(self.namespace, name.encode())
        except LocalError as exc:
            self._log.warning("publish_failed", rendition=name, error=str(exc))
            return
        self._tracks[name] = _Track(rid, priority, {})

    def _end_track(self, name: str, code: int, reason: str) -> None:
        state = self._tracks.pop(name, None)
        if state is None:
            return
        for handle in state.handles.values():
            self._quietly(self.link.publisher.end_subgroup, handle)
        self._quietly(self.link.publisher.publish_done, state.request_id, code, reason)

    def _write(
        self, name: str, group_id: int, subgroup_id: int, object_id: int, payload: bytes,
        *, close_stream: bool = False,
    ) -> bool:  # fmt: skip
        state = self._tracks[name]
        session = self.link.publisher
        key = (group_id, subgroup_id)
        try:
            handle = state.handles.get(key)
            if handle is None:
                if group_id > state.largest_group:
                    # A newer group started: the older groups' streams are complete.
                    for old in [k for k in state.handles if k[0] < group_id]:
                        session.end_subgroup(state.handles.pop(old))
                while len(state.handles) >= _MAX_OPEN:
                    session.end_subgroup(state.handles.pop(min(state.handles)))
                handle = session.open_subgroup(
                    state.request_id, group_id, subgroup_id, priority=state.priority
                )
                state.handles[key] = handle
            session.write_object(handle, object_id, payload)
            if close_stream:
                session.end_subgroup(state.handles.pop(key))
        except LocalError as exc:
            self._log.warning(
                "object_not_sent", rendition=name, group=group_id, object=object_id, error=str(exc)
            )
            state.handles.pop(key, None)
            return False
        state.largest_group = max(state.largest_group, group_id)
        self._objects += 1
        self._bytes += len(payload)
        return True

    def _on_event(self, event: Event) -> None:
        # The relay asks our publisher session only for tracks it does not know live:
        # every track we have is pushed with PUBLISH, so anything else does not exist.
        if isinstance(event, SubscribeRequested | TrackStatusRequested):
            self._quietly(
                self.link.publisher.reject_request,
                event.request_id,
                RequestErrorCode.DOES_NOT_EXIST,
                "no such track in this broadcast",
            )

    def _quietly(self, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except LocalError as exc:
            self._log.debug("link_call_failed", error=str(exc))
