"""MoQT control messages of drafts 16 and 14: one frozen dataclass per wire message.

Encode with :func:`encode_control` (``Type (i), Length (16), Payload``) and decode
with :func:`decode_control`; every call takes the version explicitly. Where a message
exists in both drafts one class serves both and switches layout on the version.
"""

from ._base import (
    MAX_CONTROL_PAYLOAD,
    MAX_GOAWAY_URI_LENGTH,
    MAX_REASON_PHRASE_LENGTH,
    ControlMessage,
    decode_control,
    encode_control,
    message_class,
    message_types,
)
from ._params import (
    MAX_KVP_VALUE_LENGTH,
    AuthToken,
    AuthTokenAliasType,
    KeyValuePairs,
    MessageParameters,
    MessageParameterType,
    SetupParameters,
    SetupParameterType,
    TrackExtensions,
    TrackExtensionType,
)
from .fetch import Fetch, FetchCancel, FetchError, FetchOk, JoiningFetch, StandaloneFetch
from .namespace import (
    Namespace,
    NamespaceDone,
    PublishNamespace,
    PublishNamespaceCancel,
    PublishNamespaceDone,
    PublishNamespaceError,
    PublishNamespaceOk,
    SubscribeNamespace,
    SubscribeNamespaceError,
    SubscribeNamespaceOk,
    SubscribeOptions,
    UnsubscribeNamespace,
)
from .publish import Publish, PublishDone, PublishError, PublishOk
from .session_control import Goaway, MaxRequestId, RequestError, RequestOk, RequestsBlocked
from .setup import ClientSetup, ServerSetup
from .subscribe import (
    DEFAULT_SUBSCRIBER_PRIORITY,
    RequestUpdate,
    Subscribe,
    SubscribeError,
    SubscribeOk,
    SubscribeUpdate,
    Unsubscribe,
)
from .track_status import TrackStatus, TrackStatusError, TrackStatusOk

__all__ = [
    "DEFAULT_SUBSCRIBER_PRIORITY",
    "MAX_CONTROL_PAYLOAD",
    "MAX_GOAWAY_URI_LENGTH",
    "MAX_KVP_VALUE_LENGTH",
    "MAX_REASON_PHRASE_LENGTH",
    "AuthToken",
    "AuthTokenAliasType",
    "ClientSetup",
    "ControlMessage",
    "Fetch",
    "FetchCancel",
    "FetchError",
    "FetchOk",
    "Goaway",
    "JoiningFetch",
    "KeyValuePairs",
    "MaxRequestId",
    "MessageParameterType",
    "MessageParameters",
    "Namespace",
    "NamespaceDone",
    "Publish",
    "PublishDone",
    "PublishError",
    "PublishNamespace",
    "PublishNamespaceCancel",
    "PublishNamespaceDone",
    "PublishNamespaceError",
    "PublishNamespaceOk",
    "PublishOk",
    "RequestError",
    "RequestOk",
    "RequestUpdate",
    "RequestsBlocked",
    "ServerSetup",
    "SetupParameterType",
    "SetupParameters",
    "StandaloneFetch",
    "Subscribe",
    "SubscribeError",
    "SubscribeNamespace",
    "SubscribeNamespaceError",
    "SubscribeNamespaceOk",
    "SubscribeOk",
    "SubscribeOptions",
    "SubscribeUpdate",
    "TrackExtensionType",
    "TrackExtensions",
    "TrackStatus",
    "TrackStatusError",
    "TrackStatusOk",
    "Unsubscribe",
    "UnsubscribeNamespace",
    "decode_control",
    "encode_control",
    "message_class",
    "message_types",
]
