"""ClutchCall Streams for Python.

Control plane::

    streams = Streams(base_url=..., api_key=..., org_id=...)
    input, stream_key = streams.live_inputs.create(name="Live Demo", ingest="fmp4")
    ticket = input.signed_playback_url(ttl_seconds=3600)   # ticket.url, .token, .expires_at

:class:`AsyncStreams` is the asyncio twin. Errors are :class:`ApiError`
subclasses carrying the server's RFC 9457 problem.

The data plane (``BroadcastViewer``, ``Streams(relay_url=...).publisher()``) is
added by ``_viewer.py`` / ``_publisher.py`` over MoQT; ``Streams`` already keeps
``relay_url`` and ``token`` for them.
"""

from clutchcall.streams._aio import (
    AsyncLiveInput,
    AsyncLiveInputs,
    AsyncPlaybackTokens,
    AsyncStreams,
)
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
from clutchcall.streams._models import LiveInputPage, LiveInputWithKey, PlaybackTicket, Revocation

__all__ = [
    "ApiError",
    "AsyncLiveInput",
    "AsyncLiveInputs",
    "AsyncPlaybackTokens",
    "AsyncStreams",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "LiveInput",
    "LiveInputPage",
    "LiveInputWithKey",
    "LiveInputs",
    "NotFound",
    "PlaybackTicket",
    "PlaybackTokens",
    "RateLimited",
    "Revocation",
    "ServerError",
    "Streams",
    "StreamsError",
    "Unauthorized",
    "ValidationError",
]
