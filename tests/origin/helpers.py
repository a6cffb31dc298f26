"""Test peers for the origin: a viewer (our moqt.aio client) and a MoQT fMP4 publisher.

Shared by tests/origin and tests/e2e/test_origin_*.py. Everything is real: QUIC on
loopback, ffmpeg producing the media, redis holding the stream keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from media import (
    CATALOG_TRACK,
    Catalog,
    CatalogUpdate,
    Fragment,
    InitSegment,
    parse_object,
    split_fmp4,
)
from media.ffmpeg import Transcoder
from mesh.bus import Bus
from moqt.aio import MoqtConnection, RequestFailed, connect
from moqt.events import (
    GoawayReceived,
    ObjectReceived,
    PublishDoneReceived,
    SubscribeAccepted,
    SubscribeRequested,
    TrackStatusReceived,
    Unsubscribed,
)
from moqt.session import SubgroupHandle
from moqt.types import Location, Namespace, SubscriptionFilter
from origin.admission import STREAMKEY_PREFIX, STREAMKEYS_CHANNEL, hash_stream_key

__all__ = [
    "MoqtTestPublisher",
    "Received",
    "Viewer",
    "check_media",
    "ns",
    "rotate_key",
    "write_key",
]


def ns(org: str, input_id: str) -> Namespace:
    return (b"stream", org.encode(), input_id.encode())


async def write_key(bus: Bus, input_id: str, key: str, org: str = "org_t") -> None:
    """The record the control plane writes (BUS_CONTRACT)."""
    await bus.set(
        STREAMKEY_PREFIX + input_id,
        {
            "org": org,
            "input": "li_" + input_id,
            "namespace": f"stream/{org}/{input_id}",
            "sha256": hash_stream_key(key),
            "rotated_at": time.time(),
        },
    )


async def rotate_key(bus: Bus, input_id: str, new_key: str, org: str = "org_t") -> None:
    await write_key(bus, input_id, new_key, org)
    await bus.publish(
        STREAMKEYS_CHANNEL, {"external_input_id": input_id, "event": "rotated", "at": time.time()}
    )


@dataclass
class Received:
    request_id: int
    name: str
    objects: list[ObjectReceived] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # unix time of each object
    done: PublishDoneReceived | None = None
    got: asyncio.Event = field(default_factory=asyncio.Event)
    done_at: float | None = None


class Viewer:
    """Subscribes to tracks of one namespace and records what arrives."""

    def __init__(self, conn: MoqtConnection, namespace: Namespace) -> None:
        self.conn = conn
        self.namespace = namespace
        self.tracks: dict[str, Received] = {}
        self._by_rid: dict[int, Received] = {}
        self._reader: asyncio.Task[None] | None = None
        self.goaway = asyncio.Event()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, namespace: Namespace) -> AsyncIterator[Viewer]:
        async with connect(url, verify=False) as conn:
            viewer = cls(conn, namespace)
            viewer._reader = asyncio.create_task(viewer._read())
            try:
                yield viewer
            finally:
                viewer._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await viewer._reader

    async def _read(self) -> None:
        async for event in self.conn.events():
            if isinstance(event, GoawayReceived):
                self.goaway.set()
            rec = self._by_rid.get(getattr(event, "request_id", -1))
            if rec is None:
                continue
            if isinstance(event, ObjectReceived):
                rec.objects.append(event)
                rec.received_at.append(time.time())
                rec.got.set()
            elif isinstance(event, PublishDoneReceived):
                rec.done = event
                rec.done_at = time.monotonic()
                rec.got.set()

    async def largest(self, name: str) -> Location | None:
        session = self.conn.session
        answer = await self.conn.request(
            session.track_status(self.namespace, name.encode()), TrackStatusReceived
        )
        return answer.largest

    async def wait_available(self, name: str, within: float = 30.0) -> Location:
        """Poll TRACK_STATUS until the track exists and has an object."""
        async with asyncio.timeout(within):
            while True:
                try:
                    largest = await self.largest(name)
                except RequestFailed:
                    largest = None
                if largest is not None:
                    return largest
                await asyncio.sleep(0.1)

    async def subscribe(self, name: str, *, current_group: bool = True) -> Received:
        """Subscribe from the start of the current group (late join) or from the next object."""
        flt = SubscriptionFilter.largest_object()
        if current_group:
            largest = await self.largest(name)
            # Nothing published yet: everything from the start (objects may arrive
            # between TRACK_STATUS and SUBSCRIBE, which LargestObject would skip).
            start = Location(largest.group, 0) if largest is not None else Location(0, 0)
            flt = SubscriptionFilter.absolute_start(start)
        rid = self.conn.session.subscribe(self.namespace, name.encode(), filter=flt)
        rec = Received(rid, name)
        self._by_rid[rid] = rec
        self.tracks[name] = rec
        await self.conn.request(rid, SubscribeAccepted)
        return rec

    async def wait_objects(
        self, name: str, count: int, within: float = 20.0
    ) -> list[ObjectReceived]:
        rec = self.tracks[name]
        async with asyncio.timeout(within):
            while len(rec.objects) < count and rec.done is None:
                rec.got.clear()
                await rec.got.wait()
        return rec.objects

    async def wait_done(self, name: str, within: float = 20.0) -> PublishDoneReceived:
        rec = self.tracks[name]
        async with asyncio.timeout(within):
            while rec.done is None:
                rec.got.clear()
                await rec.got.wait()
        return rec.done

    async def catalog(self, within: float = 20.0) -> Catalog:
        """Subscribe to ``.catalog`` at its current group; the first object is the catalog."""
        if CATALOG_TRACK not in self.tracks:
            await self.subscribe(CATALOG_TRACK)
        objects = await self.wait_objects(CATALOG_TRACK, 1, within)
        return Catalog.parse(objects[-1].payload)


def init_of(catalog: Catalog, name: str) -> InitSegment:
    track = catalog.track(name) or next(t for t in catalog.tracks if t.name == name)
    assert track.init_data is not None
    (init,) = split_fmp4(track.init_data)
    assert isinstance(init, InitSegment)
    return init


def check_media(objects: list[ObjectReceived], init: InitSegment) -> list[Fragment]:
    """Starts on a keyframe at object 0; group/object ids in order; timestamps without a gap."""
    assert objects, "no media objects"
    assert objects[0].object_id == 0, "the first object is not a group start"
    fragments: list[Fragment] = []
    last: tuple[int, int] | None = None
    for obj in objects:
        loc = (obj.group_id, obj.object_id)
        if last is not None:
            assert loc > last, f"object {loc} after {last}"
            if obj.group_id == last[0]:
                assert obj.object_id == last[1] + 1, f"object missing before {loc}"
        frags = parse_object(obj.payload, init, group_start=obj.object_id == 0)
        fragments.extend(frags)
        last = loc
    for before, after in itertools.pairwise(fragments):
        assert after.base_media_decode_time == before.end_time, (
            f"gap or overlap: {before.end_time} -> {after.base_media_decode_time}"
        )
    return fragments


class MoqtTestPublisher:
    """A CMSF publisher over MoQT: PUBLISH_NAMESPACE, answers the origin's SUBSCRIBEs.

    Media comes from a running :class:`media.ffmpeg.Transcoder` (test pattern) through
    its packager. Counts the SUBSCRIBE requests and bytes it serves per track, which
    is the publisher's upload.
    """

    def __init__(self, conn: MoqtConnection, namespace: Namespace, key: str | None) -> None:
        self.conn = conn
        self.namespace = namespace
        self.key = key
        self.subscribes: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.catalog_payload: bytes | None = None
        self._subs: dict[str, int] = {}  # track -> request id
        self._handles: dict[str, tuple[int, SubgroupHandle]] = {}
        self._catalog_group = 0
        self._started: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self.corrupt: set[str] = set()  # tracks whose media we replace by garbage
        self.announce_request: int | None = None
        self.unsubscribed: Counter[str] = Counter()

    async def announce(self) -> None:
        session = self.conn.session
        auth = self.key.encode() if self.key is not None else None
        rid = session.publish_namespace(self.namespace, auth_token=auth)
        self.announce_request = rid
        self._reader = asyncio.create_task(self._read())
        answer = await self.conn.wait_response(rid)
        if not type(answer).__name__.startswith("PublishNamespaceAccepted"):
            raise RequestFailed(answer)  # type: ignore[arg-type]

    async def push(self, tracks: list[str]) -> None:
        """The other flow: PUBLISH every track (catalog first) instead of PUBLISH_NAMESPACE."""
        session = self.conn.session
        auth = self.key.encode() if self.key is not None else None
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        for name in [CATALOG_TRACK, *tracks]:
            rid = session.publish(self.namespace, name.encode(), auth_token=auth)
            answer = await self.conn.wait_response(rid)
            if not type(answer).__name__.startswith("PublishAccepted"):
                raise RequestFailed(answer)  # type: ignore[arg-type]
            self._subs[name] = rid
            self.subscribes[name] += 1
        self._send_catalog()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        async for event in self.conn.events():
            if isinstance(event, SubscribeRequested):
                name = event.name.decode()
                self.subscribes[name] += 1
                self.conn.session.accept_subscribe(event.request_id)
                self._subs[name] = event.request_id
                if name == CATALOG_TRACK and self.catalog_payload is not None:
                    self._send_catalog()
            elif isinstance(event, Unsubscribed):
                for name, rid in list(self._subs.items()):
                    if rid == event.request_id:
                        self.unsubscribed[name] += 1
                        del self._subs[name]

    def _send_catalog(self) -> None:
        rid = self._subs.get(CATALOG_TRACK)
        if rid is None or self.catalog_payload is None:
            return
        session = self.conn.session
        handle = session.open_subgroup(rid, self._catalog_group, 0)
        session.write_object(handle, 0, self.catalog_payload)
        session.end_subgroup(handle)
        self.bytes_sent[CATALOG_TRACK] += len(self.catalog_payload)
        self._catalog_group += 1

    def send_catalog(self, payload: bytes) -> None:
        self.catalog_payload = payload
        self._send_catalog()

    def send(self, track: str, group: int, obj: int, payload: bytes) -> None:
        rid = self._subs.get(track)
        if rid is None:
            return
        if track not in self._started:
            if obj != 0:
                return
            self._started.add(track)
        if track in self.corrupt:
            payload = b"\x00\x00\x00\x10junkjunkjunkjunk"
        session = self.conn.session
        current = self._handles.get(track)
        if current is None or current[0] != group:
            if current is not None:
                session.end_subgroup(current[1])
            current = (group, session.open_subgroup(rid, group, 0))
            self._handles[track] = current
        session.write_object(current[1], obj, payload)
        self.bytes_sent[track] += len(payload)

    async def pump(self, tc: Transcoder, *, seconds: float) -> None:
        """Publish what the transcoder produces for ``seconds``."""
        packager = tc.packager()
        deadline = time.monotonic() + seconds
        async for rendition, item in tc:
            for event in packager.push(rendition, item):
                if isinstance(event, CatalogUpdate):
                    self.send_catalog(event.catalog.to_json())
                else:
                    o = event.object
                    self.send(event.track, o.group_id, o.object_id, o.payload)
            if time.monotonic() >= deadline:
                return
