"""ClutchCall Streams for Python.

Control plane::

    streams = Streams(base_url=..., api_key=..., org_id=...)
    input, stream_key = streams.live_inputs.create(name="Live Demo", ingest="fmp4")
    ticket = input.signed_playback_url(ttl_seconds=3600)   # ticket.url, .token, .expires_at

:class:`AsyncStreams` is the asyncio twin: both run the same implementation of
every call (``_plan``), and tests pin that they have one API. Errors are
:class:`ApiError` subclasses carrying the server's RFC 9457 problem.

Data plane (MoQT)::

    viewer = BroadcastViewer.open(ticket.url, on_chunk=on_chunk, on_close=on_close)
    pub = Publisher(relay_url, timeslice_ms=500)   # or Streams(relay_url=...).publisher()
    pub.publish(input.external_input_id, stream_key, "testsrc", input.namespace)

:class:`AsyncBroadcastViewer` / :class:`AsyncPublisher` are their asyncio twins.
"""

from clutchcall.streams._aio import (
    AsyncLiveInput,
    AsyncLiveInputs,
    AsyncPlaybackTokens,
    AsyncStreams,
)
from clutchcall.streams._asset_types import (
    AssetFailed,
    AssetPage,
    Rendition,
    UploadFailed,
    UploadPolicy,
    UploadTicket,
)
from clutchcall.streams._assets import Asset, Assets
from clutchcall.streams._assets_aio import AsyncAsset, AsyncAssets
from clutchcall.streams._client import LiveInput, LiveInputs, PlaybackTokens, Streams
from clutchcall.streams._errors import (
    ApiError,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    NotFound,
    RateLimited,
    ServerError,
    StreamsError,
    Unauthorized,
    ValidationError,
)
from clutchcall.streams._http import RetryPolicy
from clutchcall.streams._models import LiveInputPage, LiveInputWithKey, PlaybackTicket, Revocation
from clutchcall.streams._player import AsyncPlayer, PlaybackError, Player
from clutchcall.streams._publisher import (
    AsyncPublisher,
    Publisher,
    PublishError,
    PublishResult,
    SourceError,
)
from clutchcall.streams._viewer import AsyncBroadcastViewer, Chunk, CloseReason
from clutchcall.streams._viewer_sync import BroadcastViewer
from clutchcall.streams._vod import AsyncVodViewer
from clutchcall.streams._webhooks import (
    AsyncWebhooks,
    WebhookDelivery,
    WebhookEndpoint,
    Webhooks,
    WebhookVerificationError,
    verify_webhook,
)

__all__ = [
    "ApiError",
    "Asset",
    "AssetFailed",
    "AssetPage",
    "Assets",
    "AsyncAsset",
    "AsyncAssets",
    "AsyncBroadcastViewer",
    "AsyncLiveInput",
    "AsyncLiveInputs",
    "AsyncPlaybackTokens",
    "AsyncPlayer",
    "AsyncPublisher",
    "AsyncStreams",
    "AsyncVodViewer",
    "AsyncWebhooks",
    "BroadcastViewer",
    "Chunk",
    "CloseReason",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "LiveInput",
    "LiveInputPage",
    "LiveInputWithKey",
    "LiveInputs",
    "NotFound",
    "PlaybackError",
    "PlaybackTicket",
    "PlaybackTokens",
    "Player",
    "PublishError",
    "PublishResult",
    "Publisher",
    "RateLimited",
    "Rendition",
    "RetryPolicy",
    "Revocation",
    "ServerError",
    "SourceError",
    "Streams",
    "StreamsError",
    "Unauthorized",
    "UploadFailed",
    "UploadPolicy",
    "UploadTicket",
    "ValidationError",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookVerificationError",
    "Webhooks",
    "verify_webhook",
]
