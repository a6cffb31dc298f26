"""MoQT data plane (drafts 14 and 16): subgroup streams, fetch streams, datagrams.

Public surface (implementation in the private ``moqt._data_*`` and
``moqt._extensions`` modules):

- Values: :class:`Object`, :class:`SubgroupHeader` (+ :class:`SubgroupIdMode`),
  :class:`FetchHeader`, :class:`FetchEndOfRange`, :class:`ObjectDatagram`;
  extensions are ``tuple[(type, int | bytes), ...]`` in wire order.
- Receiving: :class:`UniStreamParser` (classifies a unidirectional stream by
  its first varint, then delegates), :class:`SubgroupStreamParser`,
  :class:`FetchStreamParser` (``feed(bytes) -> events``, ``finish()`` at FIN),
  :func:`decode_datagram`, :func:`classify_uni_stream`.
- Sending: :func:`encode_subgroup_header`, :func:`encode_subgroup_object` /
  :func:`encode_subgroup_object_head`, :class:`SubgroupWriter`,
  :func:`encode_fetch_header`, :func:`encode_fetch_object`,
  :func:`encode_fetch_end_of_range`, :class:`FetchWriter`, :func:`encode_datagram`.

Every function takes the version explicitly. Peer faults raise
:class:`~moqt.errors.ProtocolViolation` (or :class:`MalformedTrack`, a subclass);
invalid local requests raise :class:`~moqt.errors.LocalError`.
"""

from __future__ import annotations

from ._data_datagram import decode_datagram, encode_datagram, is_datagram_type
from ._data_fetch import (
    FETCH_END_OF_NON_EXISTENT_RANGE,
    FETCH_END_OF_UNKNOWN_RANGE,
    FetchStreamParser,
    FetchWriter,
    encode_fetch_end_of_range,
    encode_fetch_header,
    encode_fetch_object,
)
from ._data_read import Short, read_varint
from ._data_subgroup import (
    SubgroupStreamParser,
    SubgroupWriter,
    encode_subgroup_header,
    encode_subgroup_object,
    encode_subgroup_object_head,
)
from ._data_types import (
    DEFAULT_MAX_EXTENSIONS_SIZE,
    DEFAULT_MAX_OBJECT_SIZE,
    FETCH_HEADER_TYPE,
    FetchEndOfRange,
    FetchHeader,
    Object,
    ObjectDatagram,
    StreamKind,
    SubgroupHeader,
    SubgroupIdMode,
    classify_uni_stream,
    is_subgroup_type,
    valid_statuses,
)
from ._extensions import (
    MAX_EXTENSION_VALUE_LENGTH,
    Extension,
    Extensions,
    ExtensionType,
    ExtensionValue,
    MalformedTrack,
    check_version,
    decode_extensions,
    decode_immutable_extensions,
    encode_extensions,
    encode_immutable_extensions,
    extension_values,
    prior_group_id_gap,
    prior_object_id_gap,
)
from .errors import LocalError, ProtocolViolation

__all__ = [
    "DEFAULT_MAX_EXTENSIONS_SIZE",
    "DEFAULT_MAX_OBJECT_SIZE",
    "FETCH_END_OF_NON_EXISTENT_RANGE",
    "FETCH_END_OF_UNKNOWN_RANGE",
    "FETCH_HEADER_TYPE",
    "MAX_EXTENSION_VALUE_LENGTH",
    "DataEvent",
    "Extension",
    "ExtensionType",
    "ExtensionValue",
    "Extensions",
    "FetchEndOfRange",
    "FetchHeader",
    "FetchStreamParser",
    "FetchWriter",
    "MalformedTrack",
    "Object",
    "ObjectDatagram",
    "StreamKind",
    "SubgroupHeader",
    "SubgroupIdMode",
    "SubgroupStreamParser",
    "SubgroupWriter",
    "UniStreamParser",
    "classify_uni_stream",
    "decode_datagram",
    "decode_extensions",
    "decode_immutable_extensions",
    "encode_datagram",
    "encode_extensions",
    "encode_fetch_end_of_range",
    "encode_fetch_header",
    "encode_fetch_object",
    "encode_immutable_extensions",
    "encode_subgroup_header",
    "encode_subgroup_object",
    "encode_subgroup_object_head",
    "extension_values",
    "is_datagram_type",
    "is_subgroup_type",
    "prior_group_id_gap",
    "prior_object_id_gap",
    "valid_statuses",
]

DataEvent = SubgroupHeader | FetchHeader | Object | FetchEndOfRange


class UniStreamParser:
    """Parser for a peer-opened unidirectional data stream of unknown kind.

    Buffers at most the first varint (<= 8 bytes), classifies the stream with
    :func:`classify_uni_stream`, then hands everything to a
    :class:`SubgroupStreamParser` or :class:`FetchStreamParser`. ``kind`` is
    None until the type is known. The first event is the stream header.
    """

    __slots__ = (
        "_dead",
        "_head",
        "_inner",
        "_max_extensions_size",
        "_max_object_size",
        "version",
    )

    def __init__(
        self,
        version: int,
        *,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        max_extensions_size: int = DEFAULT_MAX_EXTENSIONS_SIZE,
    ) -> None:
        check_version(version)
        self.version = version
        self._max_object_size = max_object_size
        self._max_extensions_size = max_extensions_size
        self._head = b""
        self._inner: SubgroupStreamParser | FetchStreamParser | None = None
        self._dead = False

    @property
    def kind(self) -> StreamKind | None:
        if self._inner is None:
            return None
        return "fetch" if isinstance(self._inner, FetchStreamParser) else "subgroup"

    @property
    def parser(self) -> SubgroupStreamParser | FetchStreamParser | None:
        return self._inner

    def feed(self, data: bytes) -> list[DataEvent]:
        inner = self._inner
        if inner is None:
            if self._dead:
                raise LocalError("feed() on a parser that already failed or finished")
            head = self._head + data
            try:
                stream_type, _ = read_varint(head, 0, len(head))
            except Short:
                self._head = bytes(head)
                return []
            self._head = b""
            try:
                kind = classify_uni_stream(stream_type, self.version)
            except ProtocolViolation:
                self._dead = True
                raise
            inner = (
                FetchStreamParser(
                    self.version,
                    max_object_size=self._max_object_size,
                    max_extensions_size=self._max_extensions_size,
                )
                if kind == "fetch"
                else SubgroupStreamParser(
                    self.version,
                    max_object_size=self._max_object_size,
                    max_extensions_size=self._max_extensions_size,
                )
            )
            self._inner = inner
            data = head
        return list(inner.feed(data))

    def finish(self) -> None:
        """The stream ended with FIN: reject a truncated type, header or object."""
        if self._inner is None:
            if self._dead:
                raise LocalError("finish() on a parser that already failed or finished")
            self._dead = True
            raise ProtocolViolation("stream ended (FIN) before its type was complete")
        self._inner.finish()
