"""The broadcast catalog: MSF JSON (draft-ietf-moq-msf-01) with CMSF ``cmaf`` packaging.

Published as the first object of each group on the ``.catalog`` track (the
seed's name; relays also answer the MSF name ``catalog``). Every track entry
carries its CMAF header as base64 ``initData`` (CMSF 3.1), so a late joiner
needs nothing older than the current group of a media track.

:meth:`Catalog.to_json` writes an independent (complete) catalog;
:meth:`Catalog.parse` validates one and raises :class:`CatalogError` for bad
JSON or a bad shape. Unknown fields are ignored, as MSF requires of parsers.
This system publishes only independent catalogs; :meth:`Catalog.parse_update`
also applies MSF delta updates (add, remove, clone, update) from other publishers.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ._init import InitSegment
from .errors import CatalogError

__all__ = [
    "CATALOG_TRACK",
    "CATALOG_TRACK_NAMES",
    "MSF_CATALOG_TRACK",
    "MSF_VERSION",
    "PACKAGING_CMAF",
    "Catalog",
    "CatalogTrack",
    "is_catalog_track",
]

CATALOG_TRACK = ".catalog"
MSF_CATALOG_TRACK = "catalog"
CATALOG_TRACK_NAMES = frozenset({CATALOG_TRACK, MSF_CATALOG_TRACK})
MSF_VERSION = "draft-01"
PACKAGING_CMAF = "cmaf"

_MEDIA_ROLES = frozenset({"video", "audio", "audiodescription", "signlanguage"})
_AUDIO_ROLES = frozenset({"audio", "audiodescription"})
_MEDIA_PACKAGINGS = frozenset({"cmaf", "loc"})
_MAX_CATALOG_BYTES = 4 * 1024 * 1024


def is_catalog_track(name: str | bytes) -> bool:
    """Whether a track name is the catalog (``.catalog`` or the MSF ``catalog``)."""
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return name in CATALOG_TRACK_NAMES


TimelineRecord = tuple[int, tuple[int, int], int]


@dataclass(frozen=True, slots=True)
class CatalogTrack:
    """One track object. ``None`` means "absent from the JSON"."""

    name: str = field(metadata={"key": "name", "kind": "str"})
    packaging: str = field(default=PACKAGING_CMAF, metadata={"key": "packaging", "kind": "str"})
    is_live: bool = field(default=True, metadata={"key": "isLive", "kind": "bool"})
    namespace: str | None = field(default=None, metadata={"key": "namespace", "kind": "str"})
    role: str | None = field(default=None, metadata={"key": "role", "kind": "str"})
    label: str | None = field(default=None, metadata={"key": "label", "kind": "str"})
    render_group: int | None = field(default=None, metadata={"key": "renderGroup", "kind": "int"})
    alt_group: int | None = field(default=None, metadata={"key": "altGroup", "kind": "int"})
    codec: str | None = field(default=None, metadata={"key": "codec", "kind": "str"})
    mime_type: str | None = field(default=None, metadata={"key": "mimeType", "kind": "str"})
    bitrate: int | None = field(default=None, metadata={"key": "bitrate", "kind": "int"})
    avg_bitrate: int | None = field(default=None, metadata={"key": "avgBitrate", "kind": "int"})
    width: int | None = field(default=None, metadata={"key": "width", "kind": "int"})
    height: int | None = field(default=None, metadata={"key": "height", "kind": "int"})
    framerate: float | None = field(default=None, metadata={"key": "framerate", "kind": "number"})
    timescale: int | None = field(default=None, metadata={"key": "timescale", "kind": "int"})
    samplerate: int | None = field(default=None, metadata={"key": "samplerate", "kind": "int"})
    channel_config: str | None = field(
        default=None, metadata={"key": "channelConfig", "kind": "str"}
    )
    lang: str | None = field(default=None, metadata={"key": "lang", "kind": "str"})
    target_latency: int | None = field(
        default=None, metadata={"key": "targetLatency", "kind": "int"}
    )
    max_gop_duration: int | None = field(
        default=None, metadata={"key": "maxGopDuration", "kind": "int"}
    )
    max_group_duration: int | None = field(
        default=None, metadata={"key": "maxGroupDuration", "kind": "int"}
    )
    max_grp_sap_starting_type: int | None = field(
        default=None, metadata={"key": "maxGrpSapStartingType", "kind": "int"}
    )
    max_obj_sap_starting_type: int | None = field(
        default=None, metadata={"key": "maxObjSapStartingType", "kind": "int"}
    )
    track_duration: int | None = field(
        default=None, metadata={"key": "trackDuration", "kind": "int"}
    )
    event_type: str | None = field(default=None, metadata={"key": "eventType", "kind": "str"})
    depends: tuple[str, ...] | None = field(
        default=None, metadata={"key": "depends", "kind": "strlist"}
    )
    # Publisher priority of the MoQT track (0 = highest). Not an MSF field: a custom
    # one, named so that it cannot collide with MSF's.
    priority: int | None = field(default=None, metadata={"key": "priority", "kind": "int"})
    init_data: bytes | None = field(default=None, metadata={"key": "initData", "kind": "b64"})
    # MSF initRef: an id in the root initDataList. On parse, an inline entry also fills init_data.
    init_ref: str | None = field(default=None, metadata={"key": "initRef", "kind": "str"})
    # MSF media timeline, explicit entry format, inline (on-demand tracks, docs/vod.md):
    # one record per group, ``(pts_ms, (group, object), wallclock_ms)``.
    timeline: tuple[TimelineRecord, ...] | None = field(
        default=None, metadata={"key": "timeline", "kind": "timeline"}
    )

    @classmethod
    def from_init(
        cls,
        name: str,
        init: InitSegment,
        *,
        bitrate: int,
        framerate: float | None = None,
        namespace: str | None = None,
        render_group: int | None = 1,
        alt_group: int | None = None,
        priority: int | None = None,
        label: str | None = None,
        is_live: bool = True,
        max_group_duration: int | None = None,
        target_latency: int | None = None,
    ) -> CatalogTrack:
        """A CMSF track entry whose codec, dimensions, audio format and initData come from ``init``."""
        track = init.track
        is_video = track.role == "video"
        is_audio = track.role == "audio"
        return cls(
            name=name,
            namespace=namespace,
            packaging=PACKAGING_CMAF,
            is_live=is_live,
            role=track.role,
            label=label,
            render_group=render_group,
            alt_group=alt_group,
            codec=track.codec,
            mime_type=("video/mp4" if is_video else "audio/mp4" if is_audio else None),
            bitrate=bitrate,
            width=track.width if is_video else None,
            height=track.height if is_video else None,
            framerate=framerate if is_video else None,
            timescale=track.timescale,
            samplerate=track.sample_rate if is_audio else None,
            channel_config=str(track.channel_count) if is_audio and track.channel_count else None,
            lang=track.language if track.language not in (None, "und") else None,
            max_group_duration=max_group_duration,
            max_grp_sap_starting_type=2 if is_video or is_audio else None,
            target_latency=target_latency,
            priority=priority,
            init_data=init.data,
        )

    def to_json_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            kind = f.metadata["kind"]
            if kind == "b64":
                value = base64.b64encode(value).decode("ascii")
            elif kind == "strlist":
                value = list(value)
            elif kind == "timeline":
                value = [[pts, [group, obj], wall] for pts, (group, obj), wall in value]
            out[f.metadata["key"]] = value
        return out

    @classmethod
    def from_json_obj(cls, obj: object, where: str) -> CatalogTrack:
        if not isinstance(obj, dict):
            raise CatalogError(f"{where}: a track must be a JSON object")
        values: dict[str, Any] = {}
        for f in fields(cls):
            key, kind = f.metadata["key"], f.metadata["kind"]
            if key in obj:
                values[f.name] = _convert(obj[key], kind, f"{where}.{key}")
        for required in ("name", "packaging", "is_live"):
            if required not in values:
                key = next(f.metadata["key"] for f in fields(cls) if f.name == required)
                raise CatalogError(f"{where}: required field {key!r} is missing")
        track = cls(**values)
        track._validate(where)
        return track

    def _validate(self, where: str) -> None:
        if not self.name:
            raise CatalogError(f"{where}: track name is empty")
        if self.packaging == "eventtimeline" and self.event_type is None:
            raise CatalogError(f"{where}: eventtimeline packaging requires 'eventType'")
        if self.packaging != "eventtimeline" and self.event_type is not None:
            raise CatalogError(f"{where}: 'eventType' is only allowed with eventtimeline packaging")
        if self.is_live and self.track_duration is not None:
            raise CatalogError(f"{where}: 'trackDuration' must not be present on a live track")
        if self.framerate is not None and not self.framerate > 0:
            raise CatalogError(f"{where}: 'framerate' must be > 0")
        is_media = self.role in _MEDIA_ROLES or (
            self.role is None and self.packaging in _MEDIA_PACKAGINGS
        )
        if is_media:
            for attr, key in (("codec", "codec"), ("bitrate", "bitrate")):
                if getattr(self, attr) is None:
                    raise CatalogError(f"{where}: media track requires {key!r}")
        if self.role in _AUDIO_ROLES:
            for attr, key in (("samplerate", "samplerate"), ("channel_config", "channelConfig")):
                if getattr(self, attr) is None:
                    raise CatalogError(f"{where}: audio track requires {key!r}")
        if self.packaging == PACKAGING_CMAF and self.init_data is None and self.init_ref is None:
            raise CatalogError(
                f"{where}: cmaf track requires 'initData' (CMSF: the CMAF header in base64)"
            )


def _convert(value: object, kind: str, where: str) -> object:
    if kind == "str":
        if not isinstance(value, str):
            raise CatalogError(f"{where}: expected a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise CatalogError(f"{where}: expected true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CatalogError(f"{where}: expected an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise CatalogError(f"{where}: expected an integer")
            value = int(value)
        if value < 0:
            raise CatalogError(f"{where}: must be >= 0")
        return value
    if kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise CatalogError(f"{where}: expected a number")
        return value
    if kind == "strlist":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CatalogError(f"{where}: expected an array of strings")
        return tuple(value)
    if kind == "timeline":
        return _convert_timeline(value, where)
    if kind == "b64":
        if not isinstance(value, str):
            raise CatalogError(f"{where}: expected a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CatalogError(f"{where}: invalid base64 ({exc})") from exc
    raise AssertionError(kind)


def _convert_timeline(value: object, where: str) -> tuple[TimelineRecord, ...]:
    """MSF explicit timeline records ``[pts_ms, [group, object], wallclock_ms]``, groups increasing."""
    if not isinstance(value, list):
        raise CatalogError(f"{where}: expected an array of [pts, [group, object], wallclock]")
    records: list[TimelineRecord] = []
    for i, record in enumerate(value):
        at = f"{where}[{i}]"
        if (
            not isinstance(record, list)
            or len(record) != 3
            or not isinstance(record[1], list)
            or len(record[1]) != 2
        ):
            raise CatalogError(f"{at}: expected [pts, [group, object], wallclock]")
        pts = _convert(record[0], "int", f"{at}[0]")
        group = _convert(record[1][0], "int", f"{at}[1][0]")
        obj = _convert(record[1][1], "int", f"{at}[1][1]")
        wall = _convert(record[2], "int", f"{at}[2]")
        assert isinstance(pts, int) and isinstance(group, int)
        assert isinstance(obj, int) and isinstance(wall, int)
        if records and (group <= records[-1][1][0] or pts < records[-1][0]):
            raise CatalogError(f"{at}: groups must increase and times must not go back")
        records.append((pts, (group, obj), wall))
    return tuple(records)


@dataclass(frozen=True, slots=True)
class Catalog:
    """An independent MSF/CMSF catalog."""

    tracks: tuple[CatalogTrack, ...]
    version: str | int = MSF_VERSION
    generated_at: int | None = None
    is_complete: bool = False

    @classmethod
    def build(
        cls,
        tracks: Iterable[CatalogTrack],
        *,
        generated_at: int | None = None,
        is_complete: bool = False,
    ) -> Catalog:
        catalog = cls(tuple(tracks), generated_at=generated_at, is_complete=is_complete)
        catalog._validate()
        return catalog

    def track(self, name: str, namespace: str | None = None) -> CatalogTrack | None:
        for t in self.tracks:
            if t.name == name and t.namespace == namespace:
                return t
        return None

    def by_role(self, role: str) -> tuple[CatalogTrack, ...]:
        """Tracks of one role, highest bitrate first (the ABR ladder order for video)."""
        found = [t for t in self.tracks if t.role == role]
        return tuple(sorted(found, key=lambda t: -(t.bitrate or 0)))

    def ended(self, *, generated_at: int | None = None) -> Catalog:
        """The catalog that terminates the broadcast: every track not live, ``isComplete``."""
        return replace(
            self,
            tracks=tuple(replace(t, is_live=False) for t in self.tracks),
            is_complete=True,
            generated_at=generated_at,
        )

    def to_json_obj(self, *, init_data_list: bool = False) -> dict[str, Any]:
        """The JSON object. ``init_data_list`` moves every track's init into the root
        ``initDataList`` with an ``initRef`` (the MSF form other MSF stacks read),
        instead of CMSF's per-track ``initData``."""
        out: dict[str, Any] = {"version": self.version}
        if self.generated_at is not None:
            out["generatedAt"] = self.generated_at
        if self.is_complete:
            out["isComplete"] = True
        out["tracks"] = [t.to_json_obj() for t in self.tracks]
        if init_data_list:
            entries = []
            for i, track in enumerate(out["tracks"]):
                if "initData" in track:
                    ref = track.get("initRef") or f"init{i}"
                    entries.append({"id": ref, "type": "inline", "data": track.pop("initData")})
                    track["initRef"] = ref
            if entries:
                out["initDataList"] = entries  # MSF: after the tracks array
        return out

    def to_json(self, *, init_data_list: bool = False) -> bytes:
        """Compact UTF-8 JSON, the payload of a catalog object."""
        obj = self.to_json_obj(init_data_list=init_data_list)
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes | str) -> Catalog:
        """Parse and validate an independent catalog (a delta update is refused: see :meth:`parse_update`)."""
        root = _load_json(data)
        if "deltaUpdate" in root:
            raise CatalogError("a delta catalog update needs the catalog it applies to")
        return cls._from_root(root)

    @classmethod
    def parse_update(cls, data: bytes | str, current: Catalog | None) -> Catalog:
        """Parse any catalog object: an independent catalog, or a delta applied to ``current``."""
        root = _load_json(data)
        if "deltaUpdate" not in root:
            return cls._from_root(root)
        if current is None:
            raise CatalogError("delta catalog update without a preceding independent catalog")
        return current._apply_delta(root)

    @classmethod
    def _from_root(cls, root: dict[str, Any]) -> Catalog:
        version = root.get("version")
        if isinstance(version, bool) or not isinstance(version, str | int):
            raise CatalogError("catalog: required field 'version' is missing or not a string")
        generated_at = root.get("generatedAt")
        if generated_at is not None:
            generated_at = _convert(generated_at, "int", "catalog.generatedAt")
        is_complete = root.get("isComplete", False)
        if not isinstance(is_complete, bool):
            raise CatalogError("catalog.isComplete: expected true or false")
        raw_tracks = root.get("tracks")
        if isinstance(raw_tracks, list):
            raw_tracks = _resolve_init_refs(raw_tracks, root.get("initDataList", []))
        if not isinstance(raw_tracks, list):
            raise CatalogError("catalog: required field 'tracks' is missing or not an array")
        tracks = tuple(
            CatalogTrack.from_json_obj(t, f"tracks[{i}]") for i, t in enumerate(raw_tracks)
        )
        assert generated_at is None or isinstance(generated_at, int)
        catalog = cls(tracks, version=version, generated_at=generated_at, is_complete=is_complete)
        catalog._validate()
        return catalog

    def _apply_delta(self, root: dict[str, Any]) -> Catalog:
        """Apply an MSF delta update (add / remove / clone / update, in order)."""
        extra = set(root) - {"deltaUpdate", "generatedAt"}
        if extra:
            raise CatalogError(f"a delta update must not carry root fields {sorted(extra)}")
        if "generatedAt" not in root:
            raise CatalogError("a delta update requires 'generatedAt'")
        generated_at = _convert(root["generatedAt"], "int", "catalog.generatedAt")
        ops = root["deltaUpdate"]
        if not isinstance(ops, list) or not ops:
            raise CatalogError("deltaUpdate must be a non-empty array of operations")
        tracks = [t.to_json_obj() for t in self.tracks]
        for i, op in enumerate(ops):
            where = f"deltaUpdate[{i}]"
            if not isinstance(op, dict) or not isinstance(op.get("tracks"), list):
                raise CatalogError(f"{where}: an operation is an object with a 'tracks' array")
            kind = op.get("op")
            for j, entry in enumerate(op["tracks"]):
                if not isinstance(entry, dict):
                    raise CatalogError(f"{where}.tracks[{j}]: a track must be a JSON object")
                tracks = _apply_op(tracks, kind, dict(entry), f"{where}.tracks[{j}]")
        parsed = tuple(CatalogTrack.from_json_obj(t, f"tracks[{i}]") for i, t in enumerate(tracks))
        assert isinstance(generated_at, int)
        catalog = replace(self, tracks=parsed, generated_at=generated_at)
        catalog._validate()
        return catalog

    def _validate(self) -> None:
        seen: set[tuple[str | None, str]] = set()
        for i, t in enumerate(self.tracks):
            t._validate(f"tracks[{i}]")
            key = (t.namespace, t.name)
            if key in seen:
                raise CatalogError(f"tracks[{i}]: duplicate track name {t.name!r} in one namespace")
            seen.add(key)


def _load_json(data: bytes | str) -> dict[str, Any]:
    if len(data) > _MAX_CATALOG_BYTES:
        raise CatalogError(f"catalog of {len(data)} bytes exceeds {_MAX_CATALOG_BYTES}")
    try:
        root = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogError(f"catalog is not valid JSON: {exc}") from exc
    if not isinstance(root, dict):
        raise CatalogError("catalog root must be a JSON object")
    return root


def _find(tracks: list[dict[str, Any]], name: object, namespace: object, where: str) -> int:
    for i, t in enumerate(tracks):
        if t.get("name") == name and t.get("namespace") == namespace:
            return i
    raise CatalogError(f"{where}: no track {name!r} to operate on")


def _apply_op(
    tracks: list[dict[str, Any]], kind: object, entry: dict[str, Any], where: str
) -> list[dict[str, Any]]:
    """One delta operation on one track object (JSON level; the result is validated afterwards)."""
    if kind == "add":
        if any(
            t.get("name") == entry.get("name") and t.get("namespace") == entry.get("namespace")
            for t in tracks
        ):
            raise CatalogError(f"{where}: 'add' of a track that already exists")
        return [*tracks, entry]
    if kind == "remove":
        if set(entry) - {"name", "namespace"} or "name" not in entry:
            raise CatalogError(f"{where}: 'remove' takes only 'name' and optionally 'namespace'")
        index = _find(tracks, entry["name"], entry.get("namespace"), where)
        return tracks[:index] + tracks[index + 1 :]
    if kind in ("clone", "update"):
        # The text requires parentName; the draft's own update example names the track
        # with 'name', so an update accepts either.
        parent = entry.pop("parentName", entry.get("name") if kind == "update" else None)
        if parent is None:
            raise CatalogError(f"{where}: {kind!r} requires 'parentName'")
        index = _find(tracks, parent, entry.pop("parentNamespace", None), where)
        merged = {**tracks[index], **entry}
        if kind == "update":
            if merged.get("name") != parent or "namespace" in entry:
                raise CatalogError(f"{where}: 'update' cannot rename a track")
            return [*tracks[:index], merged, *tracks[index + 1 :]]
        if "name" not in entry:
            raise CatalogError(f"{where}: 'clone' requires a new 'name'")
        return [*tracks, merged]
    raise CatalogError(f"{where}: unknown delta operation {kind!r}")


def _resolve_init_refs(tracks: list[Any], entries: object) -> list[Any]:
    """Copy inline ``initDataList`` payloads into the tracks that reference them."""
    if not isinstance(entries, list):
        raise CatalogError("catalog.initDataList: expected an array")
    inline: dict[str, str] = {}
    known: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"initDataList[{i}]"
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("id", "type", "data")
        ):
            raise CatalogError(f"{where}: expected an object with string 'id', 'type' and 'data'")
        if entry["type"] not in ("inline", "track-property", "object-property"):
            raise CatalogError(f"{where}: unknown type {entry['type']!r}")
        if entry["id"] in known:
            raise CatalogError(f"{where}: duplicate id {entry['id']!r}")
        known.add(entry["id"])
        if entry["type"] == "inline":
            inline[entry["id"]] = entry["data"]
    out: list[Any] = []
    for i, track in enumerate(tracks):
        ref = track.get("initRef") if isinstance(track, dict) else None
        if ref is not None:
            if ref not in known:
                raise CatalogError(f"tracks[{i}].initRef: {ref!r} is not in initDataList")
            if ref in inline and "initData" not in track:
                track = {**track, "initData": inline[ref]}
        out.append(track)
    return out
