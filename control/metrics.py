"""Prometheus metrics of the control plane (one registry per app, never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from vod.metrics import VodMetrics

__all__ = ["ControlMetrics"]


class ControlMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "clutchcall_control_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clutchcall_control_request_seconds",
            "HTTP request handling time",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "clutchcall_control_auth_failures",
            "Requests refused for a missing/invalid API key, or throttled",
            ["reason"],
            registry=self.registry,
        )
        self.tokens_minted = Counter(
            "clutchcall_control_playback_tokens_minted",
            "Signed playback tokens issued",
            registry=self.registry,
        )
        self.revocations = Counter(
            "clutchcall_control_revocations",
            "Playback revocations published, by kind (jti or sub)",
            ["kind"],
            registry=self.registry,
        )
        self.stream_key_rotations = Counter(
            "clutchcall_control_stream_key_rotations",
            "Stream keys rotated",
            registry=self.registry,
        )
        self.status_reports = Counter(
            "clutchcall_control_input_status_reports",
            "Input status reports from origins, by whether they were applied",
            ["applied"],
            registry=self.registry,
        )

        # Uploads, packaging and /vod/ delivery (vod/metrics.py).
        self.vod = VodMetrics(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
