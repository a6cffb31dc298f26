"""Upload protocol headers (seed form, tus 1.0.0, IETF resumable upload drafts 6-8):
``request_form`` (Upload-Draft-Interop-Version, Tus-Resumable, Upload-Complete),
``require_content_type``, ``parse_int`` (Upload-Offset, Upload-Length, Content-Length),
``parse_bool`` (Upload-Complete structured-field boolean), ``parse_checksum``
(Upload-Checksum) and ``parse_metadata`` (Upload-Metadata).

The input is an HTTP header block (``name: value`` lines) as the ASGI server hands it
over: bytes, decoded as latin-1 by Starlette. Allowed: Problem (a problem+json answer).
"""

from __future__ import annotations

from collections.abc import Iterator

from starlette.requests import Request

from control.errors import Problem
from vod._headers import (
    parse_bool,
    parse_checksum,
    parse_int,
    parse_metadata,
    request_form,
    require_content_type,
)

__all__ = ["TestOneInput", "seeds"]

_INTS = ("upload-offset", "upload-length", "content-length")


def _request(block: bytes) -> Request:
    headers = []
    for line in block.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep:
            headers.append((name.strip().lower(), value.strip(b" \t\r")))
    return Request({"type": "http", "method": "PATCH", "path": "/", "headers": headers})


def _check(call: object, *args: object) -> None:
    try:
        call(*args)  # type: ignore[operator]
    except Problem:
        pass


def TestOneInput(data: bytes) -> None:
    request = _request(data)
    headers = request.headers
    _check(request_form, request)
    _check(require_content_type, request, "application/offset+octet-stream")
    for name in _INTS:
        _check(parse_int, headers, name)
    _check(parse_bool, headers, "upload-complete")
    _check(parse_checksum, headers)
    _check(parse_metadata, headers.get("upload-metadata"))


def seeds() -> Iterator[bytes]:
    """Header blocks the tus, IETF and seed-form clients send."""
    yield (
        b"Tus-Resumable: 1.0.0\r\nUpload-Length: 1048576\r\n"
        b"Upload-Metadata: filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential\r\n"
    )
    yield (
        b"Tus-Resumable: 1.0.0\r\nUpload-Offset: 65536\r\n"
        b"Content-Type: application/offset+octet-stream\r\nContent-Length: 4096\r\n"
        b"Upload-Checksum: sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=\r\n"
    )
    yield (
        b"Upload-Draft-Interop-Version: 6\r\nUpload-Complete: ?0\r\nUpload-Offset: 0\r\n"
        b"Content-Type: application/partial-upload; charset=x\r\n"
    )
    yield b"Upload-Draft-Interop-Version: 8\r\nUpload-Complete: ?1\r\nUpload-Length: 12\r\n"
    yield b"Tus-Resumable: 2.0.0\r\nUpload-Length: 0\r\nUpload-Defer-Length: 1\r\n"
    yield b"Upload-Complete: ?1\r\nUpload-Checksum: sha256 " + b"A" * 43 + b"=\r\n"
