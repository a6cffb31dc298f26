"""Key-Value-Pairs: setup parameters, message parameters and draft-16 track extensions.

Wire form (both drafts): ``Type (i), [Length (i),] Value (..)`` where an even Type
carries one varint and an odd Type carries ``Length`` bytes (at most 2^16-1).
Draft-16 writes each Type as a *delta* from the previous one (so pairs are sent in
ascending Type order); draft-14 writes absolute Types.

Values are kept as ``(type, int | bytes)`` pairs in ascending type order (stable for
repeated types), so unknown pairs survive a decode/encode round trip. Subclasses add
typed accessors and the checks the drafts require of known types on receipt.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Self

from .._buffer import MAX_VARINT, Buffer, NeedMoreData, Writer
from ..errors import LocalError, ProtocolViolation, SessionCloseCode, SessionError
from ..types import GroupOrder, Location, SubscriptionFilter
from ..version import DRAFT_16
from ._base import encode_filter, is_draft16, pull_filter, pull_location
from ._token import AuthToken, AuthTokenAliasType

__all__ = [
    "MAX_KVP_VALUE_LENGTH",
    "AuthToken",
    "AuthTokenAliasType",
    "KeyValuePairs",
    "MessageParameterType",
    "MessageParameters",
    "SetupParameterType",
    "SetupParameters",
    "TrackExtensionType",
    "TrackExtensions",
]

MAX_KVP_VALUE_LENGTH = 0xFFFF
_MAX_TYPE = (1 << 64) - 1

KeyValue = tuple[int, int | bytes]


class SetupParameterType(enum.IntEnum):
    """CLIENT_SETUP / SERVER_SETUP parameters (one namespace for all versions).

    MOQT_IMPLEMENTATION is 0x07: draft-14's text says 0x05, which collides with
    AUTHORITY; draft-15 corrected it to 0x07 and aiomoqt uses 0x07 for both drafts.
    """

    PATH = 0x01
    MAX_REQUEST_ID = 0x02
    AUTHORIZATION_TOKEN = 0x03
    MAX_AUTH_TOKEN_CACHE_SIZE = 0x04
    AUTHORITY = 0x05
    MOQT_IMPLEMENTATION = 0x07


class MessageParameterType(enum.IntEnum):
    """Version-specific message parameters.

    Draft-14 defines DELIVERY_TIMEOUT, AUTHORIZATION_TOKEN and MAX_CACHE_DURATION;
    draft-16 defines all but MAX_CACHE_DURATION (a track extension there).
    """

    DELIVERY_TIMEOUT = 0x02
    AUTHORIZATION_TOKEN = 0x03
    MAX_CACHE_DURATION = 0x04
    EXPIRES = 0x08
    LARGEST_OBJECT = 0x09
    FORWARD = 0x10
    SUBSCRIBER_PRIORITY = 0x20
    SUBSCRIPTION_FILTER = 0x21
    GROUP_ORDER = 0x22
    NEW_GROUP_REQUEST = 0x32


class TrackExtensionType(enum.IntEnum):
    """Draft-16 track extension headers (SUBSCRIBE_OK, PUBLISH, FETCH_OK)."""

    DELIVERY_TIMEOUT = 0x02
    MAX_CACHE_DURATION = 0x04
    IMMUTABLE_EXTENSIONS = 0x0B
    DEFAULT_PUBLISHER_PRIORITY = 0x0E
    DEFAULT_PUBLISHER_GROUP_ORDER = 0x22
    DYNAMIC_GROUPS = 0x30


def _kvf(reason: str) -> SessionError:
    return SessionError(reason, SessionCloseCode.KEY_VALUE_FORMATTING_ERROR)


def _parse_location(raw: bytes, what: str) -> Location:
    buf = Buffer(raw)
    try:
        loc = pull_location(buf)
    except NeedMoreData:
        raise _kvf(f"{what} is not a Location") from None
    if not buf.eof():
        raise _kvf(f"{what} has bytes after its Location")
    return loc


def encode_location_value(loc: Location) -> bytes:
    return Writer().push_varint(loc.group).push_varint(loc.object).data


def _parse_filter(raw: bytes) -> SubscriptionFilter:
    buf = Buffer(raw)
    try:
        flt = pull_filter(buf)
    except NeedMoreData:
        raise ProtocolViolation("SUBSCRIPTION_FILTER shorter than its filter") from None
    if not buf.eof():
        raise ProtocolViolation("SUBSCRIPTION_FILTER longer than its filter")
    return flt


def _check_pair(key: int, value: object) -> None:
    if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key <= _MAX_TYPE:
        raise ValueError(f"key-value type must be an int in 0..2^64-1, got {key!r}")
    if key % 2 == 0:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_VARINT:
            raise ValueError(f"even type {key:#x} takes a varint value, got {value!r}")
    elif not isinstance(value, bytes) or len(value) > MAX_KVP_VALUE_LENGTH:
        raise ValueError(f"odd type {key:#x} takes at most {MAX_KVP_VALUE_LENGTH} bytes")


@dataclass(frozen=True, slots=True)
class KeyValuePairs:
    """An ordered multiset of ``(type, value)``: even types hold ints, odd types bytes.

    Pairs are kept sorted by type (stable), which is the draft-16 wire order and a valid
    draft-14 order. Construction raises ValueError for a value of the wrong kind.
    """

    items: tuple[KeyValue, ...] = ()

    # Known types that may appear at most once; subclasses fill these in.
    _SINGLE: ClassVar[frozenset[int]] = frozenset()

    def __post_init__(self) -> None:
        items = tuple(self.items)
        for key, value in items:
            _check_pair(key, value)
        object.__setattr__(self, "items", tuple(sorted(items, key=lambda kv: kv[0])))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[KeyValue]:
        return iter(self.items)

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self.items)

    def get(self, key: int) -> int | bytes | None:
        """The first value of ``key``, or None."""
        for k, v in self.items:
            if k == key:
                return v
        return None

    def get_all(self, key: int) -> tuple[int | bytes, ...]:
        return tuple(v for k, v in self.items if k == key)

    def _int(self, key: int) -> int | None:
        value = self.get(key)
        return value if isinstance(value, int) else None

    def _bytes(self, key: int) -> bytes | None:
        value = self.get(key)
        return value if isinstance(value, bytes) else None

    def types(self) -> frozenset[int]:
        return frozenset(k for k, _ in self.items)

    def with_value(self, key: int, value: int | bytes | None) -> Self:
        """A copy where ``key`` has exactly ``value`` (or is absent when None)."""
        kept = tuple(kv for kv in self.items if kv[0] != key)
        return type(self)(kept if value is None else (*kept, (key, value)))

    def without(self, *keys: int) -> Self:
        return type(self)(tuple(kv for kv in self.items if kv[0] not in keys))

    def with_items(self, *pairs: KeyValue) -> Self:
        return type(self)((*self.items, *pairs))

    # --- wire ---------------------------------------------------------------------

    def encode(self, w: Writer, version: int) -> None:
        """Write the pairs (no count) in ``version``'s form."""
        delta = is_draft16(version)
        prev = 0
        for key, value in self.items:
            wire_key = key - prev if delta else key
            prev = key
            if wire_key > MAX_VARINT:
                raise LocalError(f"type {key:#x} does not fit a varint in this version")
            w.push_varint(wire_key)
            if isinstance(value, int):
                w.push_varint(value)
            else:
                w.push_length_prefixed(value)

    def encode_counted(self, w: Writer, version: int) -> None:
        """``Number of Parameters (i)`` then the pairs."""
        w.push_varint(len(self.items))
        self.encode(w, version)

    @classmethod
    def decode(cls, buf: Buffer, version: int, count: int | None) -> Self:
        """Read ``count`` pairs (or, when None, pairs up to the end of ``buf``) and check them."""
        delta = is_draft16(version)
        items: list[KeyValue] = []
        prev = 0
        n = 0
        while (buf.remaining > 0) if count is None else (n < count):
            key = buf.pull_varint()
            if delta:
                key += prev
                if key > _MAX_TYPE:
                    raise ProtocolViolation("key-value delta type overflows 2^64-1")
                prev = key
            if key % 2 == 0:
                items.append((key, buf.pull_varint()))
            else:
                size = buf.pull_varint()
                if size > MAX_KVP_VALUE_LENGTH:
                    raise ProtocolViolation(
                        f"key-value length {size} exceeds {MAX_KVP_VALUE_LENGTH}"
                    )
                items.append((key, buf.pull_bytes(size)))
            n += 1
        result = cls(tuple(items))
        result.validate(version)
        return result

    @classmethod
    def decode_counted(cls, buf: Buffer, version: int) -> Self:
        """``Number of Parameters (i)`` then that many pairs."""
        return cls.decode(buf, version, buf.pull_varint())

    def _single_types(self, version: int) -> frozenset[int]:
        return self._SINGLE

    def validate(self, version: int) -> None:
        """Raise the draft's PeerError for a known type with a bad value (on receipt)."""
        single = self._single_types(version)
        seen: set[int] = set()
        for key, _ in self.items:
            if key in single:
                if key in seen:
                    raise ProtocolViolation(f"duplicate parameter {key:#x}")
                seen.add(key)


@dataclass(frozen=True, slots=True)
class SetupParameters(KeyValuePairs):
    """CLIENT_SETUP / SERVER_SETUP parameters; unknown ones are kept (and may repeat)."""

    _SINGLE: ClassVar[frozenset[int]] = frozenset(
        {
            SetupParameterType.PATH,
            SetupParameterType.MAX_REQUEST_ID,
            SetupParameterType.MAX_AUTH_TOKEN_CACHE_SIZE,
            SetupParameterType.AUTHORITY,
            SetupParameterType.MOQT_IMPLEMENTATION,
        }
    )

    @classmethod
    def build(
        cls,
        *,
        path: str | None = None,
        authority: str | None = None,
        max_request_id: int | None = None,
        max_auth_token_cache_size: int | None = None,
        implementation: str | None = None,
        auth_tokens: tuple[AuthToken, ...] = (),
        extra: tuple[KeyValue, ...] = (),
    ) -> SetupParameters:
        items: list[KeyValue] = []
        if path is not None:
            items.append((SetupParameterType.PATH, path.encode()))
        if max_request_id is not None:
            items.append((SetupParameterType.MAX_REQUEST_ID, max_request_id))
        items += [(SetupParameterType.AUTHORIZATION_TOKEN, t.encode()) for t in auth_tokens]
        if max_auth_token_cache_size is not None:
            items.append((SetupParameterType.MAX_AUTH_TOKEN_CACHE_SIZE, max_auth_token_cache_size))
        if authority is not None:
            items.append((SetupParameterType.AUTHORITY, authority.encode()))
        if implementation is not None:
            items.append((SetupParameterType.MOQT_IMPLEMENTATION, implementation.encode()))
        return cls((*items, *extra))

    @property
    def path(self) -> str | None:
        raw = self._bytes(SetupParameterType.PATH)
        return None if raw is None else raw.decode(errors="replace")

    @property
    def authority(self) -> str | None:
        raw = self._bytes(SetupParameterType.AUTHORITY)
        return None if raw is None else raw.decode(errors="replace")

    @property
    def max_request_id(self) -> int | None:
        return self._int(SetupParameterType.MAX_REQUEST_ID)

    @property
    def max_auth_token_cache_size(self) -> int | None:
        return self._int(SetupParameterType.MAX_AUTH_TOKEN_CACHE_SIZE)

    @property
    def implementation(self) -> str | None:
        raw = self._bytes(SetupParameterType.MOQT_IMPLEMENTATION)
        return None if raw is None else raw.decode(errors="replace")

    @property
    def auth_tokens(self) -> tuple[AuthToken, ...]:
        return tuple(
            AuthToken.decode(v)
            for v in self.get_all(SetupParameterType.AUTHORIZATION_TOKEN)
            if isinstance(v, bytes)
        )

    def validate(self, version: int) -> None:
        KeyValuePairs.validate(self, version)
        _ = self.auth_tokens  # parses every token (KEY_VALUE_FORMATTING_ERROR)
        for key, code in (
            (SetupParameterType.PATH, SessionCloseCode.MALFORMED_PATH),
            (SetupParameterType.AUTHORITY, SessionCloseCode.MALFORMED_AUTHORITY),
        ):
            raw = self._bytes(key)
            if raw is not None:
                try:
                    raw.decode()
                except UnicodeDecodeError:
                    raise SessionError(f"{key.name} is not UTF-8", code) from None


_D16_MESSAGE_PARAMS = frozenset(MessageParameterType) - {MessageParameterType.MAX_CACHE_DURATION}
_D14_MESSAGE_PARAMS = frozenset(
    {
        MessageParameterType.DELIVERY_TIMEOUT,
        MessageParameterType.AUTHORIZATION_TOKEN,
        MessageParameterType.MAX_CACHE_DURATION,
    }
)


def known_message_parameters(version: int) -> frozenset[int]:
    """The message parameter types ``version`` defines."""
    return frozenset(_D16_MESSAGE_PARAMS if is_draft16(version) else _D14_MESSAGE_PARAMS)


@dataclass(frozen=True, slots=True)
class MessageParameters(KeyValuePairs):
    """Parameters of every control message other than the setup messages.

    Unknown parameters are kept (draft-14 ignores them; for draft-16, which closes the
    session on them, :func:`~moqt.messages.decode_control` applies that rule). Known parameters may not repeat (except
    AUTHORIZATION_TOKEN), and FORWARD, SUBSCRIBER_PRIORITY, GROUP_ORDER, draft-16
    DELIVERY_TIMEOUT and SUBSCRIPTION_FILTER values are range-checked.
    """

    _SINGLE: ClassVar[frozenset[int]] = frozenset(MessageParameterType) - {
        MessageParameterType.AUTHORIZATION_TOKEN
    }

    @classmethod
    def build(
        cls,
        *,
        auth_tokens: tuple[AuthToken, ...] = (),
        delivery_timeout: int | None = None,
        max_cache_duration: int | None = None,
        expires: int | None = None,
        largest_object: Location | None = None,
        forward: bool | None = None,
        subscriber_priority: int | None = None,
        subscription_filter: SubscriptionFilter | None = None,
        group_order: GroupOrder | None = None,
        new_group_request: int | None = None,
        extra: tuple[KeyValue, ...] = (),
    ) -> MessageParameters:
        T = MessageParameterType
        if subscriber_priority is not None and not 0 <= subscriber_priority <= 255:
            raise ValueError(f"subscriber priority {subscriber_priority} outside 0..255")
        items: list[KeyValue] = [(T.AUTHORIZATION_TOKEN, t.encode()) for t in auth_tokens]
        ints = (
            (T.DELIVERY_TIMEOUT, delivery_timeout),
            (T.MAX_CACHE_DURATION, max_cache_duration),
            (T.EXPIRES, expires),
            (T.FORWARD, None if forward is None else int(forward)),
            (T.SUBSCRIBER_PRIORITY, subscriber_priority),
            (T.GROUP_ORDER, None if group_order is None else int(group_order)),
            (T.NEW_GROUP_REQUEST, new_group_request),
        )
        items += [(k, v) for k, v in ints if v is not None]
        if largest_object is not None:
            items.append((T.LARGEST_OBJECT, encode_location_value(largest_object)))
        if subscription_filter is not None:
            items.append((T.SUBSCRIPTION_FILTER, encode_filter(subscription_filter)))
        return cls((*items, *extra))

    def _single_types(self, version: int) -> frozenset[int]:
        return known_message_parameters(version) - {MessageParameterType.AUTHORIZATION_TOKEN}

    def unknown_types(self, version: int) -> frozenset[int]:
        """Types ``version`` does not define (draft-16 closes the session on these;
        :func:`~moqt.messages.decode_control` checks unless ``strict_parameters=False``)."""
        return self.types() - known_message_parameters(version)

    @property
    def auth_tokens(self) -> tuple[AuthToken, ...]:
        return tuple(
            AuthToken.decode(v)
            for v in self.get_all(MessageParameterType.AUTHORIZATION_TOKEN)
            if isinstance(v, bytes)
        )

    @property
    def delivery_timeout(self) -> int | None:
        return self._int(MessageParameterType.DELIVERY_TIMEOUT)

    @property
    def max_cache_duration(self) -> int | None:
        """Draft-14 only (draft-16 moved it to a track extension)."""
        return self._int(MessageParameterType.MAX_CACHE_DURATION)

    @property
    def expires(self) -> int | None:
        return self._int(MessageParameterType.EXPIRES)

    @property
    def largest_object(self) -> Location | None:
        raw = self._bytes(MessageParameterType.LARGEST_OBJECT)
        return None if raw is None else _parse_location(raw, "LARGEST_OBJECT")

    @property
    def forward(self) -> bool | None:
        value = self._int(MessageParameterType.FORWARD)
        return None if value is None else value == 1

    @property
    def subscriber_priority(self) -> int | None:
        return self._int(MessageParameterType.SUBSCRIBER_PRIORITY)

    @property
    def subscription_filter(self) -> SubscriptionFilter | None:
        raw = self._bytes(MessageParameterType.SUBSCRIPTION_FILTER)
        return None if raw is None else _parse_filter(raw)

    @property
    def group_order(self) -> GroupOrder | None:
        value = self._int(MessageParameterType.GROUP_ORDER)
        return None if value is None else GroupOrder(value)

    @property
    def new_group_request(self) -> int | None:
        return self._int(MessageParameterType.NEW_GROUP_REQUEST)

    def validate(self, version: int) -> None:
        KeyValuePairs.validate(self, version)
        T = MessageParameterType
        known = known_message_parameters(version)
        present = self.types() & known
        _ = self.auth_tokens  # parses every token (KEY_VALUE_FORMATTING_ERROR)
        if version == DRAFT_16 and self.delivery_timeout == 0:
            raise ProtocolViolation("DELIVERY_TIMEOUT of 0")
        if T.LARGEST_OBJECT in present:
            _ = self.largest_object  # parses (KEY_VALUE_FORMATTING_ERROR)
        if T.SUBSCRIPTION_FILTER in present:
            _ = self.subscription_filter  # parses (PROTOCOL_VIOLATION)
        for key, low, high in (
            (T.FORWARD, 0, 1),
            (T.SUBSCRIBER_PRIORITY, 0, 255),
            (T.GROUP_ORDER, 1, 2),
        ):
            value = self._int(key) if key in present else None
            if value is not None and not low <= value <= high:
                raise ProtocolViolation(f"{key.name} is {value} ({low}..{high})")


@dataclass(frozen=True, slots=True)
class TrackExtensions(KeyValuePairs):
    """Draft-16 Track Extensions: key-value pairs that run to the end of the message.

    Unknown extensions are kept (relays forward them unchanged).
    """

    _SINGLE: ClassVar[frozenset[int]] = frozenset(TrackExtensionType)

    @classmethod
    def build(
        cls,
        *,
        delivery_timeout: int | None = None,
        max_cache_duration: int | None = None,
        default_publisher_priority: int | None = None,
        default_publisher_group_order: GroupOrder | None = None,
        dynamic_groups: bool | None = None,
        immutable: TrackExtensions | None = None,
        extra: tuple[KeyValue, ...] = (),
    ) -> TrackExtensions:
        T = TrackExtensionType
        if default_publisher_priority is not None and not 0 <= default_publisher_priority <= 255:
            raise ValueError(f"publisher priority {default_publisher_priority} outside 0..255")
        ints = (
            (T.DELIVERY_TIMEOUT, delivery_timeout),
            (T.MAX_CACHE_DURATION, max_cache_duration),
            (T.DEFAULT_PUBLISHER_PRIORITY, default_publisher_priority),
            (
                T.DEFAULT_PUBLISHER_GROUP_ORDER,
                None
                if default_publisher_group_order is None
                else int(default_publisher_group_order),
            ),
            (T.DYNAMIC_GROUPS, None if dynamic_groups is None else int(dynamic_groups)),
        )
        items: list[KeyValue] = [(k, v) for k, v in ints if v is not None]
        if immutable is not None:
            w = Writer()
            immutable.encode(w, DRAFT_16)
            items.append((T.IMMUTABLE_EXTENSIONS, w.data))
        return cls((*items, *extra))

    @property
    def delivery_timeout(self) -> int | None:
        return self._int(TrackExtensionType.DELIVERY_TIMEOUT)

    @property
    def max_cache_duration(self) -> int | None:
        return self._int(TrackExtensionType.MAX_CACHE_DURATION)

    @property
    def default_publisher_priority(self) -> int | None:
        return self._int(TrackExtensionType.DEFAULT_PUBLISHER_PRIORITY)

    @property
    def default_publisher_group_order(self) -> GroupOrder | None:
        value = self._int(TrackExtensionType.DEFAULT_PUBLISHER_GROUP_ORDER)
        return None if value is None else GroupOrder(value)

    @property
    def dynamic_groups(self) -> bool | None:
        value = self._int(TrackExtensionType.DYNAMIC_GROUPS)
        return None if value is None else value == 1

    @property
    def immutable(self) -> TrackExtensions | None:
        """The pairs inside IMMUTABLE_EXTENSIONS, parsed (KEY_VALUE_FORMATTING_ERROR if bad)."""
        raw = self._bytes(TrackExtensionType.IMMUTABLE_EXTENSIONS)
        if raw is None:
            return None
        buf = Buffer(raw)
        try:
            inner = TrackExtensions.decode(buf, DRAFT_16, None)
        except NeedMoreData:
            raise _kvf("IMMUTABLE_EXTENSIONS do not parse") from None
        if TrackExtensionType.IMMUTABLE_EXTENSIONS in inner:
            raise ProtocolViolation("IMMUTABLE_EXTENSIONS inside IMMUTABLE_EXTENSIONS")
        return inner

    def validate(self, version: int) -> None:
        KeyValuePairs.validate(self, version)
        T = TrackExtensionType
        if self.delivery_timeout == 0:
            raise ProtocolViolation("DELIVERY_TIMEOUT extension of 0")
        for key, low, high in (
            (T.DEFAULT_PUBLISHER_PRIORITY, 0, 255),
            (T.DEFAULT_PUBLISHER_GROUP_ORDER, 1, 2),
            (T.DYNAMIC_GROUPS, 0, 1),
        ):
            value = self._int(key)
            if value is not None and not low <= value <= high:
                raise ProtocolViolation(f"{key.name} extension is {value} ({low}..{high})")
        _ = self.immutable  # parses and checks the nested pairs
