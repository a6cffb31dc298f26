"""Typed RTMP errors.

Two families, never mixed: :class:`RtmpPeerError` subclasses mean the *peer*
sent something we refuse (the connection is closed, the server keeps serving
others); :class:`RtmpUsageError` means *our* code called the sans-I/O core in a
way its state does not allow (a bug on our side, never blamed on the peer).
"""

from __future__ import annotations

__all__ = [
    "AmfDecodeError",
    "AmfEncodeError",
    "ChunkStreamError",
    "FlvFormatError",
    "HandshakeError",
    "LimitExceeded",
    "RtmpError",
    "RtmpPeerError",
    "RtmpProtocolViolation",
    "RtmpUsageError",
]


class RtmpError(Exception):
    """Base of every error raised by :mod:`origin.rtmp`."""


class RtmpPeerError(RtmpError):
    """The peer broke the protocol or a limit; the connection must close."""

    #: Stable, machine-readable reason used in logs and end notices.
    reason = "protocol_error"


class HandshakeError(RtmpPeerError):
    """C0/C1/C2 malformed or an unsupported RTMP version (e.g. RTMPE)."""

    reason = "bad_handshake"


class ChunkStreamError(RtmpPeerError):
    """Malformed chunk stream: bad header, unknown chunk stream continuation, ..."""

    reason = "bad_chunk_stream"


class LimitExceeded(RtmpPeerError):
    """The peer asked for more than our configured limits (chunk size, message size, streams)."""

    reason = "limit_exceeded"


class AmfDecodeError(RtmpPeerError):
    """AMF0 bytes that do not decode: truncated, unknown marker, bad UTF-8, too deep."""

    reason = "bad_amf"


class RtmpProtocolViolation(RtmpPeerError):
    """Well-formed bytes that break the RTMP message rules (bad command, wrong state)."""

    reason = "protocol_violation"


class FlvFormatError(RtmpPeerError):
    """An FLV file or FLV tag body that does not parse (bad header, truncated tag)."""

    reason = "bad_flv"


class AmfEncodeError(RtmpError):
    """We were asked to encode a Python value AMF0 cannot represent (our fault)."""


class RtmpUsageError(RtmpError):
    """The sans-I/O core was driven in a way its state does not allow (our fault)."""
