"""Argument checks shared by the Session's public methods (misuse -> LocalError)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from .errors import LocalError
from .messages._params import AuthToken as WireToken
from .types import FilterType, Location, SubscriptionFilter

__all__ = ["check_priority", "check_timeout", "effective_start", "local_errors", "our_tokens"]


def our_tokens(value: bytes | None) -> tuple[WireToken, ...]:
    """Our tokens go out as USE_VALUE with token type 0 (negotiated out of band)."""
    return (WireToken.use_value(value),) if value else ()


def check_timeout(ms: int | None) -> int | None:
    if ms is not None and ms <= 0:
        # Draft-16 "DELIVERY TIMEOUT Parameter": MUST be greater than 0.
        raise LocalError("delivery_timeout is a positive number of milliseconds")
    return ms


def check_priority(value: int) -> None:
    if not 0 <= value <= 255:
        raise LocalError(f"priority {value} outside 0..255")


def local_errors[**P, R](method: Callable[P, R]) -> Callable[P, R]:
    """Turn value errors from building a message (an id or value that does not fit the
    wire) into LocalError, and give back a request id allocated before the failure so
    the peer never sees a gap in our ids (draft-16 "Request ID")."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        session = args[0]
        before = getattr(session, "_next_local_id", None)
        try:
            return method(*args, **kwargs)
        except LocalError:
            if before is not None:
                session._next_local_id = before  # type: ignore[attr-defined]
            raise
        except (ValueError, OverflowError, TypeError) as exc:
            if before is not None:
                session._next_local_id = before  # type: ignore[attr-defined]
            raise LocalError(f"{method.__name__}: {exc}") from exc

    return wrapper


def effective_start(flt: SubscriptionFilter, largest: Location | None) -> Location:
    """The Start Location a filter stands for, given the Largest Location announced in
    SUBSCRIBE_OK/PUBLISH (draft-16 "Subscription Filters"; {0, 0} with no content)."""
    if flt.start is not None:
        return flt.start
    if largest is None:
        return Location(0, 0)
    if flt.type is FilterType.LARGEST_OBJECT:
        return largest.next_object()
    return largest.next_group()
