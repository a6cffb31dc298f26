"""Benchmark helpers reading node metrics (pure)."""

from __future__ import annotations

import math

from bench._nodes import histogram_quantile, metric, parse_metrics

H = "clutchcall_object_latency_seconds"


def scrape(counts: dict[str, float]) -> dict[str, float]:
    text = "\n".join(
        [f"# HELP {H} latency", f"# TYPE {H} histogram"]
        + [f'{H}_bucket{{le="{le}"}} {n}' for le, n in counts.items()]
        + [f"{H}_count {counts['+Inf']}"]
    )
    return parse_metrics(text)


def test_quantiles_of_the_observations_between_two_scrapes() -> None:
    before = scrape({"0.001": 5.0, "0.005": 5.0, "0.01": 5.0, "+Inf": 5.0})
    # 100 new observations: 50 in (0, 1 ms], 40 in (1, 5 ms], 10 in (5, 10 ms]
    after = scrape({"0.001": 55.0, "0.005": 95.0, "0.01": 105.0, "+Inf": 105.0})
    assert math.isclose(histogram_quantile(before, after, H, 0.5), 0.001)
    assert math.isclose(histogram_quantile(before, after, H, 0.7), 0.001 + 0.004 * 0.5)
    assert math.isclose(histogram_quantile(before, after, H, 0.99), 0.005 + 0.005 * 0.9)


def test_no_observations_is_nan_and_overflow_is_the_last_bound() -> None:
    same = scrape({"0.001": 1.0, "+Inf": 1.0})
    assert math.isnan(histogram_quantile(same, same, H, 0.5))
    assert math.isnan(histogram_quantile({}, {}, H, 0.5))
    over = scrape({"0.001": 1.0, "+Inf": 11.0})
    assert histogram_quantile(same, over, H, 0.99) == 0.001


def test_metric_sums_label_sets() -> None:
    values = parse_metrics(
        'clutchcall_sessions{kind="viewer"} 3\nclutchcall_sessions{kind="relay"} 1\n'
        "clutchcall_sessions_other 7\n# a comment\nnot a sample\n"
    )
    assert metric(values, "clutchcall_sessions") == 4
    assert metric(values, "clutchcall_missing") == 0
