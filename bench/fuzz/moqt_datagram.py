"""MoQT OBJECT_DATAGRAMs (drafts 14 and 16): ``decode_datagram``.

Byte 0 picks the version (bit 0: draft-16); the rest is one datagram. Allowed: PeerError.
"""

from __future__ import annotations

from collections.abc import Iterator

from moqt.data import decode_datagram
from moqt.errors import PeerError
from moqt.version import DRAFT_14, DRAFT_16

__all__ = ["TestOneInput", "seeds"]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    version = DRAFT_16 if data[0] & 1 else DRAFT_14
    try:
        decode_datagram(data[1:], version, max_object_size=4096)
    except PeerError:
        pass


def seeds() -> Iterator[bytes]:
    """Datagrams of both drafts, as our encoder writes them."""
    import warnings

    from hypothesis.errors import NonInteractiveExampleWarning

    from moqt.data import encode_datagram
    from tests.moqt.data_strategies import datagrams

    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    for version, flag in ((DRAFT_14, 0), (DRAFT_16, 1)):
        for _ in range(16):
            yield bytes((flag,)) + encode_datagram(datagrams(version).example(), version)
