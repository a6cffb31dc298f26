"""Header parsing and problems of the upload URL (shared by the three protocol forms)."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import BinaryIO, Literal

from starlette.requests import Request

from control.errors import Problem

__all__ = [
    "TUS_EXTENSIONS",
    "TUS_VERSIONS",
    "Form",
    "inconsistent",
    "mismatch",
    "parse_bool",
    "parse_checksum",
    "parse_int",
    "parse_metadata",
    "request_form",
    "require_content_type",
    "sync_close",
    "too_large",
]

TUS_VERSIONS = "1.0.0,2.0.0"
TUS_EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
)
_INT = re.compile(r"^[0-9]{1,18}$")
_HASHES = {"sha1": 20, "sha256": 32}
_IETF_VERSIONS = frozenset({"6", "7", "8"})
_MISMATCH = "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
_INCONSISTENT = "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"

Form = Literal["seed", "tus", "ietf"]


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


def request_form(request: Request) -> Form:
    """Which protocol form a request speaks (412 / 400 problems for unknown versions)."""
    headers = request.headers
    interop = headers.get("upload-draft-interop-version")
    if interop is not None:
        if interop.strip() not in _IETF_VERSIONS:
            raise Problem(
                400,
                "unsupported-interop-version",
                f"Upload-Draft-Interop-Version {interop!r} is not supported (6, 7, 8)",
            )
        return "ietf"
    version = headers.get("tus-resumable")
    if version == "1.0.0":
        return "tus"
    if version == "2.0.0":
        return "seed"
    if version is None and "upload-complete" in headers:
        return "ietf"
    raise Problem(
        412,
        "unsupported-version",
        f"Tus-Resumable {version!r} is not supported (1.0.0, 2.0.0), nor is this an IETF "
        "resumable upload (Upload-Draft-Interop-Version 6, 7, 8)",
        title="Precondition Failed",
        headers={"Tus-Version": TUS_VERSIONS},
    )


def require_content_type(request: Request, expected: str) -> None:
    got = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if got != expected:
        raise Problem(
            415, "unsupported-media-type", f"Content-Type must be {expected}, got {got or None!r}"
        )


def mismatch(current: int, claimed: int) -> Problem:
    problem = Problem(
        409,
        "offset-mismatch",
        f"Upload-Offset {claimed} does not match the stored offset {current}",
        headers={"Upload-Offset": str(current)},
        extra={"offset": current, "expected-offset": current, "provided-offset": claimed},
    )
    problem.type = _MISMATCH
    return problem


def inconsistent(known: int, given: int) -> Problem:
    problem = Problem(
        400, "inconsistent-length", f"Upload-Length {given} differs from the upload's {known}"
    )
    problem.type = _INCONSISTENT
    return problem


def too_large(length: int, limit: int) -> Problem:
    return Problem(
        413, "upload-too-large", f"{length} bytes would exceed this upload's limit ({limit})"
    )


def sync_close(f: BinaryIO) -> None:
    """Flush, fsync and close: the bytes are on disk before an offset is answered."""
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()
