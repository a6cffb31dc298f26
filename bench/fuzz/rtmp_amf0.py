"""AMF0 values (RTMP command and data message bodies, FLV script tags): ``decode_all``.

Allowed: AmfDecodeError.
"""

from __future__ import annotations

from collections.abc import Iterator

from origin.rtmp import amf0
from origin.rtmp.errors import AmfDecodeError

__all__ = ["TestOneInput", "seeds"]


def TestOneInput(data: bytes) -> None:
    try:
        amf0.decode_all(data)
    except AmfDecodeError:
        pass


def seeds() -> Iterator[bytes]:
    """Commands and metadata as publishers send them, and every AMF0 marker we encode."""
    from origin.rtmp.amf0 import UNDEFINED, AmfDate, EcmaArray, TypedObject

    yield amf0.encode_all(["connect", 1.0, {"app": "live/lv_1", "tcUrl": "rtmp://h/live/lv_1",
                                            "flashVer": "FMLE/3.0", "fpad": False}])  # fmt: skip
    yield amf0.encode_all(["publish", 5.0, None, "key", "live"])
    yield amf0.encode_all(["@setDataFrame", "onMetaData",
                           EcmaArray({"width": 1280.0, "height": 720.0, "encoder": "obs"})])  # fmt: skip
    yield amf0.encode_all([UNDEFINED, [1.0, "x", None], AmfDate(1.5e12, 0), "é" * 3])
    yield amf0.encode_all([TypedObject("flex.Foo", {"a": 1.0}), "x" * 70000])
    yield amf0.encode_all([{"nested": {"deeper": [True, {"k": EcmaArray({})}]}}])
