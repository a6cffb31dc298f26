"""bench.soak's counting (pure): group skips of a viewer and the POP's upstream reconnects."""

from __future__ import annotations

import json
from pathlib import Path

from bench.soak import Session, _upstream_reconnects


def test_skips_after_joining_are_counted_with_their_time() -> None:
    s = Session(slot=0, jti="jt", started=0.0)
    for g in (10, 12, 13):  # joining: the first groups may pass over some
        s.on_chunk("video", g, 0)
        s.on_chunk("video", g, 1)
    s.on_chunk("audio", 12, 0)
    s.on_chunk("audio", 13, 0)
    assert (s.join_skipped, s.groups_skipped, s.skips) == (1, 0, [])
    s.on_chunk("video", 14, 0)
    s.on_chunk("video", 17, 0)  # groups 15 and 16 never came
    s.on_chunk("video", 17, 1)
    assert (s.groups_skipped, s.lost, s.disorder) == (2, 0, 0)
    assert [n for _, n in s.skips] == [2]


def test_upstream_reconnects_are_the_links_lost(tmp_path: Path) -> None:
    log = tmp_path / "pop.log"
    records = [
        {"event": "upstream_closed", "reason": "stalled", "ts": "2026-12-07T05:43:41.507010Z"},
        {"event": "upstream_closed", "reason": "node down", "ts": "2026-12-07T05:50:00.000000Z"},
        {"event": "upstream_stalled", "silent": 1.5, "ts": "2026-12-07T05:43:41.501263Z"},
    ]
    log.write_text("\n".join([*map(json.dumps, records), "not json", ""]))
    first, second = _upstream_reconnects(log)
    assert abs(first - 1796622221.50701) < 1e-3
    assert abs(second - first - 378.49299) < 1e-3
