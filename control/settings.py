"""Settings of the control plane (one frozen dataclass)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_PLAYBACK_TTL", "MIN_PLAYBACK_TTL", "ControlSettings"]

MIN_PLAYBACK_TTL = 60
MAX_PLAYBACK_TTL = 24 * 3600


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """``clutchcall control`` settings; loaded by mesh.settings (defaults < TOML [control] <
    CLUTCHCALL_CONTROL_* / CLUTCHCALL_* environment < flags)."""

    # Listen address of the HTTP API.
    http: str = "127.0.0.1:8080"
    # sqlite:///PATH (embedded default) or postgresql://...
    db: str = "sqlite:///clutchcall-control.sqlite3"
    # Cluster bus; None: in-process bus (embedded mode).
    redis: str | None = None
    # Host (and optional :port) of the RTMP ingest, used in rtmp_url.
    public_host: str = "127.0.0.1"
    # Base of signed playback URLs: <relay_url>/<namespace>?token=<jwt>.
    relay_url: str = "https://127.0.0.1:4443"
    audience: str = "clutchcall-playback"
    key_secret: str | None = None
    # Rotate the playback signing key automatically once it is this old.
    signing_key_max_age: float = 30 * 24 * 3600.0
    # Auth failures per client before 429, and the window they are counted in.
    auth_failure_limit: int = 10
    auth_failure_window: float = 60.0
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are trusted
    # (uvicorn forwarded_allow_ips; "*" trusts any). Empty: the peer address is the client.
    trusted_proxies: tuple[str, ...] = ()
    # How often stream keys, revocations and the JWKS are re-written to the bus.
    resync_interval: float = 60.0
    # On demand (docs/vod.md): where uploads and packaged assets live.
    data_dir: str = "clutchcall-data"
    # Largest upload accepted (bytes); more gives 413.
    max_upload_bytes: int = 20 * 1024**3
    # An upload of unknown length that forms a whole MP4 completes after this idle time.
    upload_idle_seconds: float = 3.0
    # A fragmented MP4 of unknown length ending with a whole moof+mdat (no mfra) waits longer.
    upload_idle_fragmented_seconds: float = 30.0
    # Packaging jobs run at once.
    packaging_concurrency: int = 1
    # Browser origins allowed by CORS (e.g. http://localhost:5173); "*" allows any.
    cors_origins: tuple[str, ...] = ()
    # Public base URL of this API (upload and /vod/ URLs); None: taken from each request.
    public_url: str | None = None
    # MoQT URL browser publishers use (the origin), published at /sdk/config.json; None: unknown.
    publish_url: str | None = None
    # "org_id:api_key" the web console pre-fills for callers on this machine (clutchcall up).
    console_demo: str | None = None
    # PEM of the relays' self-signed certificate, whose SHA-256 GET /v1/relay/certificate
    # publishes for browsers (WebTransport serverCertificateHashes); None: CA-issued, no pin.
    relay_certificate: str | None = None
    # Webhooks: attempts per delivery, first retry delay (doubling), request timeout (s).
    webhook_max_attempts: int = 8
    webhook_retry_base: float = 10.0
    webhook_timeout: float = 10.0
    # Let webhooks reach private, loopback and link-local addresses (local development
    # only: `clutchcall up` sets it); off, such targets are refused (control.webhook_guard).
    webhook_allow_private: bool = False
    # How long the answer to a POST with an Idempotency-Key is kept for its retries (s);
    # sealed, in Redis with the stream-key records (or this process), control/idempotency.py.
    idempotency_ttl: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.auth_failure_limit < 1 or self.auth_failure_window <= 0:
            raise ValueError("auth failure limit and window must be positive")
        if self.resync_interval <= 0:
            raise ValueError("resync_interval must be positive")
        if self.signing_key_max_age < 3600:
            raise ValueError("signing_key_max_age must be at least an hour")
        if self.max_upload_bytes < 1 or self.upload_idle_seconds <= 0:
            raise ValueError("max_upload_bytes and upload_idle_seconds must be positive")
        if self.upload_idle_fragmented_seconds <= 0:
            raise ValueError("upload_idle_fragmented_seconds must be positive")
        if self.packaging_concurrency < 1:
            raise ValueError("packaging_concurrency must be at least 1")
        if self.webhook_max_attempts < 1 or self.webhook_retry_base <= 0:
            raise ValueError("webhook_max_attempts and webhook_retry_base must be positive")
        if self.webhook_timeout <= 0:
            raise ValueError("webhook_timeout must be positive")
        if not self.idempotency_ttl > 0:
            raise ValueError("idempotency_ttl must be positive")
        if not self.relay_url.startswith(("https://", "http://", "moqt://")):
            raise ValueError(
                f"relay_url must be an https:// or moqt:// URL, got {self.relay_url!r}"
            )
