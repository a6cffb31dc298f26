"""CPU of the relay's per-subscriber scheduler alone, per object per viewer.

``python -m bench.scheduler_pump [--viewers 200] [--objects 300] [--drain 3000]``

No network: each viewer's session is a stub that counts the bytes written, and its
send backlog is those bytes minus what a fake transport drained (``--drain`` bytes at
each of three writable wake-ups per object interval). 10 KB objects at 30/s in 2 s
groups, as ``bench.fanout``. ``--drain 3400`` keeps up (every object is written
straight through); ``--drain 3000`` does not (objects queue, ``pump`` runs on every
wake-up and the congestion response skips stale groups): the case the relay is in
on picoquic, whose rings drain on another thread. ``--deliver-all``: the plain relay's
limits (``clutchcall relay``, ``bench.fanout``'s relay: nothing skipped for its age), so
a viewer that does not keep up queues up to the memory bound. Prints the scheduler
statistics of one viewer (they must not change with an optimisation), the backlog
reads per object and the CPU (``time.process_time``) per object per viewer.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from mesh.relay import CachedObject, deliver_all_limits
from mesh.relay._scheduler import SubscriberScheduler
from moqt.types import ObjectStatus


class _Handle:
    __slots__ = ("closed", "last_object_id", "stream_id")

    def __init__(self, stream_id: int) -> None:
        self.closed = False
        self.last_object_id: int | None = None
        self.stream_id = stream_id


class _Session:
    def __init__(self) -> None:
        self.unsent = 0
        self.streams = 0
        self.reads = 0

    def open_subgroup(
        self, request_id: int, group: int, subgroup: int, priority: int = 0
    ) -> _Handle:
        self.streams += 1
        return _Handle(self.streams)

    def write_object(self, handle: _Handle, object_id: int, payload: bytes, **_: object) -> None:
        handle.last_object_id = object_id
        self.unsent += len(payload) + 8

    def end_subgroup(self, handle: _Handle) -> None:
        handle.closed = True

    def reset_subgroup(self, handle: _Handle, code: object) -> None:
        handle.closed = True

    def publish_done(self, *_: object) -> None:
        pass

    def backlog(self) -> int:
        self.reads += 1
        return self.unsent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--drain", type=int, default=3000)
    parser.add_argument(
        "--deliver-all", action="store_true", help="the plain relay's limits: no skip by age"
    )
    args = parser.parse_args()
    limits = deliver_all_limits() if args.deliver_all else None
    viewers = []
    for _ in range(args.viewers):
        session = _Session()
        scheduler = SubscriberScheduler(session, session.backlog, limits)  # type: ignore[arg-type]
        scheduler.add_track(1)
        viewers.append((session, scheduler))
    payload = bytes(10_000)
    now = 0.0
    start = time.process_time()
    for n in range(args.objects):
        group = n // 60
        obj = CachedObject(group, 0, n % 60, 128, ObjectStatus.NORMAL, payload, ())
        now += 1 / 30
        for _, scheduler in viewers:
            scheduler.push(1, obj, now)
        for _ in range(3):
            for session, scheduler in viewers:
                session.unsent = max(0, session.unsent - args.drain)
                if not scheduler.idle:
                    scheduler.pump(now)
        if n % 60 == 59:
            for _, scheduler in viewers:
                scheduler.end_subgroup(1, group, 0, now)
    cpu = time.process_time() - start
    sent = sum(s.statistics().objects_sent for _, s in viewers)
    reads = sum(session.reads for session, _ in viewers)
    print("one viewer's statistics:", dataclasses.astuple(viewers[0][1].statistics()))
    print(
        f"objects sent {sent}, backlog reads {reads} ({reads / max(1, sent):.2f} per object), "
        f"CPU {cpu:.3f} s = {cpu / max(1, sent) * 1e6:.2f} us per object per viewer"
    )


if __name__ == "__main__":
    main()
