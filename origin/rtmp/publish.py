"""What the RTMP server asks of the rest of the origin: admission and a sink per publish.

* ``Authorizer``: ``async (external_input_id, stream_key) -> Admission``.
* ``SinkFactory``: ``async (PublishInfo) -> PublishSink``, called once per admitted
  publish; the sink then receives metadata, every audio/video tag in order, and
  exactly one :class:`PublishEnd` saying whether the encoder ended cleanly.

URL forms accepted (``app_name`` is ``"live"`` by default):

* OBS and ffmpeg with ``rtmp://host/live/<external_input_id>/<key>`` or server
  ``rtmp://host/live/<external_input_id>`` + stream key ``<key>``: app
  ``live/<id>``, publish name ``<key>``;
* app ``live`` with publish name ``<id>/<key>`` (ffmpeg ``-rtmp_app live
  -rtmp_playpath <id>/<key>``, or clients that split the URL at the first path
  segment).

A ``?query`` suffix on the app or the publish name is ignored (OBS copies URL
queries there); stream keys therefore cannot contain ``?``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from origin.rtmp.amf0 import AmfValue
from origin.rtmp.errors import RtmpPeerError
from origin.rtmp.tags import MediaTag

__all__ = [
    "Admission",
    "Authorizer",
    "EndReason",
    "InvalidPublishTarget",
    "PublishEnd",
    "PublishInfo",
    "PublishSink",
    "PublishTarget",
    "SinkFactory",
    "app_is_ours",
    "parse_publish_target",
    "redact_app",
    "redact_tc_url",
]

_INPUT_ID: Final = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_KEY: Final = re.compile(r"[\x21-\x7e]{1,512}")


class InvalidPublishTarget(RtmpPeerError):
    """The app / publish name pair does not name an input and a key."""

    reason = "bad_publish_name"


@dataclass(frozen=True, slots=True)
class Admission:
    """The authorizer's answer. ``reason`` is shown to the encoder when refused."""

    ok: bool
    reason: str = ""
    org_id: str = ""
    namespace: str = ""

    @classmethod
    def allow(cls, org_id: str, namespace: str) -> Admission:
        return cls(True, "", org_id, namespace)

    @classmethod
    def deny(cls, reason: str) -> Admission:
        return cls(False, reason)


type Authorizer = Callable[[str, str], Awaitable[Admission]]


@dataclass(frozen=True, slots=True)
class PublishTarget:
    external_input_id: str
    stream_key: str = field(repr=False)


class EndReason(enum.StrEnum):
    #: The encoder said so: FCUnpublish, closeStream or deleteStream.
    UNPUBLISHED = "unpublished"
    #: TCP closed or reset without an unpublish command (encoder crash, network loss).
    CONNECTION_LOST = "connection_lost"
    #: No bytes from the encoder for ``idle_timeout`` seconds.
    IDLE_TIMEOUT = "idle_timeout"
    #: The encoder broke the protocol or a limit; the connection was closed.
    PROTOCOL_ERROR = "protocol_error"
    #: Ended by the server: :meth:`RtmpServer.disconnect` (e.g. the stream key was rotated).
    KICKED = "kicked"
    #: The server is shutting down.
    SERVER_CLOSED = "server_closed"
    #: The sink raised while handling a tag; the connection was closed.
    SINK_FAILED = "sink_failed"
    #: A bug on our side; logged with its traceback, the connection was closed.
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class PublishEnd:
    reason: EndReason
    detail: str = ""

    @property
    def clean(self) -> bool:
        """True only when the encoder ended the publish itself."""
        return self.reason is EndReason.UNPUBLISHED


@dataclass(frozen=True, slots=True)
class PublishInfo:
    """Who is publishing what (no stream key in here)."""

    external_input_id: str
    org_id: str
    namespace: str
    app: str
    tc_url: str
    flash_ver: str
    publish_type: str
    peer: str
    session: str


class PublishSink(Protocol):
    """Receives one admitted publish, in order, from the connection's own task.

    Calls are awaited one at a time: a slow sink slows the encoder (TCP
    backpressure). ``on_metadata`` / ``on_media`` may be cancelled when the server
    closes or ends the publish (:meth:`RtmpServer.disconnect`); ``on_end`` is then
    still called exactly once, bounded by ``RtmpServerSettings.end_timeout`` (and
    cancelled if the server is closed while a kicked publish winds down).
    An exception from ``on_metadata`` / ``on_media`` closes the connection and ends
    the publish with ``SINK_FAILED``.
    """

    async def on_metadata(self, metadata: dict[str, AmfValue]) -> None: ...

    async def on_media(self, tag: MediaTag) -> None: ...

    async def on_end(self, end: PublishEnd) -> None: ...


type SinkFactory = Callable[[PublishInfo], Awaitable[PublishSink]]


def _strip_query(value: str) -> str:
    return value.split("?", 1)[0]


def redact_app(app: str) -> str:
    """``app`` safe to log: no query, at most ``<app_name>/<input id>`` (a key pasted into the
    server URL would be the third segment)."""
    parts = _strip_query(app).strip("/").split("/")
    return "/".join(parts[:2]) + ("/..." if len(parts) > 2 else "")


def redact_tc_url(tc_url: str) -> str:
    """``tcUrl`` safe to log: scheme, host and the redacted app."""
    scheme, sep, rest = tc_url.partition("://")
    if not sep:
        return redact_app(tc_url)
    host, _, path = rest.partition("/")
    return f"{scheme}://{host}/{redact_app(path)}"


def app_is_ours(app: str, app_name: str = "live") -> bool:
    app = _strip_query(app).strip("/")
    return app == app_name or app.startswith(app_name + "/")


def parse_publish_target(app: str, name: str, *, app_name: str = "live") -> PublishTarget:
    """Split (app, publish name) into the external input id and the stream key."""
    app = _strip_query(app).strip("/")
    name = _strip_query(name).strip("/")
    expected = (
        f"expected rtmp://<host>/{app_name}/<external_input_id> with the stream key as "
        "the stream name"
    )
    if app == app_name:
        input_id, sep, key = name.partition("/")
        if not sep:
            raise InvalidPublishTarget(f"no input id in the stream name; {expected}")
    elif app.startswith(app_name + "/"):
        input_id, key = app[len(app_name) + 1 :], name
    else:
        raise InvalidPublishTarget(f"unknown application {redact_app(app)!r}; {expected}")
    if not _INPUT_ID.fullmatch(input_id):
        raise InvalidPublishTarget(f"malformed external input id; {expected}")
    if not key:
        raise InvalidPublishTarget(f"empty stream key; {expected}")
    if not _KEY.fullmatch(key):
        raise InvalidPublishTarget("malformed stream key")
    return PublishTarget(input_id, key)
