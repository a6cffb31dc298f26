"""MSF/CMSF catalogs (JSON): ``Catalog.parse`` and ``Catalog.parse_update`` (delta updates).

Byte 0: bit 0 parses as an update applied to a fixed two-track catalog. Allowed:
CatalogError (a MediaError).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from media.catalog import Catalog
from media.errors import MediaError

__all__ = ["TestOneInput", "seeds"]

_BASE_JSON = {
    "version": 1,
    "generatedAt": 1746104606044,
    "tracks": [
        {"name": "hd", "renderGroup": 1, "packaging": "cmaf", "isLive": True,
         "initData": "AAAAIGZ0eXA=", "role": "video", "codec": "avc1.640028", "width": 1920,
         "height": 1080, "bitrate": 5000000, "framerate": 30, "altGroup": 1},
        {"name": "audio", "renderGroup": 1, "packaging": "cmaf", "isLive": True,
         "initData": "AAAAHGZ0", "role": "audio", "codec": "mp4a.40.5", "samplerate": 48000,
         "channelConfig": "2", "bitrate": 67071},
    ],
}  # fmt: skip
_BASE = Catalog.parse(json.dumps(_BASE_JSON))


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    try:
        if data[0] & 1:
            Catalog.parse_update(data[1:], _BASE)
        else:
            Catalog.parse(data[1:])
    except MediaError:
        pass


def _delta(*ops: dict[str, object]) -> bytes:
    return json.dumps({"generatedAt": 7, "deltaUpdate": list(ops)}).encode()


def seeds() -> Iterator[bytes]:
    """The CMSF example, a catalog built from ffmpeg-made init segments, delta updates."""
    from bench.fuzz._media_seeds import ffmpeg_fmp4
    from media.catalog import CatalogTrack
    from media.fmp4 import InitSegment, split_fmp4

    yield b"\x00" + json.dumps(_BASE_JSON).encode()
    inits = {}
    for name, data in ffmpeg_fmp4().items():
        if name == "muxed":
            continue
        first = split_fmp4(data)[0]
        assert isinstance(first, InitSegment)
        inits[name] = first
    built = Catalog.build(
        [
            CatalogTrack.from_init("v", inits["video"], bitrate=80_000, framerate=10, alt_group=1),
            CatalogTrack.from_init("a", inits["audio"], bitrate=16_000),
        ],
        generated_at=1,
    )
    yield b"\x00" + built.to_json()
    yield b"\x00" + built.to_json(init_data_list=True)
    yield b"\x01" + _delta(
        {"op": "update", "tracks": [{"name": "hd", "bitrate": 700_000}]},
        {"op": "clone", "tracks": [{"parentName": "hd", "name": "sd", "width": 320}]},
        {"op": "add", "tracks": [{"name": "cc", "packaging": "eventtimeline", "isLive": True,
                                  "eventType": "org.example.captions"}]},
        {"op": "remove", "tracks": [{"name": "audio"}]},
    )  # fmt: skip
    yield b"\x01" + built.ended(generated_at=9).to_json()
