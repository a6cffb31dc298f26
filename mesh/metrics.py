"""Prometheus metrics of a node and its internal operations HTTP port.

:class:`NodeMetrics` owns one registry (never the process-global one, so several
nodes can live in one test process) holding the metric set every node exports;
names start with ``clutchcall_``.  Other components add their own collectors
with :meth:`NodeMetrics.register` (e.g. the relay's statistics) or expose a
``statistics()`` dataclass through :meth:`NodeMetrics.watch_statistics`.

:class:`OpsServer` serves ``/metrics``, ``/healthz`` (the event loop answers)
and ``/readyz`` (every named readiness check passes; the body names the ones
that fail) over a deliberately tiny HTTP/1.1: GET/HEAD only, one request per
connection, bounded request size and read time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mesh.auth import AuthFailure

__all__ = ["LATENCY_BUCKETS", "DropReason", "NodeMetrics", "OpsServer", "ReadyCheck"]

_log = structlog.get_logger(__name__)

LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

ReadyCheck = Callable[[], bool | Awaitable[bool]]


class DropReason:
    """The ``reason`` label values of ``clutchcall_drops_total`` (pre-created at zero)."""

    STALE_GROUP = "stale_group"
    QUEUE_FULL = "queue_full"
    TOO_FAR_BEHIND = "too_far_behind"
    LOW_PRIORITY = "low_priority"
    DELIVERY_TIMEOUT = "delivery_timeout"
    ALL: Final = (STALE_GROUP, QUEUE_FULL, TOO_FAR_BEHIND, LOW_PRIORITY, DELIVERY_TIMEOUT)


class _StatisticsCollector(Collector):
    """Numeric fields of a ``statistics()`` dataclass as gauges ``clutchcall_<prefix>_<field>``."""

    def __init__(self, prefix: str, source: Callable[[], Any]) -> None:
        self._prefix = prefix
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._source()
        if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
            fields: Mapping[str, Any] = dataclasses.asdict(stats)
        else:
            fields = dict(stats)
        for name, value in fields.items():
            if isinstance(value, bool | int | float):
                yield GaugeMetricFamily(
                    f"clutchcall_{self._prefix}_{name}",
                    f"{self._prefix} {name}",
                    value=float(value),
                )


class NodeMetrics:
    """The metric set of one node (see the module docstring)."""

    def __init__(self, *, node: str, role: str, region: str = "") -> None:
        r = self.registry = CollectorRegistry()
        info = Gauge("clutchcall_node_info", "This node", ["node", "role", "region"], registry=r)
        info.labels(node, role, region).set(1)
        self.sessions = Gauge("clutchcall_sessions", "Open MoQT sessions", ["kind"], registry=r)
        self.subscriptions = Gauge(
            "clutchcall_subscriptions", "Downstream subscriptions", registry=r
        )
        self.upstream_subscriptions = Gauge(
            "clutchcall_upstream_subscriptions", "Subscriptions held upstream", registry=r
        )
        self.objects_in = Counter("clutchcall_objects_in", "Objects received", registry=r)
        self.objects_out = Counter("clutchcall_objects_out", "Objects sent", registry=r)
        self.bytes_in = Counter("clutchcall_bytes_in", "Payload bytes received", registry=r)
        self.bytes_out = Counter("clutchcall_bytes_out", "Payload bytes sent", registry=r)
        self.drops = Counter(
            "clutchcall_drops", "Objects or groups dropped, by reason", ["reason"], registry=r
        )
        self.cache_hits = Counter("clutchcall_cache_hits", "Group cache hits", registry=r)
        self.cache_misses = Counter("clutchcall_cache_misses", "Group cache misses", registry=r)
        self.auth_failures = Counter(
            "clutchcall_auth_failures", "Refused playback tokens, by reason", ["reason"], registry=r
        )
        self.revocations_applied = Counter(
            "clutchcall_revocations_applied", "Revocations applied to the local set", registry=r
        )
        self.revoked_sessions = Counter(
            "clutchcall_revoked_sessions", "Sessions closed by a revocation", registry=r
        )
        self.queue_depth = Gauge(
            "clutchcall_queue_depth", "Items waiting in bounded queues", ["queue"], registry=r
        )
        self.object_latency = Histogram(
            "clutchcall_object_latency_seconds",
            "Time from an object's arrival to its send (per hop)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bus_up = Gauge("clutchcall_bus_up", "1 while the cluster bus answers", registry=r)
        for reason in DropReason.ALL:
            self.drops.labels(reason)
        for failure in AuthFailure:
            self.auth_failures.labels(failure.value)
        for kind in ("viewer", "publisher", "relay"):
            self.sessions.labels(kind)

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def watch_statistics(self, prefix: str, source: Callable[[], Any]) -> None:
        """Export a ``statistics()`` dataclass (or mapping) as ``clutchcall_<prefix>_*`` gauges."""
        self.registry.register(_StatisticsCollector(prefix, source))

    def absorb_relay_statistics(self, stats: Mapping[str, int], last: Mapping[str, int]) -> None:
        """Move a relay core's running totals (``Relay.statistics()``) into the node's
        counters: ``last`` is the previous snapshot, so only the increase is added."""
        self.subscriptions.set(stats["subscriptions"])
        self.upstream_subscriptions.set(stats["upstream_subscriptions"])
        for key, counter in (
            ("objects_in", self.objects_in),
            ("bytes_in", self.bytes_in),
            ("objects_out", self.objects_out),
            ("bytes_out", self.bytes_out),
            ("cache_hits", self.cache_hits),
            ("cache_misses", self.cache_misses),
        ):
            delta = stats[key] - last.get(key, 0)
            if delta > 0:
                counter.inc(delta)
        for reason in DropReason.ALL:
            # What the relay's per-subscriber schedulers did not deliver (stale groups
            # skipped, queue full, ...) is clutchcall_drops_total{reason}.
            key = f"drops_{reason}"
            delta = stats.get(key, 0) - last.get(key, 0)
            if delta > 0:
                self.drops.labels(reason).inc(delta)

    def render(self) -> bytes:
        return generate_latest(self.registry)


_MAX_REQUEST: Final = 8192
_READ_TIMEOUT: Final = 5.0


class OpsServer:
    """``/metrics``, ``/healthz``, ``/readyz`` on an internal port.

    ``async with OpsServer(metrics, "127.0.0.1", 0, ready={"bus": ...}) as ops: ops.port``
    """

    def __init__(
        self,
        metrics: NodeMetrics | CollectorRegistry,
        host: str,
        port: int,
        *,
        ready: Mapping[str, ReadyCheck] | None = None,
        read_timeout: float = _READ_TIMEOUT,
    ) -> None:
        self._read_timeout = read_timeout
        self._registry = metrics.registry if isinstance(metrics, NodeMetrics) else metrics
        self._host, self._port = host, port
        self._checks = dict(ready or {})
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the ops server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    def add_check(self, name: str, check: ReadyCheck) -> None:
        self._checks[name] = check

    async def __aenter__(self) -> OpsServer:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_MAX_REQUEST
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def failing_checks(self) -> list[str]:
        failing = []
        for name, check in self._checks.items():
            try:
                result = check()
                ok = await result if inspect.isawaitable(result) else result
            except Exception:
                _log.exception("ready_check_failed", check=name)
                ok = False
            if not ok:
                failing.append(name)
        return failing

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(self._read_timeout):
                    head = await reader.readuntil(b"\r\n\r\n")
                method, status, ctype, body = await self._route(head)
            except (
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ValueError,
            ):
                method, status, ctype, body = (
                    "GET",
                    "400 Bad Request",
                    "text/plain",
                    b"bad request\n",
                )
            response = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(response if method == "HEAD" else response + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _route(self, head: bytes) -> tuple[str, str, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError("malformed request line")
        method, path = parts[0], parts[1].split("?", 1)[0]
        text = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return method, "405 Method Not Allowed", text, b"method not allowed\n"
        if path == "/metrics":
            return method, "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            return method, "200 OK", text, b"ok\n"
        if path == "/readyz":
            failing = await self.failing_checks()
            if failing:
                body = ("not ready: " + ", ".join(failing) + "\n").encode()
                return method, "503 Service Unavailable", text, body
            return method, "200 OK", text, b"ready\n"
        return method, "404 Not Found", text, b"not found\n"
