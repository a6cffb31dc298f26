"""The Token structure carried by AUTHORIZATION_TOKEN parameters (setup and message)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .._buffer import Buffer, NeedMoreData, Writer
from ..errors import SessionCloseCode, SessionError

__all__ = ["AuthToken", "AuthTokenAliasType"]


class AuthTokenAliasType(enum.IntEnum):
    DELETE = 0x0
    REGISTER = 0x1
    USE_ALIAS = 0x2
    USE_VALUE = 0x3


def _kvf(reason: str) -> SessionError:
    return SessionError(reason, SessionCloseCode.KEY_VALUE_FORMATTING_ERROR)


@dataclass(frozen=True, slots=True)
class AuthToken:
    """The Token structure of an AUTHORIZATION_TOKEN parameter.

    ``Alias Type (i), [Token Alias (i)], [Token Type (i)], [Token Value (..)]``:
    DELETE and USE_ALIAS carry only ``alias``; REGISTER carries ``alias``,
    ``token_type`` and ``value``; USE_VALUE carries ``token_type`` and ``value``.
    """

    alias_type: AuthTokenAliasType
    alias: int | None = None
    token_type: int | None = None
    value: bytes | None = None

    def __post_init__(self) -> None:
        kind = AuthTokenAliasType(self.alias_type)
        has_alias = kind is not AuthTokenAliasType.USE_VALUE
        has_value = kind in (AuthTokenAliasType.REGISTER, AuthTokenAliasType.USE_VALUE)
        if has_alias != (self.alias is not None):
            raise ValueError(f"{kind.name} token {'needs' if has_alias else 'takes no'} alias")
        if has_value != (self.token_type is not None) or has_value != (self.value is not None):
            raise ValueError(
                f"{kind.name} token {'needs' if has_value else 'takes no'} token_type and value"
            )
        object.__setattr__(self, "alias_type", kind)

    @classmethod
    def use_value(cls, value: bytes, token_type: int = 0) -> AuthToken:
        return cls(AuthTokenAliasType.USE_VALUE, None, token_type, value)

    @classmethod
    def register(cls, alias: int, value: bytes, token_type: int = 0) -> AuthToken:
        return cls(AuthTokenAliasType.REGISTER, alias, token_type, value)

    @classmethod
    def use_alias(cls, alias: int) -> AuthToken:
        return cls(AuthTokenAliasType.USE_ALIAS, alias)

    @classmethod
    def delete(cls, alias: int) -> AuthToken:
        return cls(AuthTokenAliasType.DELETE, alias)

    def encode(self) -> bytes:
        w = Writer().push_varint(self.alias_type)
        if self.alias is not None:
            w.push_varint(self.alias)
        if self.token_type is not None:
            w.push_varint(self.token_type)
        if self.value is not None:
            w.push_bytes(self.value)
        return w.data

    @classmethod
    def decode(cls, raw: bytes) -> AuthToken:
        """Parse a Token; anything undecodable is KEY_VALUE_FORMATTING_ERROR."""
        buf = Buffer(raw)
        try:
            raw_kind = buf.pull_varint()
            try:
                kind = AuthTokenAliasType(raw_kind)
            except ValueError:
                raise _kvf(f"unknown token alias type {raw_kind:#x}") from None
            alias = None if kind is AuthTokenAliasType.USE_VALUE else buf.pull_varint()
            if kind in (AuthTokenAliasType.DELETE, AuthTokenAliasType.USE_ALIAS):
                if not buf.eof():
                    raise _kvf(f"{kind.name} token has trailing bytes")
                return cls(kind, alias)
            token_type = buf.pull_varint()
            return cls(kind, alias, token_type, buf.rest())
        except NeedMoreData:
            raise _kvf("truncated authorization token") from None
