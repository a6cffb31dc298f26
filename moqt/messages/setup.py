"""CLIENT_SETUP and SERVER_SETUP: the first message each side sends on the control stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from .._buffer import Buffer, Writer
from ..errors import LocalError, ProtocolViolation
from ..version import DRAFT_14, DRAFT_16
from ._base import ControlMessage, is_draft16, register
from ._params import SetupParameters
from ._token import AuthTokenAliasType

__all__ = ["ClientSetup", "ServerSetup"]


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class ClientSetup(ControlMessage):
    """CLIENT_SETUP (0x20).

    Draft-14: ``Number of Supported Versions (i), Supported Versions (i)...,
    Number of Parameters (i), Setup Parameters``. Draft-16 drops the version list
    (ALPN selects the version): ``versions`` must then be empty. A draft-16 server
    closes on a DELETE or USE_ALIAS token here (nothing can be registered yet).
    """

    TYPE: ClassVar[int] = 0x20

    versions: tuple[int, ...] = ()
    parameters: SetupParameters = field(default_factory=SetupParameters)

    def encode_payload(self, version: int) -> bytes:
        w = Writer()
        if is_draft16(version):
            if self.versions:
                raise LocalError("draft-16 CLIENT_SETUP carries no version list (ALPN selects it)")
        else:
            if not self.versions:
                raise LocalError("draft-14 CLIENT_SETUP must offer at least one version")
            w.push_varint(len(self.versions))
            for offered in self.versions:
                w.push_varint(offered)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        versions: tuple[int, ...] = ()
        if not is_draft16(version):
            # No count check: the 16-bit length bounds the list, and an empty or
            # unusable list is a negotiation failure (VERSION_NEGOTIATION_FAILED) for
            # the session to report, not a malformed message.
            count = buf.pull_varint()
            versions = tuple(buf.pull_varint() for _ in range(count))
        params = SetupParameters.decode_counted(buf, version)
        if is_draft16(version):
            for token in params.auth_tokens:
                if token.alias_type in (AuthTokenAliasType.DELETE, AuthTokenAliasType.USE_ALIAS):
                    raise ProtocolViolation(f"{token.alias_type.name} token in CLIENT_SETUP")
        return cls(versions, params)


@register(DRAFT_14, DRAFT_16)
@dataclass(frozen=True, slots=True)
class ServerSetup(ControlMessage):
    """SERVER_SETUP (0x21).

    Draft-14: ``Selected Version (i), Number of Parameters (i), Setup Parameters``.
    Draft-16 has no Selected Version: ``selected_version`` must then be None.
    """

    TYPE: ClassVar[int] = 0x21

    selected_version: int | None = None
    parameters: SetupParameters = field(default_factory=SetupParameters)

    def encode_payload(self, version: int) -> bytes:
        w = Writer()
        if is_draft16(version):
            if self.selected_version is not None:
                raise LocalError("draft-16 SERVER_SETUP carries no selected version")
        else:
            if self.selected_version is None:
                raise LocalError("draft-14 SERVER_SETUP needs selected_version")
            w.push_varint(self.selected_version)
        self.parameters.encode_counted(w, version)
        return w.data

    @classmethod
    def decode_payload(cls, buf: Buffer, version: int) -> Self:
        selected = None if is_draft16(version) else buf.pull_varint()
        return cls(selected, SetupParameters.decode_counted(buf, version))
