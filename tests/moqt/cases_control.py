"""Known-good control messages: ``(message, version, wire bytes)``.

Every ``wire`` value is written by hand from the drafts' field layouts (draft-16 /
draft-14 section "Control Messages"), never produced by our encoder. Each comment
spells the fields out: ``type | length | payload fields``. Varints follow RFC 9000
(0x40xx = 2 bytes, 0x80xxxxxx = 4 bytes, 0xC0... = 8 bytes); draft-16 key-value
types are deltas from the previous type, draft-14 types are absolute.

Common pieces:
  NS   = ("live", "cam") -> 02 | 04 6c697665 | 03 63616d          (10 bytes)
  NAME = "hd"            -> 02 6864                                (3 bytes)
  D14  = 0xff00000e      -> c0000000ff00000e                       (8-byte varint)
"""

from __future__ import annotations

from dataclasses import dataclass

from moqt.errors import PeerError, ProtocolViolation, SessionCloseCode, SessionError
from moqt.messages import (
    AuthToken,
    ClientSetup,
    ControlMessage,
    Fetch,
    FetchCancel,
    FetchError,
    FetchOk,
    Goaway,
    JoiningFetch,
    MaxRequestId,
    MessageParameters,
    Namespace,
    NamespaceDone,
    Publish,
    PublishDone,
    PublishError,
    PublishNamespace,
    PublishNamespaceCancel,
    PublishNamespaceDone,
    PublishNamespaceError,
    PublishNamespaceOk,
    PublishOk,
    RequestError,
    RequestOk,
    RequestsBlocked,
    RequestUpdate,
    ServerSetup,
    SetupParameters,
    StandaloneFetch,
    Subscribe,
    SubscribeError,
    SubscribeNamespace,
    SubscribeNamespaceError,
    SubscribeNamespaceOk,
    SubscribeOk,
    SubscribeOptions,
    SubscribeUpdate,
    TrackExtensions,
    TrackStatus,
    TrackStatusError,
    TrackStatusOk,
    Unsubscribe,
    UnsubscribeNamespace,
)
from moqt.types import FetchType, GroupOrder, Location, SubscriptionFilter
from moqt.version import DRAFT_14, DRAFT_16

NS = (b"live", b"cam")
NAME = b"hd"
HNS = "02 04 6c697665 03 63616d"
HNAME = "02 6864"
HLIVE = "01 04 6c697665"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("|", ""))


@dataclass(frozen=True)
class ControlCase:
    id: str
    message: ControlMessage
    version: int
    wire: bytes


def _c(id_: str, message: ControlMessage, version: int, wire: str) -> ControlCase:
    return ControlCase(f"{id_}-d{version & 0xFF}", message, version, h(wire))


_TOKEN_TOK = AuthToken.use_value(b"tok")  # 03 | 00 | 746f6b   (alias type, token type, value)

CASES: list[ControlCase] = [
    # --- setup -------------------------------------------------------------------
    _c(
        "client_setup",
        ClientSetup(
            parameters=SetupParameters.build(path="/x", max_request_id=100, implementation="cc")
        ),
        DRAFT_16,
        # 20 | 000c | 3 params | PATH(+1) len2 "/x" | MAX_REQUEST_ID(+1)=100 | IMPL(+5) len2 "cc"
        "20 000c 03 | 01 02 2f78 | 01 4064 | 05 02 6363",
    ),
    _c(
        "client_setup",
        ClientSetup(
            versions=(DRAFT_14,), parameters=SetupParameters.build(path="/x", max_request_id=100)
        ),
        DRAFT_14,
        # 20 | 0011 | 1 version | 0xff00000e | 2 params | PATH=1 len2 "/x" | MAX_REQUEST_ID=2 100
        "20 0011 01 c0000000ff00000e 02 | 01 02 2f78 | 02 4064",
    ),
    _c(
        "server_setup_unknown_repeated",
        ServerSetup(parameters=SetupParameters(((2, 200), (0x3F, b"ab"), (0x3F, b"ab")))),
        DRAFT_16,
        # 21 | 000c | 3 params | MAX_REQUEST_ID(+2)=200 | 0x3f(+0x3d) "ab" | 0x3f(+0) "ab"
        "21 000c 03 | 02 40c8 | 3d 02 6162 | 00 02 6162",
    ),
    _c(
        "server_setup",
        ServerSetup(parameters=SetupParameters.build(max_request_id=200, implementation="cc")),
        DRAFT_16,
        # 21 | 0008 | 2 params | MAX_REQUEST_ID(+2)=200 | IMPL(+5) len2 "cc"
        "21 0008 02 | 02 40c8 | 05 02 6363",
    ),
    _c(
        "server_setup",
        ServerSetup(selected_version=DRAFT_14, parameters=SetupParameters.build(max_request_id=1)),
        DRAFT_14,
        # 21 | 000b | selected 0xff00000e | 1 param | MAX_REQUEST_ID=2 1
        "21 000b c0000000ff00000e 01 | 02 01",
    ),
    # --- session control -----------------------------------------------------------
    _c("goaway", Goaway("moqt://b"), DRAFT_16, "10 0009 08 6d6f71743a2f2f62"),
    _c("goaway", Goaway("moqt://b"), DRAFT_14, "10 0009 08 6d6f71743a2f2f62"),
    _c("goaway_empty", Goaway(), DRAFT_16, "10 0001 00"),
    _c("max_request_id", MaxRequestId(101), DRAFT_16, "15 0002 4065"),
    _c("max_request_id", MaxRequestId(101), DRAFT_14, "15 0002 4065"),
    _c("requests_blocked", RequestsBlocked(64), DRAFT_16, "1a 0002 4040"),
    _c("requests_blocked", RequestsBlocked(64), DRAFT_14, "1a 0002 4040"),
    _c(
        "request_ok_largest",
        RequestOk(2, MessageParameters.build(largest_object=Location(5, 7))),
        DRAFT_16,
        # 07 | 0006 | req 2 | 1 param | LARGEST_OBJECT(+9) len2 {5,7}
        "07 0006 02 01 | 09 02 05 07",
    ),
    _c("request_ok", RequestOk(2), DRAFT_16, "07 0002 02 00"),
    _c(
        "request_error",
        RequestError(4, 0x10, "nope", retry_interval=0),
        DRAFT_16,
        # 05 | 0008 | req 4 | code 0x10 | retry 0 | reason len4 "nope"
        "05 0008 04 10 00 04 6e6f7065",
    ),
    # --- subscribe -----------------------------------------------------------------
    _c(
        "subscribe_full",
        Subscribe(
            0,
            NS,
            NAME,
            subscriber_priority=10,
            group_order=GroupOrder.DESCENDING,
            forward=True,
            filter=SubscriptionFilter.absolute_range(Location(1, 2), 5),
            parameters=MessageParameters.build(delivery_timeout=1000, auth_tokens=(_TOKEN_TOK,)),
        ),
        DRAFT_16,
        # 03 | 0025 | req 0 | NS | NAME | 6 params:
        #   DELIVERY_TIMEOUT(+2)=1000 | AUTH(+1) len5 03 00 746f6b | FORWARD(+0x0d)=1 |
        #   PRIORITY(+0x10)=10 | FILTER(+1) len4 (type 4, {1,2}, end 5) | GROUP_ORDER(+1)=2
        f"03 0025 00 {HNS} {HNAME} 06 | 02 43e8 | 01 05 03 00 746f6b | 0d 01 | 10 0a"
        " | 01 04 04 01 02 05 | 01 02",
    ),
    _c(
        "subscribe_full",
        Subscribe(
            0,
            NS,
            NAME,
            subscriber_priority=10,
            group_order=GroupOrder.DESCENDING,
            forward=True,
            filter=SubscriptionFilter.absolute_range(Location(1, 2), 5),
            parameters=MessageParameters.build(delivery_timeout=1000, auth_tokens=(_TOKEN_TOK,)),
        ),
        DRAFT_14,
        # 03 | 0020 | req 0 | NS | NAME | priority 10 | group order 2 | forward 1 |
        # filter 4 {1,2} end 5 | 2 params: DELIVERY_TIMEOUT=2 1000 | AUTH=3 len5 token
        f"03 0020 00 {HNS} {HNAME} 0a 02 01 | 04 01 02 05 | 02 | 02 43e8 | 03 05 03 00 746f6b",
    ),
    _c("subscribe_minimal", Subscribe(2, NS, NAME), DRAFT_16, f"03 000f 02 {HNS} {HNAME} 00"),
    _c(
        "subscribe_largest_object",
        Subscribe(2, NS, NAME, filter=SubscriptionFilter.largest_object()),
        DRAFT_16,
        # ... | 1 param | FILTER(+0x21) len1 type 2
        f"03 0012 02 {HNS} {HNAME} 01 | 21 01 02",
    ),
    _c(
        "subscribe_next_group",
        Subscribe(
            2,
            NS,
            NAME,
            subscriber_priority=128,
            forward=False,
            filter=SubscriptionFilter.next_group_start(),
        ),
        DRAFT_14,
        # 03 | 0013 | req 2 | NS | NAME | prio 0x80 | order 0 (publisher's) | forward 0 | filter 1 | 0 params
        f"03 0013 02 {HNS} {HNAME} 80 00 00 01 00",
    ),
    _c(
        "subscribe_ok_full",
        SubscribeOk(
            0,
            7,
            expires=30000,
            largest=Location(3, 4),
            track_extensions=TrackExtensions.build(
                default_publisher_priority=5,
                default_publisher_group_order=GroupOrder.DESCENDING,
                extra=((0x41, b"x"),),
            ),
        ),
        DRAFT_16,
        # 04 | 0013 | req 0 | alias 7 | 2 params: EXPIRES(+8)=30000 | LARGEST(+1) len2 {3,4} |
        # extensions: PUBLISHER_PRIORITY(+0x0e)=5 | GROUP_ORDER(+0x14)=2 | 0x41(+0x1f) len1 "x"
        "04 0013 00 07 02 | 08 80007530 | 01 02 03 04 | 0e 05 | 14 02 | 1f 01 78",
    ),
    _c(
        "subscribe_ok_full",
        SubscribeOk(0, 7, expires=30000, group_order=GroupOrder.DESCENDING, largest=Location(3, 4)),
        DRAFT_14,
        # 04 | 000b | req 0 | alias 7 | expires 30000 | group order 2 | content exists 1 | {3,4} | 0 params
        "04 000b 00 07 80007530 02 01 03 04 00",
    ),
    _c(
        "subscribe_ok_empty",
        SubscribeOk(1, 2, expires=0, group_order=GroupOrder.ASCENDING),
        DRAFT_14,
        "04 0006 01 02 00 01 00 00",
    ),
    _c("subscribe_ok_empty", SubscribeOk(1, 2), DRAFT_16, "04 0003 01 02 00"),
    _c("subscribe_error", SubscribeError(4, 0x10, "nope"), DRAFT_14, "05 0007 04 10 04 6e6f7065"),
    _c(
        "subscribe_update",
        SubscribeUpdate(2, 0, Location(1, 0), 0, subscriber_priority=200, forward=False),
        DRAFT_14,
        # 02 | 0008 | req 2 | sub req 0 | start {1,0} | end group 0 | priority 0xc8 | forward 0 | 0 params
        "02 0008 02 00 01 00 00 c8 00 00",
    ),
    _c(
        "request_update",
        RequestUpdate(2, 0, MessageParameters.build(forward=False, new_group_request=5)),
        DRAFT_16,
        # 02 | 0007 | req 2 | existing 0 | 2 params: FORWARD(+0x10)=0 | NEW_GROUP_REQUEST(+0x22)=5
        "02 0007 02 00 02 | 10 00 | 22 05",
    ),
    _c("unsubscribe", Unsubscribe(3), DRAFT_16, "0a 0001 03"),
    _c("unsubscribe", Unsubscribe(3), DRAFT_14, "0a 0001 03"),
    # --- publish -------------------------------------------------------------------
    _c(
        "publish",
        Publish(
            1,
            NS,
            NAME,
            9,
            largest=Location(10, 0),
            forward=False,
            track_extensions=TrackExtensions.build(dynamic_groups=True),
        ),
        DRAFT_16,
        # 1d | 0018 | req 1 | NS | NAME | alias 9 | 2 params: LARGEST(+9) len2 {10,0} |
        # FORWARD(+7)=0 | extensions: DYNAMIC_GROUPS(+0x30)=1
        f"1d 0018 01 {HNS} {HNAME} 09 02 | 09 02 0a 00 | 07 00 | 30 01",
    ),
    _c(
        "publish",
        Publish(
            1, NS, NAME, 9, group_order=GroupOrder.ASCENDING, largest=Location(10, 0), forward=False
        ),
        DRAFT_14,
        # 1d | 0015 | req 1 | NS | NAME | alias 9 | order 1 | content 1 | {10,0} | forward 0 | 0 params
        f"1d 0015 01 {HNS} {HNAME} 09 01 01 0a 00 00 00",
    ),
    _c(
        "publish_ok",
        PublishOk(1, forward=True, filter=SubscriptionFilter.next_group_start()),
        DRAFT_16,
        # 1e | 0007 | req 1 | 2 params: FORWARD(+0x10)=1 | FILTER(+0x11) len1 type 1
        "1e 0007 01 02 | 10 01 | 11 01 01",
    ),
    _c(
        "publish_ok",
        PublishOk(
            1,
            forward=True,
            subscriber_priority=128,
            group_order=GroupOrder.ASCENDING,
            filter=SubscriptionFilter.next_group_start(),
        ),
        DRAFT_14,
        # 1e | 0006 | req 1 | forward 1 | priority 0x80 | order 1 | filter 1 | 0 params
        "1e 0006 01 01 80 01 01 00",
    ),
    _c("publish_error", PublishError(1, 4), DRAFT_14, "1f 0003 01 04 00"),
    _c("publish_done", PublishDone(0, 2, 3, "end"), DRAFT_16, "0b 0007 00 02 03 03 656e64"),
    _c("publish_done", PublishDone(0, 2, 3, "end"), DRAFT_14, "0b 0007 00 02 03 03 656e64"),
    # --- fetch ---------------------------------------------------------------------
    _c(
        "fetch_standalone",
        Fetch(
            4,
            FetchType.STANDALONE,
            standalone=StandaloneFetch(NS, NAME, Location(0, 0), Location(2, 0)),
            subscriber_priority=1,
            group_order=GroupOrder.ASCENDING,
        ),
        DRAFT_16,
        # 16 | 0018 | req 4 | type 1 | NS | NAME | start {0,0} | end {2,0} |
        # 2 params: PRIORITY(+0x20)=1 | GROUP_ORDER(+2)=1
        f"16 0018 04 01 {HNS} {HNAME} 00 00 02 00 | 02 20 01 02 01",
    ),
    _c(
        "fetch_standalone",
        Fetch(
            4,
            FetchType.STANDALONE,
            standalone=StandaloneFetch(NS, NAME, Location(0, 0), Location(2, 0)),
            subscriber_priority=1,
            group_order=GroupOrder.ASCENDING,
        ),
        DRAFT_14,
        # 16 | 0016 | req 4 | priority 1 | order 1 | type 1 | NS | NAME | {0,0} | {2,0} | 0 params
        f"16 0016 04 01 01 01 {HNS} {HNAME} 00 00 02 00 00",
    ),
    _c(
        "fetch_relative_joining",
        Fetch(6, FetchType.RELATIVE_JOINING, joining=JoiningFetch(0, 1)),
        DRAFT_16,
        # 16 | 0005 | req 6 | type 2 | joining req 0 | joining start 1 | 0 params
        "16 0005 06 02 00 01 00",
    ),
    _c(
        "fetch_absolute_joining",
        Fetch(6, FetchType.ABSOLUTE_JOINING, joining=JoiningFetch(0, 5), subscriber_priority=128),
        DRAFT_14,
        # 16 | 0007 | req 6 | priority 0x80 | order 0 | type 3 | joining req 0 | start 5 | 0 params
        "16 0007 06 80 00 03 00 05 00",
    ),
    _c("fetch_ok", FetchOk(4, True, Location(2, 0)), DRAFT_16, "18 0005 04 01 02 00 00"),
    _c(
        "fetch_ok_extension",
        FetchOk(
            4,
            True,
            Location(2, 0),
            track_extensions=TrackExtensions.build(max_cache_duration=60000),
        ),
        DRAFT_16,
        # ... | 0 params | MAX_CACHE_DURATION(+4)=60000
        "18 000a 04 01 02 00 00 | 04 8000ea60",
    ),
    _c(
        "fetch_ok",
        FetchOk(
            4,
            False,
            Location(2, 5),
            group_order=GroupOrder.DESCENDING,
            parameters=MessageParameters.build(max_cache_duration=100),
        ),
        DRAFT_14,
        # 18 | 0009 | req 4 | order 2 | end of track 0 | {2,5} | 1 param: MAX_CACHE_DURATION=4 100
        "18 0009 04 02 00 02 05 01 | 04 4064",
    ),
    _c("fetch_error", FetchError(4, 6), DRAFT_14, "19 0003 04 06 00"),
    _c("fetch_cancel", FetchCancel(4), DRAFT_16, "17 0001 04"),
    _c("fetch_cancel", FetchCancel(4), DRAFT_14, "17 0001 04"),
    # --- track status --------------------------------------------------------------
    _c(
        "track_status",
        TrackStatus(
            8, NS, NAME, parameters=MessageParameters.build(auth_tokens=(AuthToken.use_alias(3),))
        ),
        DRAFT_16,
        # 0d | 0013 | req 8 | NS | NAME | 1 param: AUTH(+3) len2 (USE_ALIAS 2, alias 3)
        f"0d 0013 08 {HNS} {HNAME} 01 | 03 02 02 03",
    ),
    _c(
        "track_status",
        TrackStatus(
            8,
            NS,
            NAME,
            subscriber_priority=128,
            forward=True,
            filter=SubscriptionFilter.largest_object(),
        ),
        DRAFT_14,
        # 0d | 0013 | req 8 | NS | NAME | priority 0x80 | order 0 | forward 1 | filter 2 | 0 params
        f"0d 0013 08 {HNS} {HNAME} 80 00 01 02 00",
    ),
    _c(
        "track_status_ok",
        TrackStatusOk(8, 0, expires=0, group_order=GroupOrder.ASCENDING),
        DRAFT_14,
        "0e 0006 08 00 00 01 00 00",
    ),
    _c("track_status_error", TrackStatusError(8, 0x10, "no"), DRAFT_14, "0f 0005 08 10 02 6e6f"),
    # --- namespaces ----------------------------------------------------------------
    _c("publish_namespace", PublishNamespace(10, (b"live",)), DRAFT_16, f"06 0008 0a {HLIVE} 00"),
    _c("publish_namespace", PublishNamespace(10, (b"live",)), DRAFT_14, f"06 0008 0a {HLIVE} 00"),
    _c(
        "publish_namespace_register_token",
        PublishNamespace(
            10, (b"live",), MessageParameters.build(auth_tokens=(AuthToken.register(1, b"k"),))
        ),
        DRAFT_16,
        # 06 | 000e | req 10 | ns | 1 param: AUTH(+3) len4 (REGISTER 1, alias 1, type 0, "k")
        f"06 000e 0a {HLIVE} 01 | 03 04 01 01 00 6b",
    ),
    _c("publish_namespace_ok", PublishNamespaceOk(10), DRAFT_14, "07 0001 0a"),
    _c("publish_namespace_error", PublishNamespaceError(10, 1), DRAFT_14, "08 0003 0a 01 00"),
    _c("publish_namespace_done", PublishNamespaceDone(request_id=10), DRAFT_16, "09 0001 0a"),
    _c(
        "publish_namespace_done",
        PublishNamespaceDone(namespace=(b"live",)),
        DRAFT_14,
        f"09 0006 {HLIVE}",
    ),
    _c(
        "publish_namespace_cancel",
        PublishNamespaceCancel(0x20, request_id=10),
        DRAFT_16,
        "0c 0003 0a 20 00",
    ),
    _c(
        "publish_namespace_cancel",
        PublishNamespaceCancel(0, "x", namespace=(b"live",)),
        DRAFT_14,
        f"0c 0009 {HLIVE} 00 01 78",
    ),
    _c(
        "subscribe_namespace",
        SubscribeNamespace(
            12, (b"live",), SubscribeOptions.NAMESPACE, MessageParameters.build(forward=False)
        ),
        DRAFT_16,
        # 11 | 000b | req 12 | prefix | options 1 | 1 param: FORWARD(+0x10)=0
        f"11 000b 0c {HLIVE} 01 01 | 10 00",
    ),
    _c(
        "subscribe_namespace_empty_prefix",
        SubscribeNamespace(12, ()),
        DRAFT_16,
        "11 0004 0c 00 02 00",
    ),
    _c(
        "subscribe_namespace",
        SubscribeNamespace(12, (b"live",)),
        DRAFT_14,
        f"11 0008 0c {HLIVE} 00",
    ),
    _c("subscribe_namespace_ok", SubscribeNamespaceOk(12), DRAFT_14, "12 0001 0c"),
    _c(
        "subscribe_namespace_error",
        SubscribeNamespaceError(12, 5, "x"),
        DRAFT_14,
        "13 0004 0c 05 01 78",
    ),
    _c("unsubscribe_namespace", UnsubscribeNamespace((b"live",)), DRAFT_14, f"14 0006 {HLIVE}"),
    _c("namespace", Namespace((b"cam",)), DRAFT_16, "08 0005 01 03 63616d"),
    _c("namespace_done", NamespaceDone((b"cam",)), DRAFT_16, "0e 0005 01 03 63616d"),
]


@dataclass(frozen=True)
class BadCase:
    """Bytes a peer might send that must fail with ``error`` (and ``code``)."""

    id: str
    version: int
    wire: bytes
    error: type[PeerError] = ProtocolViolation
    code: SessionCloseCode = SessionCloseCode.PROTOCOL_VIOLATION


def _b(
    id_: str,
    version: int,
    wire: str,
    error: type[PeerError] = ProtocolViolation,
    code: SessionCloseCode = SessionCloseCode.PROTOCOL_VIOLATION,
) -> BadCase:
    return BadCase(f"{id_}-d{version & 0xFF}", version, h(wire), error, code)


_KVF = SessionCloseCode.KEY_VALUE_FORMATTING_ERROR

BAD_CASES: list[BadCase] = [
    _b("unknown_type", DRAFT_16, "40 40 0000"),  # type 0x40 (RESERVED, old CLIENT_SETUP)
    _b("d14_only_type", DRAFT_16, "12 0001 0c"),  # SUBSCRIBE_NAMESPACE_OK is not in draft-16
    _b("unassigned_type", DRAFT_14, "1b 0000"),
    _b("trailing_byte", DRAFT_16, "0a 0002 03 00"),
    _b("short_payload", DRAFT_16, "15 0001 40"),  # 2-byte varint cut by the length
    _b("d16_unknown_message_param", DRAFT_16, "07 0004 02 01 30 00"),  # type 0x30
    _b("duplicate_param", DRAFT_16, "07 0006 02 02 10 01 00 01"),  # FORWARD twice
    _b("duplicate_setup_param", DRAFT_16, "21 0005 02 02 01 00 02"),  # MAX_REQUEST_ID twice
    _b("forward_2", DRAFT_16, f"03 0011 02 {HNS} {HNAME} 01 10 02"),
    _b("priority_256", DRAFT_16, f"03 0012 02 {HNS} {HNAME} 01 20 4100"),
    _b("group_order_param_0", DRAFT_16, f"03 0011 02 {HNS} {HNAME} 01 22 00"),
    _b("filter_type_5", DRAFT_16, f"03 0012 02 {HNS} {HNAME} 01 21 01 05"),
    _b("filter_longer_than_filter", DRAFT_16, f"03 0013 02 {HNS} {HNAME} 01 21 02 01 00"),
    _b("filter_cut_short", DRAFT_16, f"03 0013 02 {HNS} {HNAME} 01 21 02 03 00"),
    _b("range_end_before_start", DRAFT_14, f"03 0016 02 {HNS} {HNAME} 80 00 01 04 05 00 04 00"),
    _b("delivery_timeout_0", DRAFT_16, "07 0004 02 01 02 00"),
    _b("bad_token_alias_type", DRAFT_16, "07 0005 02 01 03 01 09", SessionError, _KVF),
    _b("truncated_token", DRAFT_16, "07 0005 02 01 03 01 01", SessionError, _KVF),
    _b("token_delete_trailing", DRAFT_16, "07 0007 02 01 03 03 00 01 ff", SessionError, _KVF),
    _b("largest_not_location", DRAFT_16, "07 0005 02 01 09 01 40", SessionError, _KVF),
    _b("largest_trailing", DRAFT_16, "07 0007 02 01 09 03 01 02 03", SessionError, _KVF),
    _b("kvp_length_over_65535", DRAFT_16, "21 0007 01 3f 80010000 00"),
    _b("delta_type_overflow", DRAFT_16, "21 002e 05" + " ffffffffffffffff 00" * 5),
    _b(
        "path_not_utf8",
        DRAFT_16,
        "20 0004 01 01 01 ff",
        SessionError,
        SessionCloseCode.MALFORMED_PATH,
    ),
    _b(
        "authority_not_utf8",
        DRAFT_16,
        "20 0004 01 05 01 ff",
        SessionError,
        SessionCloseCode.MALFORMED_AUTHORITY,
    ),
    _b("client_setup_use_alias", DRAFT_16, "20 0005 01 03 02 02 01"),  # AUTH USE_ALIAS alias 1
    _b("namespace_0_fields", DRAFT_16, "06 0003 0a 00 00"),
    _b("namespace_33_fields", DRAFT_16, "06 0045 0a 21" + " 01 61" * 33 + " 00"),
    _b("namespace_empty_field", DRAFT_16, "06 0004 0a 01 00 00"),
    _b("prefix_0_fields_d14", DRAFT_14, "11 0003 0c 00 00"),
    _b("reason_over_1024", DRAFT_16, "05 0406 04 10 00 4401" + " 61" * 1025),
    _b("goaway_uri_over_8192", DRAFT_16, "10 2003 6001" + " 61" * 8193),
    _b("goaway_not_utf8", DRAFT_16, "10 0002 01 ff"),
    _b("subscribe_group_order_3", DRAFT_14, f"03 0013 02 {HNS} {HNAME} 80 03 01 02 00"),
    _b("subscribe_forward_2", DRAFT_14, f"03 0013 02 {HNS} {HNAME} 80 00 02 02 00"),
    _b("subscribe_ok_group_order_0", DRAFT_14, "04 0006 01 02 00 00 00 00"),
    _b("subscribe_ok_content_exists_2", DRAFT_14, "04 0006 01 02 00 01 02 00"),
    _b("fetch_type_4", DRAFT_16, "16 0005 06 04 00 01 00"),
    _b("subscribe_options_3", DRAFT_16, f"11 0009 0c {HLIVE} 03 00"),
    _b("extension_dynamic_groups_2", DRAFT_16, "18 0007 04 01 02 00 00 30 02"),
    _b("extension_priority_256", DRAFT_16, "18 0008 04 01 02 00 00 0e 4100"),
    _b("extension_delivery_timeout_0", DRAFT_16, "18 0007 04 01 02 00 00 02 00"),
    _b("extension_truncated", DRAFT_16, "18 0007 04 01 02 00 00 0b 05"),
    _b(
        "immutable_extensions_garbage",
        DRAFT_16,
        "18 0009 04 01 02 00 00 0b 02 01 05",  # nested pair 0x1 says 5 bytes, has 0
        SessionError,
        _KVF,
    ),
    _b("full_track_name_over_4096", DRAFT_16, "03 1007 02 01 01 61 5000" + " 62" * 4096 + " 00"),
]
