"""HLS playlists (RFC 8216, version 7: fMP4 segments with EXT-X-MAP) for a packaged asset.

:func:`playlists` writes ``master.m3u8`` (one variant per video track, the audio
track as an ``EXT-X-MEDIA`` rendition group) and ``<track>/index.m3u8`` per track,
from the catalog and the segments written. :func:`with_token` rewrites a
playlist served with ``?token=`` so that every URI it lists carries the token,
which makes any HLS player work with signed assets.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from media.catalog import Catalog, CatalogTrack

__all__ = ["MASTER", "SegmentLike", "media_playlist_name", "playlists", "with_token"]

MASTER: Final = "master.m3u8"
_AUDIO_GROUP: Final = "audio"
_URI_ATTR = re.compile(r'URI="([^"]*)"')


class SegmentLike(Protocol):
    @property
    def group(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def size(self) -> int: ...


def media_playlist_name(track: str) -> str:
    return f"{track}/index.m3u8"


def playlists(catalog: Catalog, segments: Mapping[str, Sequence[SegmentLike]]) -> dict[str, str]:
    """``{relative path: playlist text}``: the master and one media playlist per track."""
    out: dict[str, str] = {}
    for track in catalog.tracks:
        out[media_playlist_name(track.name)] = _media_playlist(segments[track.name])
    out[MASTER] = _master(catalog, segments)
    return out


def _media_playlist(segments: Sequence[SegmentLike]) -> str:
    target = max((round(s.duration_s) for s in segments), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{max(1, target)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    for seg in segments:
        lines.append(f"#EXTINF:{seg.duration_s:.5f},")
        lines.append(f"{seg.group}.m4s")
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _bandwidth(segments: Sequence[SegmentLike]) -> tuple[int, int]:
    """(peak, average) bits per second over the segments."""
    peak = 0.0
    total_bytes = 0
    total_s = 0.0
    for seg in segments:
        total_bytes += seg.size
        total_s += seg.duration_s
        if seg.duration_s > 0.25:  # a short last segment would overstate the peak
            peak = max(peak, seg.size * 8 / seg.duration_s)
    average = total_bytes * 8 / total_s if total_s > 0 else 0.0
    return max(1, math.ceil(max(peak, average))), max(1, math.ceil(average))


def _master(catalog: Catalog, segments: Mapping[str, Sequence[SegmentLike]]) -> str:
    videos = catalog.by_role("video")
    audios = catalog.by_role("audio")
    audio = audios[0] if audios else None
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None and videos:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{_AUDIO_GROUP}",NAME="{audio.name}",'
            f'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{audio.channel_config or 2}",'
            f'URI="{media_playlist_name(audio.name)}"'
        )
    audio_peak, audio_avg = _bandwidth(segments[audio.name]) if audio is not None else (0, 0)
    for video in videos:
        peak, avg = _bandwidth(segments[video.name])
        attrs = [
            f"BANDWIDTH={peak + audio_peak}",
            f"AVERAGE-BANDWIDTH={avg + audio_avg}",
            f'CODECS="{_codecs(video, audio)}"',
        ]
        if video.width and video.height:
            attrs.append(f"RESOLUTION={video.width}x{video.height}")
        if video.framerate:
            attrs.append(f"FRAME-RATE={video.framerate:.3f}")
        if audio is not None:
            attrs.append(f'AUDIO="{_AUDIO_GROUP}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(media_playlist_name(video.name))
    if not videos and audio is not None:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={audio_peak},AVERAGE-BANDWIDTH={audio_avg},"
            f'CODECS="{audio.codec}"'
        )
        lines.append(media_playlist_name(audio.name))
    return "\n".join(lines) + "\n"


def _codecs(video: CatalogTrack, audio: CatalogTrack | None) -> str:
    codecs = [video.codec or ""]
    if audio is not None and audio.codec:
        codecs.append(audio.codec)
    return ",".join(c for c in codecs if c)


def with_token(playlist: str, token: str) -> str:
    """The playlist with ``token=<token>`` added to every URI it lists (lines and ``URI=""``)."""
    query = "token=" + urllib.parse.quote(token, safe="")

    def add(uri: str) -> str:
        return f"{uri}{'&' if '?' in uri else '?'}{query}"

    out: list[str] = []
    for line in playlist.splitlines():
        if not line:
            out.append(line)
        elif line.startswith("#"):
            out.append(_URI_ATTR.sub(lambda m: f'URI="{add(m.group(1))}"', line))
        else:
            out.append(add(line))
    return "\n".join(out) + "\n"
