"""Play an on-demand asset (``pb_...``) over HTTPS, with the live viewer's callbacks.

::

    viewer = BroadcastViewer.open(ticket.url, on_chunk=on_chunk, on_close=on_close)
    # ticket.url = <base>/vod/<pb_id>/catalog.json?token=<jwt>  (docs/vod.md)

:class:`AsyncVodViewer` reads the catalog, picks the video rendition (the
highest, or ``rendition=``, or the highest within ``max_height``) and the audio
track, then calls ``on_chunk(is_init, chunk)`` exactly as the live viewer does:

* first the init segment (``is_init`` True): one ``moov`` declaring video
  (track 1) and audio (track 2), built from the catalog's ``initData``;
* then every media segment of both tracks in presentation order (``moof`` +
  ``mdat``, retagged with those track ids), so writing every ``chunk.data`` to a
  file gives a playable fragmented MP4 of the whole asset (or from ``start``
  seconds, at the group at or before it, found in the catalog's timeline);
* ``on_close("ended", ...)`` after the last segment. Other reasons:
  ``auth_failed`` (401/403: bad, expired or revoked token), ``not_found``
  (unknown or not ready ``pb_`` id), ``network``, ``closed``, ``error``.

Segments are fetched a few ahead of delivery (``prefetch``) and retried on
network errors. Callbacks run on the event loop: keep them short.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

from clutchcall.streams._backoff import Backoff
from clutchcall.streams._cmaf import CmafError, merge_init_segments, retag_chunk
from clutchcall.streams._connect import resolve_tls
from clutchcall.streams._errors import ConfigurationError
from clutchcall.streams._viewer_types import Chunk, ChunkCallback, CloseCallback, ViewerOptions
from media import Catalog, CatalogTrack, MediaError
from moqt._log import library_logger

__all__ = ["AsyncVodViewer", "is_vod_url", "subject_of_token", "vod_url"]

_log = library_logger("clutchcall.streams.vod")

_VOD_PATH = re.compile(r"^(?P<base>.*)/vod/(?P<pb>pb_[A-Za-z0-9]{1,64})(?:/(?:catalog\.json)?)?$")
_VIDEO_ID, _AUDIO_ID = 1, 2
_RETRY_PAUSE = 0.2  # x 2 per failure
_DROP_BOXES = frozenset({b"styp", b"sidx", b"ssix"})  # per-segment index boxes: not in one file


def is_vod_url(url: str) -> bool:
    """``http(s)://.../vod/pb_.../catalog.json`` (or ``.../vod/pb_...``)."""
    if not isinstance(url, str):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and _VOD_PATH.match(parts.path) is not None


def vod_url(base_url: str, playback_id: str, token: str | None = None) -> str:
    """The catalog URL of ``playback_id`` served by the control plane at ``base_url``."""
    url = f"{base_url.rstrip('/')}/vod/{urllib.parse.quote(playback_id, safe='')}/catalog.json"
    return url if token is None else f"{url}?token={urllib.parse.quote(token, safe='')}"


def subject_of_token(token: str) -> str | None:
    """The ``sub`` claim of a playback JWT (read, not verified: the server verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error) as exc:
        raise ConfigurationError("the playback token is not a JWT") from exc
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


@dataclass(frozen=True, slots=True)
class _Target:
    base: str  # .../vod/<pb_id>/ (ends with /)
    playback_id: str
    token: str | None


def _parse(url: str, token: str | None) -> _Target:
    parts = urllib.parse.urlsplit(url)
    match = _VOD_PATH.match(parts.path)
    if parts.scheme not in ("http", "https") or match is None or not parts.hostname:
        raise ConfigurationError(
            f"{url!r} is not an on-demand URL (<base>/vod/pb_.../catalog.json)"
        )
    tokens = urllib.parse.parse_qs(parts.query).get("token", [])
    if len(tokens) > 1:
        raise ConfigurationError("the URL carries more than one token")
    if tokens and token is not None and tokens[0] != token:
        raise ConfigurationError("the URL's ?token= and token= differ")
    path = f"{match['base']}/vod/{match['pb']}/"
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return _Target(base, match["pb"], tokens[0] if tokens else token)


@dataclass(frozen=True, slots=True)
class _Segment:
    pts_ms: int
    kind: str  # "video" | "audio"
    track: CatalogTrack
    group: int


class _Closed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _strip_index_boxes(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        box = data[pos + 4 : pos + 8]
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:
            size = len(data) - pos
        if size < 8 or pos + size > len(data):
            return data  # not ours to judge: the retag step reports malformed media
        if box not in _DROP_BOXES:
            out += data[pos : pos + size]
        pos += size
    return bytes(out)


class AsyncVodViewer:
    """The asyncio on-demand viewer; same surface as :class:`AsyncBroadcastViewer`."""

    def __init__(self, target: _Target, options: ViewerOptions) -> None:
        self.target = target
        self._options = options
        tls = options.tls
        self._http = httpx.AsyncClient(
            timeout=options.request_timeout,
            verify=tls.cafile if (tls.verify and tls.cafile) else tls.verify,
            follow_redirects=True,
        )
        self._catalog: Catalog | None = None
        self._video: CatalogTrack | None = None
        self._result: tuple[str, str] | None = None
        self._closed_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._chunks = 0
        self._bytes = 0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        on_chunk: ChunkCallback | None = None,
        on_close: CloseCallback | None = None,
        token: str | None = None,
        rendition: str | None = None,
        max_height: int | None = None,
        audio: bool = True,
        start: float = 0.0,
        verify: bool | None = None,
        cafile: str | None = None,
        prefetch: int = 4,
        request_timeout: float = 30.0,
        retries: int = 3,
        **_live_only: Any,
    ) -> AsyncVodViewer:
        """Start playing ``url`` (``<base>/vod/<pb_id>/catalog.json?token=...``); returns at
        once, results arrive through the callbacks. Live-only options are ignored."""
        if start < 0 or request_timeout <= 0 or retries < 0:
            raise ConfigurationError("start, request_timeout and retries must not be negative")
        target = _parse(url, token)
        options = ViewerOptions(
            on_chunk=on_chunk,
            on_close=on_close,
            tls=resolve_tls(verify, cafile),
            rendition=rendition,
            max_height=max_height,
            audio=audio,
            start=start,
            prefetch=prefetch,
            request_timeout=request_timeout,
            retries=retries,
        )
        viewer = cls(target, options)
        viewer._task = asyncio.ensure_future(viewer._run())
        return viewer

    # --- API (as AsyncBroadcastViewer) ----------------------------------------------------

    async def close(self) -> tuple[str, str]:
        self._finish("closed", "closed by the application")
        return await self.wait_closed()

    async def wait_closed(self) -> tuple[str, str]:
        await self._closed_event.wait()
        assert self._result is not None
        return self._result

    @property
    def closed(self) -> bool:
        return self._closed_event.is_set()

    @property
    def rendition(self) -> str | None:
        return self._video.name if self._video is not None else None

    @property
    def renditions(self) -> list[str]:
        if self._catalog is None:
            return []
        return [t.name for t in self._catalog.by_role("video") if t.init_data]

    def select_rendition(self, name: str | None) -> None:
        """On demand, the rendition is chosen once, at the start (``rendition=``)."""
        if self._video is not None and name is not None and name != self._video.name:
            raise ConfigurationError("an on-demand viewer plays one rendition; open a new one")

    def statistics(self) -> dict[str, Any]:
        return {
            "chunks": self._chunks,
            "bytes": self._bytes,
            "switches": 0,
            "rendition": self.rendition,
            "lag": 0.0,
        }

    def _finish(self, reason: str, detail: str) -> None:
        """Stop now with ``reason`` (what BroadcastViewer calls from inside a callback)."""
        if self._result is None:
            self._result = (reason, detail)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- the run ----------------------------------------------------------------------------

    async def _run(self) -> None:
        result = ("ended", "the asset ended")
        try:
            await self._play()
        except _Closed as exc:
            result = (exc.reason, exc.detail)
        except asyncio.CancelledError:
            result = ("closed", "closed by the application")
        except Exception as exc:  # a bug must still end in on_close, never a silent hang
            _log.exception("vod_viewer_failed")
            result = ("error", f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await self._http.aclose()
            if self._result is None:
                self._result = result
            self._closed_event.set()
            if self._options.on_close is not None:
                try:
                    self._options.on_close(*self._result)
                except Exception:
                    _log.exception("on_close_failed")

    async def _get(self, path: str) -> bytes:
        url = self.target.base + path
        headers = {"Authorization": f"Bearer {self.target.token}"} if self.target.token else {}
        # Network errors and 5xx answers: tried again after 0.4, 0.8, 1.6 ... s, ``retries`` times.
        retry = Backoff(_RETRY_PAUSE, factor=2.0, tries=self._options.retries)
        while True:
            try:
                response = await self._http.get(url, headers=headers)
            except httpx.TransportError as exc:
                pause = retry.failed()
                if pause is None:
                    raise _Closed(
                        "network", f"cannot fetch {path}: {exc or type(exc).__name__}"
                    ) from exc
                await asyncio.sleep(pause)
                continue
            status = response.status_code
            if status in (401, 403):
                raise _Closed("auth_failed", _detail(response) or "unauthorized")
            if status == 404:
                raise _Closed(
                    "not_found", _detail(response) or f"{self.target.playback_id}: not found"
                )
            if status >= 500 and (pause := retry.failed()) is not None:
                await asyncio.sleep(pause)
                continue
            if status != 200:
                raise _Closed("network", f"{path}: HTTP {status} {_detail(response)}".strip())
            return response.content

    def _choose(self, catalog: Catalog) -> tuple[CatalogTrack, CatalogTrack | None]:
        videos = [t for t in catalog.by_role("video") if t.init_data and t.timeline]
        if not videos:
            raise _Closed("error", "the catalog has no playable video track")
        pin, max_height = self._options.rendition, self._options.max_height
        if pin is not None:
            pinned = [t for t in videos if t.name == pin]
            if not pinned:
                raise _Closed("error", f"no rendition {pin!r}; the catalog has "
                                       f"{[t.name for t in videos]}")  # fmt: skip
            video = pinned[0]
        else:
            fit = [t for t in videos if max_height is None or (t.height or 0) <= max_height]
            video = max(fit or videos, key=lambda t: ((t.height or 0), t.bitrate or 0))
        audios = [t for t in catalog.by_role("audio") if t.init_data and t.timeline]
        return video, (audios[0] if audios and self._options.audio else None)

    def _plan(self, video: CatalogTrack, audio: CatalogTrack | None) -> list[_Segment]:
        start_ms = int(self._options.start * 1000)

        def segments(kind: str, track: CatalogTrack) -> list[_Segment]:
            records = sorted(track.timeline or (), key=lambda r: r[0])
            first = 0
            for i, (pts, _loc, _wall) in enumerate(records):
                if pts <= start_ms:
                    first = i  # the last group starting at or before the target
            return [_Segment(pts, kind, track, loc[0]) for pts, loc, _w in records[first:]]

        plan = segments("video", video)
        if audio is not None:
            plan += segments("audio", audio)
        # Presentation order; at equal times video first (the file begins with video).
        return sorted(plan, key=lambda s: (s.pts_ms, s.kind != "video"))

    async def _play(self) -> None:
        try:
            catalog = Catalog.parse(await self._get("catalog.json"))
        except MediaError as exc:
            raise _Closed("error", f"bad catalog: {exc}") from exc
        self._catalog = catalog
        video, audio = self._choose(catalog)
        self._video = video
        inits = [video.init_data] + ([audio.init_data] if audio is not None else [])
        ids = [_VIDEO_ID] + ([_AUDIO_ID] if audio is not None else [])
        try:
            init = merge_init_segments([i for i in inits if i is not None], ids)
        except CmafError as exc:
            raise _Closed("error", f"cannot build the init segment: {exc}") from exc
        self._emit(Chunk(init, True, "init", video.name))
        plan = self._plan(video, audio)
        pending: dict[int, asyncio.Task[bytes]] = {}
        try:
            for index, seg in enumerate(plan):
                for ahead in range(index, min(len(plan), index + max(1, self._options.prefetch))):
                    if ahead not in pending:
                        s = plan[ahead]
                        pending[ahead] = asyncio.ensure_future(
                            self._get(f"{urllib.parse.quote(s.track.name, safe='')}/{s.group}.m4s")
                        )
                data = await pending.pop(index)
                track_id = _VIDEO_ID if seg.kind == "video" else _AUDIO_ID
                try:
                    payload = retag_chunk(_strip_index_boxes(data), track_id)
                except CmafError as exc:
                    raise _Closed("error", f"{seg.track.name}/{seg.group}.m4s: {exc}") from exc
                kind = "video" if seg.kind == "video" else "audio"
                self._emit(Chunk(payload, False, kind, seg.track.name, seg.group, 0))  # type: ignore[arg-type]
        finally:
            for task in pending.values():
                task.cancel()
            await asyncio.gather(*pending.values(), return_exceptions=True)

    def _emit(self, chunk: Chunk) -> None:
        self._chunks += 1
        self._bytes += len(chunk.data)
        if self._options.on_chunk is None:
            return
        try:
            self._options.on_chunk(chunk.is_init, chunk)
        except Exception as exc:
            _log.exception("on_chunk_failed")
            raise _Closed("error", f"on_chunk raised {type(exc).__name__}: {exc}") from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or "")
    return ""
