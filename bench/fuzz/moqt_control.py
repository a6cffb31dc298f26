"""MoQT control messages (drafts 14 and 16): ``decode_control`` over a control stream.

Byte 0 picks the version (bit 0: draft-16) and ``strict_parameters`` (bit 1); the rest
is decoded message after message. Allowed: NeedMoreData (wait for more bytes) and
PeerError (the session closes with its code).
"""

from __future__ import annotations

from collections.abc import Iterator

from moqt._buffer import Buffer, NeedMoreData
from moqt.errors import PeerError
from moqt.messages import decode_control
from moqt.version import DRAFT_14, DRAFT_16

__all__ = ["TestOneInput", "seeds"]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    version = DRAFT_16 if data[0] & 1 else DRAFT_14
    strict = bool(data[0] & 2)
    buf = Buffer(data[1:])
    try:
        while not buf.eof():
            before = buf.position
            decode_control(buf, version, strict_parameters=strict)
            if buf.position <= before:
                raise AssertionError("decode_control consumed nothing")
    except (NeedMoreData, PeerError):
        pass


def seeds() -> Iterator[bytes]:
    """Every control message type of both drafts, as our encoder writes it."""
    import warnings

    from hypothesis.errors import NonInteractiveExampleWarning

    from moqt.messages import encode_control, message_types
    from tests.moqt.test_messages_properties import STRATEGIES

    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    for version, flag in ((DRAFT_14, 0), (DRAFT_16, 1)):
        for cls in message_types(version).values():
            for _ in range(3):
                msg = STRATEGIES[cls](version).example()
                try:
                    wire = encode_control(msg, version)
                except Exception:
                    continue
                yield bytes((flag | 2,)) + wire
