"""RTMP handshake, server side, sans-I/O (the "simple" handshake of the RTMP spec, section 5.2).

The client sends C0 (version byte, 3) and C1 (1536 bytes); we answer S0, S1 (our
time, four zero bytes, random bytes) and S2 (C1 echoed), then read C2 (1536 bytes)
and are done. ffmpeg and OBS/librtmp accept this answer even when their C1 carries
the Flash-player digest scheme, since publishers do not verify the server digest.
C2 is read but not verified (digest-scheme clients send something other than S1).
"""

from __future__ import annotations

import enum
import os
import struct
from typing import Final

from origin.rtmp.errors import HandshakeError, RtmpUsageError

__all__ = [
    "HANDSHAKE_SIZE",
    "RTMP_VERSION",
    "ServerHandshake",
    "build_c0c1",
]

RTMP_VERSION: Final = 3
HANDSHAKE_SIZE: Final = 1536


class _State(enum.Enum):
    WAIT_C0C1 = enum.auto()
    WAIT_C2 = enum.auto()
    DONE = enum.auto()


class ServerHandshake:
    """Feed bytes with :meth:`receive_data`; send what it returns; stop when :attr:`done`.

    Bytes received past C2 (the client's first chunks often share C2's segment)
    are kept in :attr:`leftover` for the chunk reader.
    """

    __slots__ = ("_buf", "_epoch_ms", "_random", "_state", "leftover")

    def __init__(self, *, epoch_ms: int = 0, random_bytes: bytes | None = None) -> None:
        if random_bytes is None:
            random_bytes = os.urandom(HANDSHAKE_SIZE - 8)
        if len(random_bytes) != HANDSHAKE_SIZE - 8:
            raise RtmpUsageError(f"S1 random part must be {HANDSHAKE_SIZE - 8} bytes")
        self._random = random_bytes
        self._epoch_ms = epoch_ms & 0xFFFFFFFF
        self._buf = bytearray()
        self._state = _State.WAIT_C0C1
        self.leftover = b""

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def awaiting_c2(self) -> bool:
        return self._state is _State.WAIT_C2

    def receive_data(self, data: bytes) -> bytes:
        """Consume client bytes; return the bytes to send (S0+S1+S2 once, else empty)."""
        if self._state is _State.DONE:
            raise RtmpUsageError("handshake already complete; feed the chunk reader instead")
        self._buf += data
        out = b""
        if self._state is _State.WAIT_C0C1:
            if self._buf and self._buf[0] != RTMP_VERSION:
                version = self._buf[0]
                hint = " (RTMPE/encrypted RTMP is not supported)" if version in (6, 8, 9) else ""
                if version in (0x16, ord("G"), ord("P"), ord("O"), ord("H")):
                    hint = " (this is TLS or HTTP, not RTMP)"
                raise HandshakeError(f"unsupported RTMP version {version} in C0{hint}")
            if len(self._buf) < 1 + HANDSHAKE_SIZE:
                return b""
            c1 = bytes(self._buf[1 : 1 + HANDSHAKE_SIZE])
            del self._buf[: 1 + HANDSHAKE_SIZE]
            s1 = struct.pack(">II", self._epoch_ms, 0) + self._random
            # S2 echoes C1 verbatim: librtmp compares it byte for byte with what it sent.
            out = bytes([RTMP_VERSION]) + s1 + c1
            self._state = _State.WAIT_C2
        if self._state is _State.WAIT_C2 and len(self._buf) >= HANDSHAKE_SIZE:
            self.leftover = bytes(self._buf[HANDSHAKE_SIZE:])
            self._buf.clear()
            self._state = _State.DONE
        return out


def build_c0c1(*, epoch_ms: int = 0, random_bytes: bytes | None = None) -> bytes:
    """A simple-handshake C0+C1 (used by tests and tools acting as a client)."""
    if random_bytes is None:
        random_bytes = os.urandom(HANDSHAKE_SIZE - 8)
    return bytes([RTMP_VERSION]) + struct.pack(">II", epoch_ms & 0xFFFFFFFF, 0) + random_bytes
