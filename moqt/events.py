"""What a :class:`~moqt.session.Session` reports to the application.

Every ``Session`` input method (``stream_data_received``, ``datagram_received``,
``handle_timer``, ...) returns a ``list[Event]`` in the order things happened.
Events are frozen, slotted dataclasses; they never reference mutable session state.

Request ids in events are always the id of the *request* the event is about
(the SUBSCRIBE, FETCH, PUBLISH, ... that created it), whoever sent it.  The
``*Requested`` events are requests from the peer that the application must answer
with the matching ``Session.accept_*`` method or ``Session.reject_request``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import RequestErrorCode
from .types import (
    AuthToken,
    Extensions,
    FetchType,
    GroupOrder,
    Location,
    Namespace,
    ObjectStatus,
    SubscriptionFilter,
    TrackName,
)

__all__ = [
    "Event",
    "FetchAccepted",
    "FetchCancelled",
    "FetchRequested",
    "FetchStreamEnded",
    "FetchStreamReset",
    "GoawayReceived",
    "NamespaceAnnounced",
    "NamespaceWithdrawn",
    "ObjectReceived",
    "ObjectSource",
    "PublishAccepted",
    "PublishDoneReceived",
    "PublishNamespaceAccepted",
    "PublishNamespaceCancelled",
    "PublishNamespaceDone",
    "PublishNamespaceRequested",
    "PublishRequested",
    "RequestKind",
    "RequestRejected",
    "RequestsUnblocked",
    "SessionClosed",
    "SetupCompleted",
    "SubgroupStreamEnded",
    "SubgroupStreamOpened",
    "SubgroupStreamReset",
    "SubgroupStreamStopped",
    "SubscribeAccepted",
    "SubscribeNamespaceAccepted",
    "SubscribeNamespaceEnded",
    "SubscribeNamespaceRequested",
    "SubscribeRequested",
    "SubscriptionUpdated",
    "TrackStatusReceived",
    "TrackStatusRequested",
    "Unsubscribed",
    "UpdateAccepted",
]


class RequestKind(enum.Enum):
    """The kind of request a request id belongs to."""

    SUBSCRIBE = "subscribe"
    FETCH = "fetch"
    PUBLISH = "publish"
    PUBLISH_NAMESPACE = "publish_namespace"
    SUBSCRIBE_NAMESPACE = "subscribe_namespace"
    TRACK_STATUS = "track_status"
    REQUEST_UPDATE = "request_update"


class ObjectSource(enum.Enum):
    """How an object arrived."""

    SUBGROUP = "subgroup"
    DATAGRAM = "datagram"
    FETCH = "fetch"


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every session event."""


# --- session ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetupCompleted(Event):
    """CLIENT_SETUP/SERVER_SETUP exchanged; requests may now be sent.

    On a server, ``path``/``authority``/``auth_tokens``/``peer_implementation`` are
    what the client sent; the application may still ``close()`` (e.g. with
    INVALID_PATH or UNAUTHORIZED) after inspecting them.  ``peer_max_request_id``
    is the MAX_REQUEST_ID the peer granted (requests with smaller ids may be sent).
    """

    version: int
    path: str | None
    authority: str | None
    auth_tokens: tuple[AuthToken, ...]
    peer_implementation: str | None
    peer_max_request_id: int


@dataclass(frozen=True, slots=True)
class GoawayReceived(Event):
    """The peer sent GOAWAY; ``new_uri`` is empty when the current URI is to be reused."""

    new_uri: str


@dataclass(frozen=True, slots=True)
class RequestsUnblocked(Event):
    """The peer raised MAX_REQUEST_ID after a request of ours was refused as blocked."""

    max_request_id: int


@dataclass(frozen=True, slots=True)
class SessionClosed(Event):
    """The session ended; this is always the last event.

    ``code`` is the session termination code (:class:`~moqt.errors.SessionCloseCode`
    value; an unknown peer code is passed through as int).  ``by_peer`` is True when
    the peer (or the transport) closed it, False when we did, including when we
    closed because the peer violated the protocol.
    """

    code: int
    reason: str
    by_peer: bool


# --- replies to our requests ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestRejected(Event):
    """The peer refused one of our requests (REQUEST_ERROR in 16; SUBSCRIBE_ERROR,
    FETCH_ERROR, PUBLISH_ERROR, PUBLISH_NAMESPACE_ERROR, SUBSCRIBE_NAMESPACE_ERROR or
    TRACK_STATUS_ERROR in 14).

    ``code`` is the wire code as received; ``error`` is its draft-16 meaning (draft-14
    codes are translated per message type) or None when unknown.  ``retry_interval``
    is draft-16's Retry Interval (0 = do not retry; always 0 in draft-14).
    """

    request_id: int
    kind: RequestKind
    code: int
    reason: str
    error: RequestErrorCode | None
    retry_interval: int = 0


@dataclass(frozen=True, slots=True)
class SubscribeAccepted(Event):
    """SUBSCRIBE_OK for our subscription; objects will arrive with ``track_alias``."""

    request_id: int
    track_alias: int
    expires: int
    group_order: GroupOrder
    largest: Location | None
    extensions: Extensions = ()


@dataclass(frozen=True, slots=True)
class UpdateAccepted(Event):
    """Draft-16 REQUEST_OK for our REQUEST_UPDATE (``update_request_id``) of request ``request_id``."""

    request_id: int
    update_request_id: int
    largest: Location | None


@dataclass(frozen=True, slots=True)
class PublishAccepted(Event):
    """PUBLISH_OK for our PUBLISH: the subscriber's wishes for the subscription."""

    request_id: int
    forward: bool
    subscriber_priority: int
    group_order: GroupOrder
    filter: SubscriptionFilter | None
    delivery_timeout: int | None


@dataclass(frozen=True, slots=True)
class PublishNamespaceAccepted(Event):
    """The peer accepted our PUBLISH_NAMESPACE."""

    request_id: int
    namespace: Namespace


@dataclass(frozen=True, slots=True)
class PublishNamespaceCancelled(Event):
    """The peer revoked its acceptance of our PUBLISH_NAMESPACE (PUBLISH_NAMESPACE_CANCEL)."""

    request_id: int
    namespace: Namespace
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SubscribeNamespaceAccepted(Event):
    """The peer accepted our SUBSCRIBE_NAMESPACE."""

    request_id: int
    prefix: Namespace


@dataclass(frozen=True, slots=True)
class NamespaceAnnounced(Event):
    """Draft-16 NAMESPACE on our SUBSCRIBE_NAMESPACE stream; ``namespace`` is prefix + suffix."""

    request_id: int
    namespace: Namespace


@dataclass(frozen=True, slots=True)
class NamespaceWithdrawn(Event):
    """Draft-16 NAMESPACE_DONE on our SUBSCRIBE_NAMESPACE stream; ``namespace`` is prefix + suffix."""

    request_id: int
    namespace: Namespace


@dataclass(frozen=True, slots=True)
class FetchAccepted(Event):
    """FETCH_OK for our fetch."""

    request_id: int
    end_of_track: bool
    end_location: Location
    group_order: GroupOrder
    extensions: Extensions = ()


@dataclass(frozen=True, slots=True)
class TrackStatusReceived(Event):
    """The answer to our TRACK_STATUS (REQUEST_OK in 16, TRACK_STATUS_OK in 14)."""

    request_id: int
    largest: Location | None
    expires: int
    group_order: GroupOrder


@dataclass(frozen=True, slots=True)
class PublishDoneReceived(Event):
    """PUBLISH_DONE for a subscription we receive (ours or a PUBLISH we accepted).

    ``code`` is the draft-16 status value (:class:`~moqt.errors.PublishDoneCode`;
    draft-14's MALFORMED_TRACK 0x7 is translated to 0x12).
    ``stream_count`` is the number of subgroup streams the publisher opened (2^62-1 when
    it does not know).  The session keeps delivering late objects of the subscription
    for ``done_linger`` seconds (streams beyond ``stream_count`` are dropped), then
    forgets it.
    """

    request_id: int
    code: int
    stream_count: int
    reason: str


# --- requests from the peer (the application answers) -----------------------------


@dataclass(frozen=True, slots=True)
class SubscribeRequested(Event):
    """The peer wants to subscribe to a track we publish.

    Answer with ``Session.accept_subscribe(request_id, ...)`` or
    ``Session.reject_request(request_id, RequestErrorCode.DOES_NOT_EXIST, ...)``.
    ``group_order`` ORIGINAL means "the publisher's order"; ``delivery_timeout`` is in ms.
    """

    request_id: int
    namespace: Namespace
    name: TrackName
    filter: SubscriptionFilter
    subscriber_priority: int
    group_order: GroupOrder
    forward: bool
    delivery_timeout: int | None
    auth_tokens: tuple[AuthToken, ...]
    # Draft-16 NEW_GROUP_REQUEST ("largest group known + 1", 0 = none known), if sent.
    new_group_request: int | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionUpdated(Event):
    """The subscriber changed a subscription we publish (REQUEST_UPDATE / SUBSCRIBE_UPDATE).

    ``request_id`` is the subscription; ``update_request_id`` the update's own id.  In
    draft-16 answer with ``Session.accept_update(update_request_id, ...)`` or
    ``reject_request(update_request_id, ...)`` (which also ends the subscription with
    PUBLISH_DONE UPDATE_FAILED); draft-14 updates have no answer.  Fields are the
    values in force after the update.
    """

    request_id: int
    update_request_id: int
    filter: SubscriptionFilter
    subscriber_priority: int
    forward: bool
    delivery_timeout: int | None
    # Draft-16 NEW_GROUP_REQUEST in this update, if any.
    new_group_request: int | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribed(Event):
    """The subscriber ended a subscription we publish; its open streams were reset."""

    request_id: int


@dataclass(frozen=True, slots=True)
class PublishRequested(Event):
    """The peer wants to publish a track to us (PUBLISH); objects may already arrive.

    Answer with ``Session.accept_publish(request_id, ...)`` or ``reject_request``.
    """

    request_id: int
    namespace: Namespace
    name: TrackName
    track_alias: int
    group_order: GroupOrder
    largest: Location | None
    forward: bool
    expires: int
    auth_tokens: tuple[AuthToken, ...]
    extensions: Extensions = ()


@dataclass(frozen=True, slots=True)
class PublishNamespaceRequested(Event):
    """The peer announces a namespace (PUBLISH_NAMESPACE).

    Answer with ``Session.accept_publish_namespace`` or ``reject_request``.
    """

    request_id: int
    namespace: Namespace
    auth_tokens: tuple[AuthToken, ...]


@dataclass(frozen=True, slots=True)
class PublishNamespaceDone(Event):
    """The peer withdrew a namespace it announced (PUBLISH_NAMESPACE_DONE)."""

    request_id: int
    namespace: Namespace


@dataclass(frozen=True, slots=True)
class SubscribeNamespaceRequested(Event):
    """The peer subscribes to namespaces under ``prefix`` (SUBSCRIBE_NAMESPACE).

    Answer with ``Session.accept_subscribe_namespace`` or ``reject_request``.
    ``options`` (draft-16): 0 = PUBLISH only, 1 = NAMESPACE only, 2 = both; always 2 in 14.
    Overlapping prefixes are refused by the session (PREFIX_OVERLAP) before this event.
    """

    request_id: int
    prefix: Namespace
    options: int
    forward: bool
    auth_tokens: tuple[AuthToken, ...]


@dataclass(frozen=True, slots=True)
class SubscribeNamespaceEnded(Event):
    """A namespace subscription ended: the peer cancelled it (``by_peer``), or ours ended."""

    request_id: int
    prefix: Namespace
    by_peer: bool


@dataclass(frozen=True, slots=True)
class FetchRequested(Event):
    """The peer fetches past objects of a track we publish.

    For joining fetches the session resolves the track and range from the joined
    subscription (``joining_request_id``): ``start``/``end`` are the inclusive start and
    the exclusive end ("End Location, plus 1": object 0 means the whole group) per
    draft-16 "Joining Fetch Range Calculation".  They are None only when the joined
    subscription has not been accepted yet.  Answer with ``Session.accept_fetch`` or
    ``reject_request``; send objects with ``open_fetch_stream``.
    """

    request_id: int
    fetch_type: FetchType
    namespace: Namespace
    name: TrackName
    start: Location | None
    end: Location | None
    subscriber_priority: int
    group_order: GroupOrder
    joining_request_id: int | None
    joining_start: int | None
    auth_tokens: tuple[AuthToken, ...]


@dataclass(frozen=True, slots=True)
class FetchCancelled(Event):
    """The peer cancelled a fetch we serve (FETCH_CANCEL); its stream was reset."""

    request_id: int


@dataclass(frozen=True, slots=True)
class TrackStatusRequested(Event):
    """The peer asks for a track's status; answer with ``answer_track_status`` or ``reject_request``."""

    request_id: int
    namespace: Namespace
    name: TrackName
    auth_tokens: tuple[AuthToken, ...]


# --- data -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectReceived(Event):
    """One object of a subscription (subgroup stream or datagram) or a fetch.

    ``request_id`` is the subscription (SUBSCRIBE or accepted PUBLISH) or the FETCH.
    ``track_alias`` is None for fetch objects; ``subgroup_id`` is None for datagrams
    (and fetch objects sent as datagrams).  ``stream_id`` is None for datagrams.
    ``end_of_group`` is set for a datagram with the END_OF_GROUP type bit.
    """

    request_id: int
    track_alias: int | None
    group_id: int
    subgroup_id: int | None
    object_id: int
    publisher_priority: int
    status: ObjectStatus
    payload: bytes
    extensions: Extensions
    source: ObjectSource
    stream_id: int | None
    end_of_group: bool = False


@dataclass(frozen=True, slots=True)
class SubgroupStreamOpened(Event):
    """A subgroup stream of subscription ``request_id`` began (its header), before its
    objects.  ``subgroup_id`` is None when the header says "the first object's id"
    (the objects carry it).  ``end_of_group``: this subgroup holds the group's last
    object, so its FIN ends the group (draft-16 "Subgroup Header")."""

    request_id: int
    stream_id: int
    group_id: int
    subgroup_id: int | None
    publisher_priority: int
    end_of_group: bool


@dataclass(frozen=True, slots=True)
class SubgroupStreamEnded(Event):
    """A subgroup stream ended with FIN: every object of it was received."""

    request_id: int
    stream_id: int
    group_id: int
    subgroup_id: int


@dataclass(frozen=True, slots=True)
class SubgroupStreamReset(Event):
    """The publisher reset a subgroup stream; objects after the last received may exist."""

    request_id: int
    stream_id: int
    group_id: int
    subgroup_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class SubgroupStreamStopped(Event):
    """The subscriber sent STOP_SENDING on one of our subgroup streams; the session
    reset it and later writes on that handle are dropped."""

    request_id: int
    stream_id: int
    group_id: int
    subgroup_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class FetchStreamEnded(Event):
    """Our fetch's stream ended with FIN: the fetch is complete and forgotten."""

    request_id: int
    stream_id: int


@dataclass(frozen=True, slots=True)
class FetchStreamReset(Event):
    """Our fetch's stream was reset by the publisher; the fetch is over."""

    request_id: int
    stream_id: int
    error_code: int
