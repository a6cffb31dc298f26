"""The few bytes of a QUIC datagram a server reads before it spends anything on it.

:func:`peek` reads a long header's version, connection ids and token the way
aioquic's ``pull_quic_header`` would, in plain byte slicing (a few microseconds,
no header object), so that a flood of Initials is sorted before aioquic parses
anything. :class:`RetryEncoder` answers one with a Retry packet whose token
aioquic's own :class:`~aioquic.quic.retry.QuicRetryTokenHandler` validates (same
plaintext, same AEAD), built in two AES-GCM calls and a few concatenations
instead of aioquic's ``encode_quic_retry`` (Buffer objects, an ``ipaddress``
parse and a new AES-GCM context per packet).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Final

from aioquic.quic.packet import (
    RETRY_AEAD_KEY_VERSION_1,
    RETRY_AEAD_KEY_VERSION_2,
    RETRY_AEAD_NONCE_VERSION_1,
    RETRY_AEAD_NONCE_VERSION_2,
    QuicProtocolVersion,
)
from aioquic.quic.retry import NONCE_LENGTH, QuicRetryTokenHandler
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["LongHeader", "RetryEncoder", "peek"]

VERSION_1: Final = int(QuicProtocolVersion.VERSION_1)
VERSION_2: Final = int(QuicProtocolVersion.VERSION_2)
# The long-header packet type of an Initial, by version (RFC 9000 17.2, RFC 9369 3.2).
_INITIAL_TYPE: Final = {VERSION_1: 0, VERSION_2: 1}
_RETRY_FIRST_BYTE: Final = {VERSION_1: 0xF0, VERSION_2: 0xC0}
_MAX_CID: Final = 20


@dataclass(frozen=True, slots=True)
class LongHeader:
    """What :func:`peek` read. ``initial`` is only True for QUIC v1/v2 Initials;
    ``token`` is None when it could not be read (let aioquic judge the packet)."""

    version: int
    destination_cid: bytes
    source_cid: bytes
    initial: bool
    token: bytes | None


def peek(data: bytes) -> LongHeader | None:
    """A long header's fields, or None if ``data`` does not start with a readable one."""
    n = len(data)
    if n < 7 or not data[0] & 0x80:
        return None
    version = int.from_bytes(data[1:5], "big")
    dcid_length = data[5]
    at = 6 + dcid_length
    if dcid_length > _MAX_CID or n < at + 1:
        return None
    destination_cid = data[6:at]
    scid_length = data[at]
    start = at + 1
    at = start + scid_length
    if scid_length > _MAX_CID or n < at:
        return None
    source_cid = data[start:at]
    initial_type = _INITIAL_TYPE.get(version)
    if initial_type is None or (data[0] >> 4) & 3 != initial_type:
        return LongHeader(version, destination_cid, source_cid, False, None)
    token: bytes | None = None
    if n > at:
        prefix = data[at] >> 6
        size = 1 << prefix
        if n >= at + size:
            length = data[at] & 0x3F
            for i in range(1, size):
                length = (length << 8) | data[at + i]
            at += size
            if n >= at + length:
                token = data[at : at + length]
    return LongHeader(version, destination_cid, source_cid, True, token)


class RetryEncoder:
    """Retry packets with tokens that ``tokens.validate_token`` accepts."""

    def __init__(self, tokens: QuicRetryTokenHandler) -> None:
        self._token_aead: AESGCM = tokens._aead
        self._integrity = {
            VERSION_1: (AESGCM(RETRY_AEAD_KEY_VERSION_1), RETRY_AEAD_NONCE_VERSION_1),
            VERSION_2: (AESGCM(RETRY_AEAD_KEY_VERSION_2), RETRY_AEAD_NONCE_VERSION_2),
        }

    def encode(self, header: LongHeader, addr: Any, now: float) -> bytes | None:
        """The Retry for ``header`` (an Initial from ``addr``), None if none can be made."""
        try:
            host = str(addr[0])
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            address = socket.inet_pton(family, host) + int(addr[1]).to_bytes(2, "big")
        except (OSError, ValueError, OverflowError, IndexError, TypeError):
            return None
        integrity = self._integrity.get(header.version)
        if integrity is None:
            return None
        odcid = header.destination_cid
        source_cid = os.urandom(8)
        # aioquic's token plaintext: address, original DCID, Retry SCID (one-byte
        # lengths each), issue time in ms; sealed as nonce || AES-GCM(plaintext).
        plain = b"".join(
            (
                bytes((len(address),)),
                address,
                bytes((len(odcid),)),
                odcid,
                bytes((len(source_cid),)),
                source_cid,
                int(now * 1000).to_bytes(8, "big"),
            )
        )
        nonce = os.urandom(NONCE_LENGTH)
        token = nonce + self._token_aead.encrypt(nonce, plain, None)
        dcid = header.source_cid
        packet = b"".join(
            (
                bytes((_RETRY_FIRST_BYTE[header.version],)),
                header.version.to_bytes(4, "big"),
                bytes((len(dcid),)),
                dcid,
                bytes((len(source_cid),)),
                source_cid,
                token,
            )
        )
        aead, aead_nonce = integrity
        pseudo = bytes((len(odcid),)) + odcid + packet
        return packet + aead.encrypt(aead_nonce, b"", pseudo)
