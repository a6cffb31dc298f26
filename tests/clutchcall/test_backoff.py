"""The data-plane retry budget (clutchcall/streams/_backoff.py) with the two policies the
viewers give it: the live reconnect window and the on-demand fetch's doubling retries."""

from __future__ import annotations

from clutchcall.streams._backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_vod_fetch_waits_0_4_0_8_1_6_s_and_gives_up_after_its_retries() -> None:
    retry = Backoff(0.2, factor=2.0, tries=3)
    assert [retry.failed() for _ in range(4)] == [0.4, 0.8, 1.6, None]


def test_no_retries_gives_up_at_the_first_failure() -> None:
    assert Backoff(0.2, factor=2.0, tries=0).failed() is None


def test_the_live_window_runs_from_the_first_loss_and_restarts_after_a_good_session() -> None:
    clock = Clock()
    retry = Backoff(0.2, window=10.0, clock=clock)
    assert retry.failed() == 0.2  # the window opens here: 100 -> 110
    clock.now = 109.9
    assert retry.failed() == 0.2  # a constant pause, however many losses
    clock.now = 110.0
    assert retry.failed() is None
    retry.restart()  # a session delivered media
    assert retry.failed() == 0.2  # a new window: 110 -> 120
    clock.now = 119.0
    assert retry.failed() == 0.2


def test_a_zero_window_never_reconnects() -> None:
    assert Backoff(0.2, window=0.0, clock=Clock()).failed() is None
