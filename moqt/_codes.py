"""Error-code spaces that differ between drafts 14 and 16.

Draft-16 has one REQUEST_ERROR code space (:class:`~moqt.errors.RequestErrorCode`).
Draft-14 gives each *_ERROR message its own table (draft-14 "IANA Considerations",
"SUBSCRIBE_ERROR Codes" ... "SUBSCRIBE_NAMESPACE_ERROR Codes"), with different
values for the same meaning (e.g. "does not exist" is 0x4 there, 0x10 in 16).
The session speaks draft-16 meanings to the application and translates here.
"""

from __future__ import annotations

from .errors import PublishDoneCode, RequestErrorCode
from .events import RequestKind

__all__ = [
    "publish_done_from_wire",
    "publish_done_to_wire",
    "request_error_from_wire",
    "request_error_to_wire",
]

E = RequestErrorCode

_COMMON_14: dict[RequestErrorCode, int] = {
    E.INTERNAL_ERROR: 0x0,
    E.UNAUTHORIZED: 0x1,
    E.TIMEOUT: 0x2,
    E.NOT_SUPPORTED: 0x3,
    E.MALFORMED_AUTH_TOKEN: 0x10,
    E.EXPIRED_AUTH_TOKEN: 0x12,
}

_TABLES_14: dict[RequestKind, dict[RequestErrorCode, int]] = {
    # SUBSCRIBE_ERROR, also TRACK_STATUS_ERROR ("identical to SUBSCRIBE_ERROR").
    RequestKind.SUBSCRIBE: {**_COMMON_14, E.DOES_NOT_EXIST: 0x4, E.INVALID_RANGE: 0x5},
    RequestKind.TRACK_STATUS: {**_COMMON_14, E.DOES_NOT_EXIST: 0x4, E.INVALID_RANGE: 0x5},
    RequestKind.PUBLISH: {
        E.INTERNAL_ERROR: 0x0,
        E.UNAUTHORIZED: 0x1,
        E.TIMEOUT: 0x2,
        E.NOT_SUPPORTED: 0x3,
        E.UNINTERESTED: 0x4,
    },
    RequestKind.FETCH: {
        **_COMMON_14,
        E.DOES_NOT_EXIST: 0x4,
        E.INVALID_RANGE: 0x5,
        E.INVALID_JOINING_REQUEST_ID: 0x7,
        E.MALFORMED_TRACK: 0x9,
    },
    RequestKind.PUBLISH_NAMESPACE: {**_COMMON_14, E.UNINTERESTED: 0x4},
    # NAMESPACE_PREFIX_UNKNOWN (0x4) is closest to DOES_NOT_EXIST.
    RequestKind.SUBSCRIBE_NAMESPACE: {**_COMMON_14, E.DOES_NOT_EXIST: 0x4, E.PREFIX_OVERLAP: 0x5},
}

_REVERSE_14: dict[RequestKind, dict[int, RequestErrorCode]] = {
    kind: {wire: meaning for meaning, wire in table.items()} for kind, table in _TABLES_14.items()
}


def request_error_to_wire(code: RequestErrorCode | int, kind: RequestKind, draft16: bool) -> int:
    """The wire code for ``code`` in the error message answering ``kind``.

    A plain int is sent unchanged (the application chose a wire value); a
    RequestErrorCode without a draft-14 equivalent becomes INTERNAL_ERROR (0x0).
    """
    if draft16 or not isinstance(code, RequestErrorCode):
        return int(code)
    return _TABLES_14.get(kind, _COMMON_14).get(code, 0x0)


def request_error_from_wire(code: int, kind: RequestKind, draft16: bool) -> RequestErrorCode | None:
    """The draft-16 meaning of a received error code, or None if unknown."""
    if draft16:
        try:
            return RequestErrorCode(code)
        except ValueError:
            return None
    return _REVERSE_14.get(kind, {}).get(code)


def publish_done_to_wire(code: PublishDoneCode | int, draft16: bool) -> int:
    """PUBLISH_DONE status: MALFORMED_TRACK is 0x7 in draft-14, 0x12 in 16;
    UPDATE_FAILED does not exist in 14 (sent as INTERNAL_ERROR)."""
    if draft16 or not isinstance(code, PublishDoneCode):
        return int(code)
    if code is PublishDoneCode.MALFORMED_TRACK:
        return 0x7
    if code is PublishDoneCode.UPDATE_FAILED:
        return int(PublishDoneCode.INTERNAL_ERROR)
    return int(code)


def publish_done_from_wire(code: int, draft16: bool) -> int:
    """The draft-16 value of a received PUBLISH_DONE status (unknown values unchanged)."""
    if not draft16 and code == 0x7:
        return int(PublishDoneCode.MALFORMED_TRACK)
    return code
