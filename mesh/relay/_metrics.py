"""Prometheus view of a relay's statistics (names start with ``clutchcall_``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ._relay import Relay
from ._scheduling import DropReason

__all__ = ["RelayCollector", "relay_registry"]

_GAUGES = {
    "sessions": "MoQT sessions attached to the relay",
    "tracks": "Tracks known to the relay",
    "subscriptions": "Downstream subscriptions",
    "upstream_subscriptions": "Tracks with an upstream subscription or publisher",
    "cache_bytes": "Bytes held in the group cache",
    "cache_groups": "Groups held in the group cache",
    "queued_objects": "Objects queued in per-subscriber schedulers",
    "queued_bytes": "Bytes queued in per-subscriber schedulers",
}
_COUNTERS = {
    "sessions_total": ("sessions_accepted", "MoQT sessions accepted"),
    "objects_in": ("objects_in", "Objects received from publishers"),
    "bytes_in": ("bytes_in", "Payload bytes received from publishers"),
    "objects_out": ("objects_out", "Objects sent to subscribers (live and fetch)"),
    "bytes_out": ("bytes_out", "Payload bytes sent to subscribers"),
    "duplicate_objects": ("duplicate_objects", "Objects dropped as duplicates"),
    "cache_hits": ("cache_hits", "Cache lookups that found objects"),
    "cache_misses": ("cache_misses", "Cache lookups that found nothing"),
    "cache_evicted_groups": ("cache_evicted_groups", "Groups evicted from the cache"),
    "fetches": ("fetches", "FETCH requests"),
    "upstream_subscribes": ("upstream_subscribes", "SUBSCRIBEs the relay sent upstream"),
    "subscribers_too_far_behind": (
        "subscribers_too_far_behind",
        "Subscriptions ended with PUBLISH_DONE TOO_FAR_BEHIND",
    ),
    "streams_reset": ("streams_reset", "Subgroup streams reset to subscribers under congestion"),
}


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._relay.statistics()
        for key, doc in _GAUGES.items():
            yield GaugeMetricFamily(f"clutchcall_relay_{key}", doc, value=stats[key])
        for key, (name, doc) in _COUNTERS.items():
            yield CounterMetricFamily(f"clutchcall_relay_{name}", doc, value=stats[key])
        drops = CounterMetricFamily(
            "clutchcall_relay_dropped_objects",
            "Objects not delivered to a subscriber, by reason",
            labels=["reason"],
        )
        for drop in DropReason:
            drops.add_metric([drop.value], stats[f"drops_{drop.value}"])
        yield drops
        rejected = CounterMetricFamily(
            "clutchcall_relay_requests_rejected", "Requests refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(self._relay.rejections().items()):
            rejected.add_metric([reason], count)
        yield rejected


def relay_registry(relay: Relay) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(RelayCollector(relay))
    return registry
