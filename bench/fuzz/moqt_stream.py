"""MoQT unidirectional data streams (subgroup and fetch, drafts 14 and 16).

Byte 0 picks the version (bit 0: draft-16); byte 1 is the chunk size the stream is
fed in (0: all at once), then ``finish()`` as at FIN. Allowed: PeerError.
"""

from __future__ import annotations

from collections.abc import Iterator

from moqt.data import UniStreamParser
from moqt.errors import PeerError
from moqt.version import DRAFT_14, DRAFT_16

__all__ = ["TestOneInput", "seeds"]


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    version = DRAFT_16 if data[0] & 1 else DRAFT_14
    step = data[1] or len(data)
    body = data[2:]
    parser = UniStreamParser(version, max_object_size=4096)
    try:
        for i in range(0, len(body), step):
            parser.feed(body[i : i + step])
        parser.finish()
    except PeerError:
        pass


def seeds() -> Iterator[bytes]:
    """Subgroup and fetch streams of both drafts, as our writers produce them."""
    import warnings

    from hypothesis.errors import NonInteractiveExampleWarning

    from moqt.data import FetchEndOfRange, FetchWriter
    from tests.moqt.data_strategies import encode_subgroup, fetch_streams, subgroup_streams

    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    for version, flag in ((DRAFT_14, 0), (DRAFT_16, 1)):
        for i in range(12):
            header, objects = subgroup_streams(version).example()
            yield bytes((flag, (0, 1, 7)[i % 3])) + encode_subgroup(version, header, objects)
        for i in range(12):
            items = fetch_streams(version).example()
            writer = FetchWriter(i, version)
            out = bytearray(writer.header_bytes())
            for item in items:
                if isinstance(item, FetchEndOfRange):
                    out += writer.end_of_range(item.group_id, item.object_id, unknown=item.unknown)
                else:
                    out += writer.write_object(item)
            yield bytes((flag, (0, 3, 64)[i % 3])) + bytes(out)
