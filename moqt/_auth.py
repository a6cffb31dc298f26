"""The receiver's authorization-token alias cache (draft-16 "AUTHORIZATION TOKEN Parameter",
"MAX_AUTH_TOKEN_CACHE_SIZE"; draft-14 has the same rules).

Incoming AUTHORIZATION TOKEN parameters are resolved here into
:class:`~moqt.types.AuthToken` values: REGISTER stores an alias (and uses it),
USE_ALIAS looks one up, DELETE retires one, USE_VALUE passes through.
"""

from __future__ import annotations

from .errors import ProtocolViolation, SessionCloseCode, SessionError
from .messages._params import AuthToken as WireToken
from .messages._params import AuthTokenAliasType
from .types import AuthToken

__all__ = ["TOKEN_ENTRY_OVERHEAD", "TokenCache"]

# "The token size is calculated as 16 bytes + the size of the Token Value field."
TOKEN_ENTRY_OVERHEAD = 16


class TokenCache:
    """Aliases the peer registered with us, bounded by the MAX_AUTH_TOKEN_CACHE_SIZE we sent."""

    __slots__ = ("_entries", "_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._entries: dict[int, AuthToken] = {}

    @property
    def size(self) -> int:
        return self._size

    def resolve(
        self, tokens: tuple[WireToken, ...], *, client_setup: bool = False
    ) -> tuple[AuthToken, ...]:
        """Apply ``tokens`` (in order) and return the tokens they convey.

        Raises the draft's session errors: DUPLICATE_AUTH_TOKEN_ALIAS,
        AUTH_TOKEN_CACHE_OVERFLOW, UNKNOWN_AUTH_TOKEN_ALIAS, and PROTOCOL_VIOLATION
        for DELETE/USE_ALIAS in CLIENT_SETUP.  A REGISTER in CLIENT_SETUP that does not
        fit is used as USE_VALUE instead (draft-16 "AUTHORIZATION TOKEN" setup parameter).
        """
        out: list[AuthToken] = []
        for token in tokens:
            kind = token.alias_type
            if client_setup and kind in (AuthTokenAliasType.DELETE, AuthTokenAliasType.USE_ALIAS):
                raise ProtocolViolation(f"{kind.name} authorization token in CLIENT_SETUP")
            if kind is AuthTokenAliasType.USE_VALUE:
                assert token.token_type is not None and token.value is not None
                out.append(AuthToken(token.token_type, token.value))
            elif kind is AuthTokenAliasType.REGISTER:
                assert token.alias is not None
                assert token.token_type is not None and token.value is not None
                resolved = AuthToken(token.token_type, token.value)
                cost = TOKEN_ENTRY_OVERHEAD + len(token.value)
                if token.alias in self._entries:
                    raise SessionError(
                        f"token alias {token.alias} is already registered",
                        SessionCloseCode.DUPLICATE_AUTH_TOKEN_ALIAS,
                    )
                if self._size + cost > self._limit:
                    if not client_setup:
                        raise SessionError(
                            f"registering token alias {token.alias} exceeds the cache size "
                            f"{self._limit}",
                            SessionCloseCode.AUTH_TOKEN_CACHE_OVERFLOW,
                        )
                else:
                    self._entries[token.alias] = resolved
                    self._size += cost
                out.append(resolved)
            elif kind is AuthTokenAliasType.USE_ALIAS:
                assert token.alias is not None
                out.append(self._lookup(token.alias))
            else:  # DELETE
                assert token.alias is not None
                removed = self._lookup(token.alias)
                del self._entries[token.alias]
                self._size -= TOKEN_ENTRY_OVERHEAD + len(removed.value)
        return tuple(out)

    def _lookup(self, alias: int) -> AuthToken:
        try:
            return self._entries[alias]
        except KeyError:
            raise SessionError(
                f"unknown token alias {alias}", SessionCloseCode.UNKNOWN_AUTH_TOKEN_ALIAS
            ) from None
