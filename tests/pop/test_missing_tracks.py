"""SUBSCRIBEs for tracks that do not exist: DOES_NOT_EXIST, whatever their number.

Many new tracks at once used to run the POP's upstream link out of request ids
(MAX_REQUEST_ID): the rest were answered INTERNAL_ERROR "upstream failed", with a
warning line each. Now the POP waits for room on the link (the upstream answers),
and for a moment answers a track the upstream just called missing itself.
"""

from __future__ import annotations

import asyncio

import structlog

from moqt.aio import SessionOptions, connect
from moqt.errors import RequestErrorCode
from moqt.events import RequestRejected
from pop import PopNode
from tests.pop.lab import Tokens
from tests.pop.test_admission import NS, origin, pop, url

__all__ = ["origin", "pop"]  # fixtures


async def _ask(pop: PopNode, tokens: Tokens, names: list[bytes]) -> list[object]:
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with connect(url(pop), verify=False, options=options) as conn:
        # Each answer's waiter is registered before any answer can arrive.
        waits = [
            asyncio.ensure_future(conn.wait_response(conn.session.subscribe(NS, n))) for n in names
        ]
        return list(await asyncio.wait_for(asyncio.gather(*waits), 20))


async def test_many_missing_tracks_at_once_are_all_does_not_exist(
    pop: PopNode, tokens: Tokens
) -> None:
    with structlog.testing.capture_logs() as logs:
        answers = await asyncio.gather(
            *(_ask(pop, tokens, [b"nope-%d-%d" % (v, i) for i in range(40)]) for v in range(3))
        )
    flat = [a for per_viewer in answers for a in per_viewer]
    assert len(flat) == 120
    assert all(isinstance(a, RequestRejected) for a in flat)
    codes = {a.error for a in flat if isinstance(a, RequestRejected)}
    assert codes == {RequestErrorCode.DOES_NOT_EXIST}, codes
    assert not [line for line in logs if line["event"] == "upstream_subscribe_failed"]


async def test_a_repeated_missing_track_does_not_go_upstream_each_time(
    pop: PopNode, tokens: Tokens
) -> None:
    before = pop.relay.statistics()["upstream_subscribes"]
    options = SessionOptions(auth_token=tokens.mint().encode())
    async with connect(url(pop), verify=False, options=options) as conn:
        for _ in range(30):
            rid = conn.session.subscribe(NS, b"nope")
            answer = await asyncio.wait_for(conn.wait_response(rid), 5)
            assert isinstance(answer, RequestRejected)
            assert answer.error == RequestErrorCode.DOES_NOT_EXIST
    # The first went upstream; the retries within the next second were answered here.
    assert pop.relay.statistics()["upstream_subscribes"] - before <= 3
