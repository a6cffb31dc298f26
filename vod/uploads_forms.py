"""What differs between the three forms of the upload URL (:mod:`vod.uploads`): the
headers each form answers with, the length a request declares, the headers a PATCH
must carry.

* the seed's form (``Tus-Resumable: 2.0.0``);
* tus 1.0.0 (creation with ``Upload-Length`` or ``Upload-Defer-Length``, expiration);
* IETF resumable uploads, ``Upload-Draft-Interop-Version`` 6, 7 and 8
  (``Upload-Complete``, ``Upload-Limit``).
"""

from __future__ import annotations

from email.utils import formatdate

from starlette.requests import Request

from control.errors import Problem
from vod._headers import (
    TUS_EXTENSIONS,
    TUS_VERSIONS,
    Form,
    inconsistent,
    parse_bool,
    parse_int,
    require_content_type,
)
from vod.uploads_backend import UploadInfo

__all__ = ["declared_length", "discovery_headers", "patch_complete_flag", "response_headers"]

_IETF_VERSIONS = frozenset({"6", "7", "8"})


def discovery_headers(max_bytes: int) -> dict[str, str]:
    """``OPTIONS``: what tus and IETF clients discover."""
    return {
        "Tus-Resumable": "1.0.0",
        "Tus-Version": TUS_VERSIONS,
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Checksum-Algorithm": "sha1,sha256",
        "Tus-Max-Size": str(max_bytes),
        "Upload-Limit": f"max-size={max_bytes}, min-size=0",
    }


def _limit(version: str, up: UploadInfo | None, max_bytes: int, now: float) -> str:
    """``Upload-Limit``; interop 6 (draft 05) names the lifetime ``expires``."""
    max_size = max_bytes if up is None or up.length is None else up.length
    if up is None:
        return f"max-size={max_size}, min-size=0"
    age = max(0, int(up.expires_at - now))
    return f"max-size={max_size}, {'expires' if version == '6' else 'max-age'}={age}"


def response_headers(
    form: Form,
    request: Request,
    up: UploadInfo | None,
    offset: int | None,
    *,
    max_bytes: int,
    now: float,
) -> dict[str, str]:
    """The headers of an answer in ``form`` (``offset``: the stored size, if known)."""
    out: dict[str, str] = {"Cache-Control": "no-store"}
    if offset is not None:
        out["Upload-Offset"] = str(offset)
    if up is not None and up.length is not None:
        out["Upload-Length"] = str(up.length)
    if form == "tus" or form == "seed":
        out["Tus-Resumable"] = "1.0.0" if form == "tus" else "2.0.0"
        if up is not None:
            if up.length is None and up.deferred and form == "tus":
                out["Upload-Defer-Length"] = "1"
            if not up.completed:
                out["Upload-Expires"] = formatdate(up.expires_at, usegmt=True)
    else:
        version = request.headers.get("upload-draft-interop-version", "8").strip()
        if version in _IETF_VERSIONS:
            out["Upload-Draft-Interop-Version"] = version
        out["Upload-Complete"] = "?1" if up is not None and up.completed else "?0"
        out["Upload-Limit"] = _limit(version, up, max_bytes, now)
    return out


def declared_length(form: Form, request: Request, up: UploadInfo | None) -> tuple[int | None, bool]:
    """The ``Upload-Length`` a request declares (checked against the upload's), and
    whether a tus creation defers it."""
    length = parse_int(request.headers, "upload-length")
    deferred = False
    if form == "tus" and request.method == "POST" and length is None:
        if request.headers.get("upload-defer-length") != "1":
            raise Problem(
                400,
                "length-required",
                "tus creation needs Upload-Length or Upload-Defer-Length: 1",
            )
        deferred = True
    if up is not None and up.length is not None and length is not None:
        if length != up.length:
            raise inconsistent(up.length, length)
    return length, deferred


def patch_complete_flag(form: Form, request: Request) -> bool | None:
    """Check the headers a PATCH needs in ``form``; returns IETF's ``Upload-Complete``
    (None in the other forms)."""
    if form in ("seed", "tus"):
        require_content_type(request, "application/offset+octet-stream")
    elif request.headers.get("upload-draft-interop-version", "").strip() != "6":
        require_content_type(request, "application/partial-upload")
    complete_flag = None
    if form == "ietf":
        complete_flag = parse_bool(request.headers, "upload-complete")
        if complete_flag is None:
            raise Problem(400, "complete-required", "PATCH needs Upload-Complete (?0 or ?1)")
    return complete_flag
