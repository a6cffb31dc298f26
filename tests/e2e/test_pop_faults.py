"""POP faults with real processes: a POP SIGKILLed, an origin SIGKILLed, Redis stopped.

Every process is real: ``clutchcall pop`` (``python -m cli.pop``), origin
stand-ins (``tests.e2e.pop_origin``: a relay node registered in Redis with a
live publisher), a private ``redis-server``.  The viewer is our moqt.aio client.
Recovery times are measured and printed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mesh.bus import RedisBus
from mesh.revocation import Revocation, publish_revocation
from tests.conftest import RedisServer
from tests.e2e.pop_procs import processes, start_origin, start_pop
from tests.pop.lab import Received, Tokens, Viewer, namespace_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

NS = namespace_of("lv_a")


async def wait_objects(objects: list[Received], count: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    start = len(objects)
    while len(objects) < start + count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(objects) - start} of {count} objects in {within} s")
        await asyncio.sleep(0.02)


async def resilient_watch(
    urls: list[str], token: str, objects: list[Received], stop: asyncio.Event, stall: float = 0.5
) -> list[float]:
    """Watch through the first POP; when objects stop for ``stall`` s, move to the next POP
    (SUBSCRIBE NextGroupStart: resume at the next group boundary).  Returns switch times."""
    switches: list[float] = []
    index = 0
    while not stop.is_set():
        viewer = Viewer(urls[index % len(urls)], NS, objects=objects)
        task = asyncio.create_task(viewer.watch(subscribe_token=token))
        started = time.time()
        while not task.done() and not stop.is_set():
            await asyncio.sleep(0.02)
            last = objects[-1].at if objects and objects[-1].at > started else started
            if time.time() - last > stall:
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not stop.is_set():
            switches.append(time.time())
            index += 1
    return switches


async def test_pop_sigkill_viewer_resumes_on_another_pop(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    tokens = Tokens(tmp_path)
    with processes() as procs:
        procs.append(start_origin(tmp_path, "o1", redis=redis_server.url))
        pop1 = start_pop(tmp_path, "pop1", redis=redis_server.url, jwks=tokens.jwks_path)
        procs.append(pop1)
        pop2 = start_pop(tmp_path, "pop2", redis=redis_server.url, jwks=tokens.jwks_path)
        procs.append(pop2)
        objects: list[Received] = []
        stop = asyncio.Event()
        urls = [f"moqt://{pop1.quic}", f"moqt://{pop2.quic}"]
        watcher = asyncio.create_task(resilient_watch(urls, tokens.mint(), objects, stop))
        await wait_objects(objects, 10)
        killed_at = time.time()
        last_before = objects[-1]
        pop1.kill()
        await wait_objects(objects, 10)
        stop.set()
        await watcher
        after = [o for o in objects if o.at > killed_at]
        first = after[0]
        recovery = first.at - killed_at
        print(f"\nPOP SIGKILL -> first object via pop2 after {recovery * 1000:.0f} ms "
              f"(group {first.group}, object {first.obj}; last before kill: "
              f"group {last_before.group} object {last_before.obj})")  # fmt: skip
        assert first.obj == 0, "the viewer must resume at a group boundary"
        assert first.group > last_before.group
        assert recovery < 2.0
        groups = [o.group for o in after]
        assert groups == sorted(groups)


# Fast: the registry notices first (TTL 1.5 s).  Default timing (heartbeat 1 s, TTL 3 s):
# the POP notices the silence of the live track first (1.5 s) and re-routes on its own.
REGISTRY_TIMING = {"fast": (0.5, 1.5), "default": (1.0, 3.0)}


@pytest.mark.parametrize(
    ("registry", "stack"), [("fast", "aioquic"), ("default", "aioquic"), ("fast", "picoquic")]
)
async def test_origin_sigkill_pops_reroute_within_3s(
    tmp_path: Path, redis_server: RedisServer, registry: str, stack: str
) -> None:
    """``stack``: the POP's QUIC stack, for its viewers and its links to the origins."""
    tokens = Tokens(tmp_path)
    heartbeat, ttl = REGISTRY_TIMING[registry]
    env = {"CLUTCHCALL_HEARTBEAT_INTERVAL": str(heartbeat), "CLUTCHCALL_NODE_TTL": str(ttl)}
    with processes() as procs:
        origins = {
            name: start_origin(tmp_path, name, redis=redis_server.url, heartbeat=heartbeat, ttl=ttl)
            for name in ("o-a", "o-b")
        }
        procs.extend(origins.values())
        pop = start_pop(tmp_path, "pop1", redis=redis_server.url, jwks=tokens.jwks_path, env=env,
                        extra=["--quic-stack", stack])  # fmt: skip
        procs.append(pop)
        objects: list[Received] = []
        viewer = Viewer(f"moqt://{pop.quic}", NS, objects=objects)
        task = asyncio.create_task(viewer.watch(subscribe_token=tokens.mint()))
        try:
            await wait_objects(objects, 10)
            serving = objects[-1].origin
            other = "o-b" if serving == "o-a" else "o-a"
            killed_at = time.time()
            last_before = objects[-1]
            origins[serving].kill()
            deadline = time.monotonic() + 5
            while not objects or objects[-1].origin != other:
                assert time.monotonic() < deadline, "the POP did not re-route"
                await asyncio.sleep(0.01)
            first = next(o for o in objects if o.origin == other and o.at > killed_at)
            rerouted = first.at - killed_at
            print(f"\norigin SIGKILL ({registry} registry) -> objects via {other} after "
                  f"{rerouted * 1000:.0f} ms "
                  f"(group {first.group} object {first.obj})")  # fmt: skip
            assert rerouted <= 3.0
            assert viewer.closed is None  # the viewer's subscription survived
            assert first.obj == 0 and first.group > last_before.group
            await wait_objects(objects, 5)
            # structlog JSON lines with stable node / session / track keys.
            lines = pop.lines()
            moves = [ln for ln in lines if ln.get("event") == "rerouted"]
            assert moves and moves[0]["track"] == "stream/org_test/lv_a/video"
            assert moves[0]["node"] == "pop1" and moves[0]["upstream"] == other
            opened = [ln for ln in lines if ln.get("event") == "session_opened"]
            assert opened and all(str(ln["session"]).startswith("pop1/") for ln in opened)
            assert all({"ts", "level", "logger", "node", "role"} <= ln.keys() for ln in lines)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_redis_outage_keeps_serving_and_catches_up(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    tokens = Tokens(tmp_path)
    bus = RedisBus(redis_server.url, retry_interval=0.2, timeout=0.5)
    tasks: list[asyncio.Task[None]] = []
    with processes() as procs:
        procs.append(start_origin(tmp_path, "o1", redis=redis_server.url, subs=("lv_a", "lv_b")))
        pop = start_pop(tmp_path, "pop1", redis=redis_server.url, jwks=tokens.jwks_path)
        procs.append(pop)
        url = f"moqt://{pop.quic}"
        claims = tokens.claims("lv_a")
        first = Viewer(url, NS)
        tasks.append(asyncio.create_task(first.watch(subscribe_token=tokens.key.sign(claims))))
        try:
            await wait_objects(first.objects, 5)
            await asyncio.sleep(1.0)  # the POP's snapshot has both routes by now
            redis_server.stop()
            stopped_at = time.monotonic()
            # Existing sessions keep flowing...
            await wait_objects(first.objects, 10, within=5)
            # ...and new ones route from the last known topology (a namespace not used yet).
            second = Viewer(url, namespace_of("lv_b"))
            tasks.append(asyncio.create_task(second.watch(subscribe_token=tokens.mint("lv_b"))))
            await wait_objects(second.objects, 5, within=5)
            # Longer than the node TTL: nothing the POP knows may expire while Redis is away.
            await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - stopped_at)))
            await wait_objects(first.objects, 3, within=2)
            await wait_objects(second.objects, 3, within=2)
            print(f"\nRedis down {time.monotonic() - stopped_at:.1f} s: "
                  f"{len(first.objects)} + {len(second.objects)} objects delivered")  # fmt: skip
            assert first.closed is None and second.closed is None
            redis_server.start()
            back_at = time.monotonic()
            # Catch-up: the POP registers itself again...
            while await bus.get("clutchcall:node:pop1") is None:
                assert time.monotonic() - back_at < 5, "the POP did not re-register"
                await asyncio.sleep(0.05)
            print(f"re-registered {time.monotonic() - back_at:.2f} s after Redis returned")
            # ...and follows revocations again (resubscribed to the channel).
            await asyncio.sleep(1.0)
            sent = time.monotonic()
            await publish_revocation(bus, Revocation("jti", claims["jti"], claims["exp"]))
            await asyncio.wait_for(tasks[0], 3)
            print(f"revocation after the outage closed the session in "
                  f"{(time.monotonic() - sent) * 1000:.0f} ms")  # fmt: skip
            assert first.closed is not None and first.closed.reason == "auth_failed"
            assert second.closed is None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.close()
