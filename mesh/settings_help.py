"""What each setting does, for ``--help`` (:func:`mesh.settings.add_settings_arguments`).

Keys are field names; ``"<role>.<field>"`` overrides one role's meaning (the control
plane's ``http`` is its API, a node's is its ops port). The TOML key, the environment
variables and the default are derived from the settings dataclass, never written here.
``tests/cli/test_help.py`` fails on a settings field that has no entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["SETTING_HELP", "setting_help"]

SETTING_HELP: Final[Mapping[str, str]] = {
    # -- every node ---------------------------------------------------------------------
    "node_id": "this node's id in the cluster (empty: <role>-<hostname>)",
    "region": "region this node serves; POPs prefer upstreams of their own region",
    "quic": "UDP HOST:PORT of MoQT over raw QUIC and WebTransport",
    "advertise": "HOST:PORT other nodes dial to reach this one (default: --quic)",
    "http": "HOST:PORT of /metrics, /healthz and /readyz",
    "redis": "cluster bus URL (redis://...); unset: in-process bus, single process only",
    "log_level": "log verbosity",
    "log_json": "structlog JSON lines on stderr (--no-log-json: console format)",
    "heartbeat_interval": "seconds between this node's registrations on the bus",
    "node_ttl": "seconds after its last heartbeat that a node counts as gone",
    "drain_timeout": "seconds to wait for sessions to move away on SIGTERM",
    "quic_stack": "QUIC implementation: picoquic (default; C, less CPU per byte) or aioquic "
    "(pure Python); both raw QUIC + WebTransport",
    "cluster_key": "shared secret (32+ characters) relay links authenticate with "
    "(docs/relay-links.md); empty: links are treated as viewers",
    "setup_timeout": "seconds a session may take to complete MoQT SETUP before it is closed",
    "max_connections": "QUIC connections beyond this many are refused",
    "quic_stream_buffer": "picoquic: bytes held per outgoing stream inside picoquic (the rest "
    "waits in the session)",
    "heap_trim_interval": "seconds between two glibc malloc_trim calls handing freed heap "
    "pages back to the kernel (0: never)",
    "quic_congestion_control": "picoquic: congestion controller of the connections a node "
    "serves and opens (bbr: "
    "picoquic's current BBR; bbr1, aiopquic's default, floods a shallow rate limit)",
    "quic_send_quantum": "picoquic's BBR: seconds of its pacing rate it may send at once "
    "while the node is not busy (0: its own 1 ms)",
    "quic_busy_connections": "picoquic's BBR: from this many connections on, the connections "
    "after get at least --quic-busy-send-quantum (0: never)",
    "quic_busy_send_quantum": "picoquic's BBR: the send quantum of a busy node, in seconds "
    "(coarser: less CPU per viewer, burstier)",
    # -- origin -------------------------------------------------------------------------
    "publish_auth": "how publishers are admitted: redis (stream keys from the control "
    "plane) or none (development only: anyone may publish)",
    "rtmp": "TCP HOST:PORT of RTMP ingest ('' disables it)",
    "dev_org": "org of publishers admitted by --publish-auth none",
    "ladder": "video rungs of the RTMP transcode ladder, comma-separated NAME:HEIGHT:BITRATE "
    "(capped at the source height)",
    "audio": "audio codec of the RTMP ladder (none: video only)",
    "group_duration": "seconds per GOP = MoQT group of the RTMP ladder",
    "chunk_duration": "seconds per CMAF chunk = MoQT object of the RTMP ladder",
    "preset": "x264 preset of the RTMP ladder (ultrafast ... veryslow)",
    "prft": "write prft (wallclock) boxes into the ladder's chunks, for latency measurement",
    "resume_window": "seconds after an RTMP broadcast ended in which a reconnect continues "
    "its group ids",
    "publisher_reconnect_window": "seconds a broadcast stays open after its publisher dropped "
    "(RTMP connection lost, MoQT session gone): the input publishing again within them "
    "continues the same tracks and viewers go on (0: end at once)",
    "max_object_size": "largest MoQT object accepted from a publisher (bytes)",
    "cache_bytes": "per-track cache budget beyond the latest group (bytes)",
    "cache_age": "seconds cached groups are kept for late joiners",
    # -- POP ----------------------------------------------------------------------------
    "jwks": "where playback-token keys come from: a JWKS URL, a file, or 'bus' (the "
    "control plane's record on the cluster bus)",
    "audience": "the aud claim playback tokens must carry",
    "jwks_max_age": "seconds a fetched JWKS is trusted before it is fetched again",
    "jwks_refresh_interval": "at most one JWKS refresh per this many seconds on unknown key ids",
    "workers": "worker processes sharing the UDP port (SO_REUSEPORT)",
    "linger": "seconds an upstream subscription is kept after its last viewer left",
    "parent_regions": "comma-separated regions whose POPs this POP may pull from before an origin",
    "max_hops": "most relay hops a track may take from its origin",
    "quic_retry": "QUIC Retry (address validation): auto (while more than --retry-threshold "
    "handshakes are half-open), always or never",
    "retry_threshold": "half-open handshakes above which --quic-retry auto sends Retry",
    "upstream_stall": "seconds without an object on an upstream's steady live tracks after "
    "which the POP takes that upstream for dead and re-routes them (0: off; raise it on a "
    "host that can stall the POP's event loop this long)",
    # -- control plane ------------------------------------------------------------------
    "control.http": "HOST:PORT of the HTTP API (also /metrics, /docs)",
    "control.redis": "cluster bus URL (redis://...); unset: in-process bus (embedded mode)",
    "db": "database: sqlite:///PATH or postgresql://...",
    "public_host": "host (and optional :port) of RTMP ingest, used in rtmp_url",
    "relay_url": "base of signed playback URLs: <relay_url>/<namespace>?token=<jwt>",
    "control.audience": "the aud claim of the playback tokens it signs",
    "key_secret": "secret that encrypts the signing keys at rest (unset: stored unsealed)",
    "signing_key_max_age": "seconds after which the playback signing key rotates",
    "auth_failure_limit": "auth failures per client before 429",
    "auth_failure_window": "seconds the auth failures are counted in",
    "trusted_proxies": "comma-separated reverse proxies whose X-Forwarded-For/-Proto are "
    "trusted ('*': any); empty: the peer is the client",
    "resync_interval": "seconds between re-writes of stream keys, revocations and JWKS to the bus",
    "data_dir": "directory of uploads and packaged on-demand assets",
    "max_upload_bytes": "largest upload accepted (bytes); larger gives 413",
    "upload_idle_seconds": "an upload of unknown length that forms a whole MP4 completes "
    "after this idle time",
    "upload_idle_fragmented_seconds": "a fragmented MP4 of unknown length whose last boxes are "
    "a whole moof+mdat (no mfra) completes after this idle time",
    "packaging_concurrency": "packaging jobs run at once",
    "cors_origins": "comma-separated browser origins allowed by CORS ('*': any)",
    "public_url": "public base URL of this API (upload and /vod/ URLs); unset: from each request",
    "publish_url": "MoQT URL browser publishers use (the origin), published at /sdk/config.json",
    "console_demo": "org_id:api_key the web console pre-fills for callers on this machine",
    "relay_certificate": "PEM of the relays' self-signed certificate whose SHA-256 is "
    "published for browsers (WebTransport serverCertificateHashes)",
    "webhook_max_attempts": "attempts per webhook delivery",
    "webhook_retry_base": "seconds before the first webhook retry (doubling)",
    "webhook_timeout": "seconds a webhook request may take",
    "webhook_allow_private": "let webhooks reach private, loopback and link-local addresses "
    "(local development; `clutchcall up` sets it)",
    "idempotency_ttl": "seconds the answer to a POST with an Idempotency-Key is kept for retries",
}


def setting_help(section: str | None, name: str) -> str | None:
    """The help of field ``name`` for role ``section`` (None when there is none)."""
    if section is not None and f"{section}.{name}" in SETTING_HELP:
        return SETTING_HELP[f"{section}.{name}"]
    return SETTING_HELP.get(name)
