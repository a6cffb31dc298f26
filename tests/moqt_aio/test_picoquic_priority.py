"""MoQT priorities as picoquic stream priorities (``moqt.aio._picoquic_rings``)."""

from __future__ import annotations

from moqt.aio._picoquic_rings import PRIORITY_FIFO, picoquic_priority

PICOQUIC_DEFAULT = 9  # PICOQUIC_DEFAULT_STREAM_PRIORITY: streams nobody prioritised


def test_adjacent_priorities_stay_apart_and_in_order() -> None:
    # ``p | 1`` made 2 and 3 one level (the ladder's 360p and 720p, sent FIFO by stream id).
    values = [picoquic_priority(p) for p in range(128)]
    assert values == sorted(set(values))
    assert all(v & PRIORITY_FIFO for v in values)
    assert {picoquic_priority(p) for p in range(127, 256)} == {255}
    assert picoquic_priority(-5) == picoquic_priority(0)


def test_the_control_stream_goes_before_media_and_picoquic_defaults() -> None:
    control = picoquic_priority(0)  # moqt._core.CONTROL_STREAM_PRIORITY
    assert control < picoquic_priority(1) < PICOQUIC_DEFAULT
    assert picoquic_priority(128) > PICOQUIC_DEFAULT  # the default publisher priority
