"""Argument checks shared by the Session's public methods (misuse -> LocalError)."""

from __future__ import annotations

from .errors import LocalError
from .messages._params import AuthToken as WireToken

__all__ = ["check_priority", "check_timeout", "our_tokens"]


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
