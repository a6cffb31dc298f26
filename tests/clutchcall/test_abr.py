"""AbrController: the highest rendition that keeps up, with a fake clock."""

from __future__ import annotations

import pytest

from clutchcall.streams._abr import AbrController, Rendition

LADDER = [
    Rendition("360p", 800_000, 640, 360),
    Rendition("1080p", 5_000_000, 1920, 1080),
    Rendition("720p", 2_800_000, 1280, 720),
]


def feed(abr: AbrController, start: float, seconds: float, lag_growth: float) -> float:
    """Chunks every 0.5 s of media (media time = wall time of capture); each arrives
    ``lag_growth`` s later than the one before would have."""
    t = start
    lag = abr.lag
    while t < start + seconds:
        abr.observe(t + lag, t)
        t += 0.5
        lag += lag_growth
    return t


def test_starts_at_the_highest_and_steps_down_when_media_falls_behind() -> None:
    abr = AbrController(LADDER)
    assert abr.current == "1080p"
    now = feed(abr, 0.0, 3.0, 0.0)
    assert abr.decide(now) is None  # keeps pace
    now = feed(abr, now, 5.0, 0.2)  # 0.4 s later every second of media
    assert abr.lag > 1.5
    assert abr.decide(now) == "720p"


def test_steps_up_after_a_calm_probe_period_and_backs_off_after_a_failed_probe() -> None:
    abr = AbrController(LADDER, probe_after=10.0)
    abr.switched("360p", 0.0)
    now = feed(abr, 0.0, 9.0, 0.0)
    assert abr.decide(now) is None  # not calm for long enough yet
    now = feed(abr, now, 2.0, 0.0)
    assert abr.decide(now) == "720p"
    abr.switched("720p", now)
    now = feed(abr, now, 5.0, 0.3)  # the step up did not keep up
    assert abr.decide(now) == "360p"
    abr.switched("360p", now)
    calm = feed(abr, now, 15.0, 0.0)
    assert abr.decide(calm) is None  # probe_after doubled to 20 s
    calm = feed(abr, calm, 6.0, 0.0)
    assert abr.decide(calm) == "720p"


def test_pinned_and_capped() -> None:
    pinned = AbrController(LADDER, pinned="360p")
    assert pinned.current == "360p"
    feed(pinned, 0.0, 5.0, 0.5)
    assert pinned.decide(5.0) is None
    capped = AbrController(LADDER, max_height=720)
    assert capped.current == "720p" and [r.name for r in capped.ladder] == ["720p", "360p"]
    assert AbrController(LADDER, max_height=100).current == "360p"  # the lowest still plays
    with pytest.raises(ValueError):
        AbrController(LADDER, pinned="4k")
    with pytest.raises(ValueError):
        AbrController([])


def test_the_lowest_rendition_never_steps_further_down() -> None:
    abr = AbrController(LADDER)
    abr.switched("360p", 0.0)
    now = feed(abr, 0.0, 10.0, 0.5)
    assert abr.decide(now) is None
