"""Header parsing for the upload URL (shared by the three protocol forms)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from control.errors import Problem

__all__ = [
    "TUS_EXTENSIONS",
    "TUS_VERSIONS",
    "parse_bool",
    "parse_checksum",
    "parse_int",
    "parse_metadata",
]

TUS_VERSIONS = "1.0.0,2.0.0"
TUS_EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
)
_INT = re.compile(r"^[0-9]{1,18}$")
_HASHES = {"sha1": 20, "sha256": 32}


def parse_int(headers: Mapping[str, str], name: str) -> int | None:
    """A non-negative integer header; None when absent; 400 when malformed."""
    raw = headers.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if not _INT.match(raw):
        raise Problem(400, "bad-header", f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def parse_bool(headers: Mapping[str, str], name: str) -> bool | None:
    """A structured-field boolean (``?1``/``?0``); other values are ignored (RFC 8941)."""
    raw = (headers.get(name) or "").strip()
    return {"?1": True, "?0": False}.get(raw)


def parse_checksum(headers: Mapping[str, str]) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <sha1|sha256> <base64 digest>``."""
    raw = headers.get("upload-checksum")
    if raw is None:
        return None
    algo, _, value = raw.strip().partition(" ")
    algo = algo.lower()
    if algo not in _HASHES:
        raise Problem(
            400, "checksum-algorithm", f"unsupported checksum algorithm {algo!r} (sha1, sha256)"
        )
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Problem(400, "bad-header", "Upload-Checksum digest is not base64") from exc
    if len(digest) != _HASHES[algo]:
        raise Problem(400, "bad-header", f"Upload-Checksum is not a {algo} digest")
    return algo, digest


def parse_metadata(raw: str | None) -> dict[str, str]:
    """tus ``Upload-Metadata``: ``key base64value,key2,...`` (undecodable values are dropped)."""
    out: dict[str, str] = {}
    if not raw:
        return out
    for pair in raw.split(","):
        key, _, value = pair.strip().partition(" ")
        if not key:
            continue
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
    return out
