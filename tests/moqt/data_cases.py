"""Known-good data-plane encodings, written by hand from the drafts' field layouts.

Each case is ``(name, version, kind, events, hex, canonical)``: ``events`` is
what a parser must produce from the bytes (stream header first for streams, a
single :class:`ObjectDatagram` for datagrams). ``canonical`` cases are also
exactly what our encoders produce for those events; the others are valid but
non-minimal encodings another implementation may send (decode only).
Whitespace and ``|`` in the hex separate fields for reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from moqt.data import (
    FetchEndOfRange,
    FetchHeader,
    Object,
    ObjectDatagram,
    SubgroupHeader,
    SubgroupIdMode,
)
from moqt.types import ObjectStatus
from moqt.version import DRAFT_14, DRAFT_16

Kind = Literal["subgroup", "fetch", "datagram"]
Event = SubgroupHeader | FetchHeader | Object | FetchEndOfRange | ObjectDatagram

EOG = ObjectStatus.END_OF_GROUP
EOT = ObjectStatus.END_OF_TRACK
DNE = ObjectStatus.DOES_NOT_EXIST

# 2186796243 as an 8-byte varint (0xC0 prefix + 0x8257DCD3) and the trace id of the
# drafts' extension example. The drafts print "Length = 21" / "Extension Headers
# Length = 33" for this example, which does not match "traceID:123456" (14 bytes);
# the lengths below are the real ones.
BIG = "c0000000 8257dcd3"
TRACE = "747261636549443a313233343536"
TRACE_B = bytes.fromhex(TRACE)


@dataclass(frozen=True)
class Case:
    name: str
    version: int
    kind: Kind
    events: tuple[Event, ...]
    hex: str
    canonical: bool = True

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex.replace("|", " ").replace(" ", ""))

    def __str__(self) -> str:
        return f"{self.name}-d{self.version & 0xFF}"


def _sg(
    alias: int,
    group: int,
    sub: int | None,
    prio: int | None,
    *,
    ext: bool = False,
    eog: bool = False,
    mode: SubgroupIdMode = SubgroupIdMode.EXPLICIT,
) -> SubgroupHeader:
    return SubgroupHeader(alias, group, sub, prio, ext, eog, mode)


CASES: list[Case] = [
    # ---- subgroup streams ------------------------------------------------------------
    # The drafts' first example: type 0x14 (Subgroup ID field present, priority present).
    *(
        Case(
            "spec-example-1",
            v,
            "subgroup",
            (
                _sg(2, 0, 0, 0),
                Object(0, 0, 0, 0, b"abcd"),
                Object(0, 0, 1, 0, b"efgh"),
            ),
            "14 02 00 00 00 | 00 04 61626364 | 00 04 65666768",
        )
        for v in (DRAFT_14, DRAFT_16)
    ),
    # Draft-16's second example: type 0x35 = EXTENSIONS | explicit Subgroup ID | DEFAULT_PRIORITY;
    # extension types delta-coded (4, then 77 - 4 = 73 = 0x4049).
    Case(
        "spec-example-2",
        DRAFT_16,
        "subgroup",
        (
            _sg(2, 0, 0, None, ext=True),
            Object(0, 0, 0, None, b"abcd", ((4, 2186796243), (77, TRACE_B))),
            Object(0, 0, 1, None, b"efgh"),
        ),
        f"35 02 00 00 | 00 1a 04 {BIG} 4049 0e {TRACE} 04 61626364 | 00 00 04 65666768",
    ),
    # Draft-14's version: type 0x15 with a priority byte; absolute extension types (77 = 0x404d).
    Case(
        "spec-example-2",
        DRAFT_14,
        "subgroup",
        (
            _sg(2, 0, 0, 0, ext=True),
            Object(0, 0, 0, 0, b"abcd", ((4, 2186796243), (77, TRACE_B))),
            Object(0, 0, 1, 0, b"efgh"),
        ),
        f"15 02 00 00 00 | 00 1a 04 {BIG} 404d 0e {TRACE} 04 61626364 | 00 00 04 65666768",
    ),
    # Type 0x18: Subgroup ID 0 (no field), END_OF_GROUP; an ID gap (delta 1) and an
    # End of Group status object (length 0, status 3).
    *(
        Case(
            "zero-mode-eog-status",
            v,
            "subgroup",
            (
                _sg(1, 5, 0, 0x80, eog=True, mode=SubgroupIdMode.ZERO),
                Object(5, 0, 0, 0x80, b"x"),
                Object(5, 0, 2, 0x80, b"yz"),
                Object(5, 0, 3, 0x80, b"", (), EOG),
            ),
            "18 01 05 80 | 00 01 78 | 01 02 797a | 00 00 03",
        )
        for v in (DRAFT_14, DRAFT_16)
    ),
    # Draft-16 type 0x32: Subgroup ID = first Object ID (5), DEFAULT_PRIORITY; track alias
    # 0x1234 as a 2-byte varint; a zero-length Normal object (length 0, status 0).
    Case(
        "first-object-mode-default-priority",
        DRAFT_16,
        "subgroup",
        (
            _sg(0x1234, 7, None, None, mode=SubgroupIdMode.FIRST_OBJECT),
            Object(7, 5, 5, None, b"a"),
            Object(7, 5, 6, None, b""),
        ),
        "32 5234 07 | 05 01 61 | 00 00 00",
    ),
    # Draft-14 type 0x1b: first-object mode, extensions, end of group; End of Track status.
    Case(
        "first-object-mode-eot",
        DRAFT_14,
        "subgroup",
        (
            _sg(3, 9, None, 1, ext=True, eog=True, mode=SubgroupIdMode.FIRST_OBJECT),
            Object(9, 4, 4, 1, b"q", ((0x3E, 4),)),
            Object(9, 4, 5, 1, b"", (), EOT),
        ),
        "1b 03 09 01 | 04 02 3e04 01 71 | 00 00 00 04",
    ),
    # Draft-14 type 0x11: Subgroup ID 0, extensions. Object Does Not Exist (0x1) then an
    # object with a Prior Object ID Gap (0x3E) extension.
    Case(
        "d14-does-not-exist",
        DRAFT_14,
        "subgroup",
        (
            _sg(0, 0, 0, 0xFF, ext=True, mode=SubgroupIdMode.ZERO),
            Object(0, 0, 0, 0xFF, b"", (), DNE),
            Object(0, 0, 1, 0xFF, b"p", ((0x3E, 1),)),
        ),
        "11 00 00 ff | 00 00 00 01 | 00 02 3e01 01 70",
    ),
    # Draft-14 keeps extension types in wire order (no delta coding): 77 before 2.
    Case(
        "d14-unsorted-extensions",
        DRAFT_14,
        "subgroup",
        (
            _sg(1, 1, 64, 2, ext=True),
            Object(1, 64, 0, 2, b"z", ((77, b""), (2, 10))),
        ),
        "15 01 01 4040 02 | 00 05 404d 00 02 0a 01 7a",
    ),
    # Draft-16 duplicates: delta 0 repeats a type; End of Track object with an empty block.
    Case(
        "d16-duplicate-extension-types",
        DRAFT_16,
        "subgroup",
        (
            _sg(1, 2**30, 63, 9, ext=True, eog=True),
            Object(2**30, 63, 2**14, 9, b"zz", ((2, 1), (2, 2), (5, b"ab"))),
            Object(2**30, 63, 2**14 + 1, 9, b"", (), EOT),
        ),
        "1d 01 c000000040000000 3f 09 | 8000 4000 08 0201 0002 03 02 6162 02 7a7a | 00 00 00 04",
    ),
    # Non-minimal varints (track alias 5 in 2 bytes, delta 0 in 2 bytes) are still valid.
    Case(
        "non-minimal-varints",
        DRAFT_16,
        "subgroup",
        (
            _sg(5, 1, 0, None, mode=SubgroupIdMode.ZERO),
            Object(1, 0, 0, None, b"k"),
        ),
        "30 4005 01 | 4000 01 6b",
        canonical=False,
    ),
    # ---- fetch streams ---------------------------------------------------------------
    # Draft-14: every field explicit; zero length -> status; Datagram objects carry
    # Subgroup ID = Object ID.
    Case(
        "d14-fetch",
        DRAFT_14,
        "fetch",
        (
            FetchHeader(7),
            Object(1, 0, 0, 5, b"a"),
            Object(1, 0, 1, 5, b"", (), EOG),
            Object(2, 3, 0, 6, b"bb", ((77, b"x"),)),
            Object(2, 2, 2, 6, b"", (), DNE),
        ),
        "05 07 | 01 00 00 05 00 01 61 | 01 00 01 05 00 00 03 | 02 03 00 06 04 404d0178 02 6262"
        " | 02 02 02 06 00 00 01",
    ),
    # Draft-16 serialization flags: 0x1c = Group|Object|Priority present (Subgroup 0);
    # 0x20 = only extensions (same group, object prior+1, same priority, Subgroup 0);
    # 0x54 = Datagram|Object|Priority (a varint >= 0x40: 2 bytes, 4054); 0x0f = Group|Object|Subgroup present;
    # End of Non-Existent Range 0x8c (2-byte varint 408c); then all explicit again.
    Case(
        "d16-fetch",
        DRAFT_16,
        "fetch",
        (
            FetchHeader(7),
            Object(1, 0, 0, 5, b"a"),
            Object(1, 0, 1, 5, b"bb", ((4, 9), (77, b"x"))),
            Object(1, None, 3, 6, b""),
            Object(2, 3, 0, 6, b"c"),
            FetchEndOfRange(5, 0),
            Object(6, 0, 0, 1, b"z"),
        ),
        "05 07 | 1c 01 00 05 01 61 | 20 06 0409 4049 0178 02 6262 | 4054 03 06 00"
        " | 0f 02 03 00 01 63 | 408c 05 00 | 1c 06 00 01 01 7a",
    ),
    # Draft-16 prior references another sender may use: 0x01 Subgroup = prior,
    # 0x02 Subgroup = prior + 1, Object = prior + 1, Group/Priority = prior;
    # End of Unknown Range 0x10c; after it Group/Object follow the marker's location
    # while Subgroup and Priority are the last object's.
    Case(
        "d16-fetch-prior-references",
        DRAFT_16,
        "fetch",
        (
            FetchHeader(0),
            Object(1, 2, 0, 7, b"a"),
            Object(1, 2, 1, 7, b"b"),
            Object(1, 3, 2, 7, b"c"),
            FetchEndOfRange(4, 9, unknown=True),
            Object(4, 3, 10, 7, b""),
        ),
        "05 00 | 1f 01 02 00 07 01 61 | 01 01 62 | 02 01 63 | 410c 04 09 | 01 00",
        canonical=False,
    ),
    # ---- datagrams -------------------------------------------------------------------
    # Draft-16 0x0c: ZERO_OBJECT_ID | DEFAULT_PRIORITY; the payload is the rest.
    Case(
        "d16-dgram-compact",
        DRAFT_16,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 0, None, b"hi")),),
        "0c 01 02 | 6869",
    ),
    # Draft-16 0x03: EXTENSIONS | END_OF_GROUP, Object ID 5, priority 3, extension (2, 100).
    Case(
        "d16-dgram-ext-eog",
        DRAFT_16,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 5, 3, b"p", ((2, 100),)), end_of_group=True),),
        "03 01 02 05 03 | 03 02 4064 | 70",
    ),
    # Draft-16 status datagrams: 0x20 (End of Track) and 0x2c (ZERO_OBJECT_ID |
    # DEFAULT_PRIORITY | STATUS, End of Group).
    Case(
        "d16-dgram-status",
        DRAFT_16,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 7, 1, b"", (), EOT)),),
        "20 01 02 07 01 | 04",
    ),
    Case(
        "d16-dgram-status-compact",
        DRAFT_16,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 0, None, b"", (), EOG)),),
        "2c 01 02 | 03",
    ),
    # Draft-16: an explicit Object ID 0 and an empty payload (type 0x00) is valid.
    Case(
        "d16-dgram-explicit-zero-id",
        DRAFT_16,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 0, 0x80, b"")),),
        "00 01 02 00 80",
        canonical=False,
    ),
    # Draft-14 0x04: no Object ID; priority always present.
    Case(
        "d14-dgram",
        DRAFT_14,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 0, 0x80, b"hi")),),
        "04 01 02 80 | 6869",
    ),
    Case(
        "d14-dgram-ext-eog",
        DRAFT_14,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 5, 3, b"p", ((2, 100),)), end_of_group=True),),
        "03 01 02 05 03 | 03 02 4064 | 70",
    ),
    # Draft-14 status datagrams: 0x20 (Object ID always present), 0x21 with extensions.
    Case(
        "d14-dgram-status",
        DRAFT_14,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 9, 0, b"", (), DNE)),),
        "20 01 02 09 00 | 01",
    ),
    Case(
        "d14-dgram-status-ext",
        DRAFT_14,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 9, 0, b"", ((3, b"ab"),), EOG)),),
        "21 01 02 09 00 | 04 03 02 6162 | 03",
    ),
    # Draft-14 status datagram carrying Normal: an empty object (we would send type 0x04).
    Case(
        "d14-dgram-status-normal",
        DRAFT_14,
        "datagram",
        (ObjectDatagram(1, Object(2, None, 0, 0x80, b"")),),
        "20 01 02 00 80 | 00",
        canonical=False,
    ),
]
