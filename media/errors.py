"""Typed errors of the media package.

Every failure caused by bad *input* (a malformed ISO-BMFF stream, a catalog that
is not valid JSON or has the wrong shape) is a :class:`MediaError` subclass, so a
caller can refuse the input with one ``except`` clause. Failures of the ffmpeg
process are :class:`FfmpegError`.
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "FfmpegError",
    "MalformedBox",
    "MediaError",
    "TruncatedStream",
    "UnexpectedBox",
    "UnsupportedMedia",
]


class MediaError(Exception):
    """Base class of every error raised by :mod:`media`."""


class MalformedBox(MediaError):
    """An ISO-BMFF box is invalid: impossible size, bad type, inconsistent fields."""

    def __init__(self, message: str, *, box_type: str | None = None, offset: int | None = None):
        where = []
        if box_type is not None:
            where.append(f"box {box_type!r}")
        if offset is not None:
            where.append(f"at byte {offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.box_type = box_type
        self.offset = offset


class TruncatedStream(MalformedBox):
    """The stream ended in the middle of a box or of a fragment (moof without mdat)."""


class UnexpectedBox(MalformedBox):
    """A well-formed box arrived where the stream structure forbids it (moof before init)."""


class UnsupportedMedia(MediaError):
    """Well-formed media this package does not handle (e.g. several tracks in one fragment)."""


class CatalogError(MediaError):
    """A catalog is not valid JSON, or does not have the MSF/CMSF shape."""


class FfmpegError(MediaError):
    """The ffmpeg process failed: could not start, or exited with an error status."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr_tail: str = ""):
        detail = f"{message} (exit status {returncode})" if returncode is not None else message
        if stderr_tail:
            detail = f"{detail}: {stderr_tail.strip().splitlines()[-1]}"
        super().__init__(detail)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
