"""Prometheus metrics of the on-demand side: uploads, packaging jobs, ``/vod/`` delivery.

Registered on the control plane's registry (:class:`control.metrics.ControlMetrics`
creates one :class:`VodMetrics`), so they appear on its ``/metrics`` beside the API's,
under the same ``clutchcall_control_`` prefix:

- ``clutchcall_control_upload_bytes_total{form}``: body bytes appended to uploads
  (durable), by protocol form (``seed``, ``tus``, ``ietf``);
- ``clutchcall_control_uploads_started_total{form}``: uploads whose first bytes arrived;
- ``clutchcall_control_uploads_completed_total{form}``: uploads that became whole files
  (by declared length, ``Upload-Complete`` or the idle box check);
- ``clutchcall_control_upload_failures_total{form, reason}``: upload requests answered
  with an error, by problem type (``mismatching-upload-offset``, ``upload-too-large``,
  ``upload-locked``, ...; ``expired`` for an upload that expired unfinished);
- ``clutchcall_control_packaging_jobs_queued``: jobs waiting (this process's queue, or
  the cluster's Redis stream as of the last look of a worker here);
- ``clutchcall_control_packaging_jobs_running``: jobs packaging in this process;
- ``clutchcall_control_packaging_seconds``: time of each job that ended ready;
- ``clutchcall_control_packaging_failures_total{reason}``: jobs that ended errored, by
  reason code (``not_media``, ``truncated``, ``too_long``, ``packaging_failed``);
- ``clutchcall_control_vod_requests_total{kind, status}`` and
  ``clutchcall_control_vod_bytes_total{kind}``: ``/vod/`` answers and body bytes of 2xx
  answers sent, by
  kind (``catalog``, ``playlist``, ``init``, ``segment``, ``other`` for unknown paths);
  304s are revalidations a client's or CDN's cache answered from its copy;
- ``clutchcall_control_vod_location_lookups_total{result}``: ``hit`` when the playback
  id's location came from the delivery's short-lived cache, ``miss`` when the database
  was asked.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["VodKind", "VodMetrics", "vod_kind"]

VodKind = Literal["catalog", "playlist", "init", "segment", "other"]
_PACKAGING_BUCKETS: Final = (1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0)


def vod_kind(path: str) -> VodKind:
    """What a ``/vod/<pb_id>/<path>`` request asks for."""
    if path == "catalog.json":
        return "catalog"
    if path.endswith(".m3u8"):
        return "playlist"
    if path.endswith("/init.mp4"):
        return "init"
    if path.endswith(".m4s"):
        return "segment"
    return "other"


class VodMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.upload_bytes = Counter(
            "clutchcall_control_upload_bytes",
            "Upload body bytes appended (durable), by protocol form",
            ["form"],
            registry=r,
        )
        self.uploads_started = Counter(
            "clutchcall_control_uploads_started",
            "Uploads whose first bytes arrived, by protocol form",
            ["form"],
            registry=r,
        )
        self.uploads_completed = Counter(
            "clutchcall_control_uploads_completed",
            "Uploads that became whole files, by protocol form",
            ["form"],
            registry=r,
        )
        self.upload_failures = Counter(
            "clutchcall_control_upload_failures",
            "Upload requests answered with an error, by protocol form and problem type",
            ["form", "reason"],
            registry=r,
        )
        self.jobs_queued = Gauge(
            "clutchcall_control_packaging_jobs_queued",
            "Packaging jobs waiting for a worker",
            registry=r,
        )
        self.jobs_running = Gauge(
            "clutchcall_control_packaging_jobs_running",
            "Packaging jobs running in this process",
            registry=r,
        )
        self.packaging_seconds = Histogram(
            "clutchcall_control_packaging_seconds",
            "Time to package an asset (jobs that ended ready)",
            buckets=_PACKAGING_BUCKETS,
            registry=r,
        )
        self.packaging_failures = Counter(
            "clutchcall_control_packaging_failures",
            "Packaging jobs that ended errored, by reason code",
            ["reason"],
            registry=r,
        )
        self.vod_requests = Counter(
            "clutchcall_control_vod_requests",
            "/vod/ answers by kind (catalog, playlist, init, segment, other) and status",
            ["kind", "status"],
            registry=r,
        )
        self.vod_bytes = Counter(
            "clutchcall_control_vod_bytes",
            "/vod/ body bytes sent, by kind",
            ["kind"],
            registry=r,
        )
        self.vod_location_lookups = Counter(
            "clutchcall_control_vod_location_lookups",
            "/vod/ playback id lookups answered by the location cache (hit) or the database",
            ["result"],
            registry=r,
        )
