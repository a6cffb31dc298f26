"""The error type of the control plane: an RFC 9457 problem (no web framework needed).

:mod:`control.problems` turns these into ``application/problem+json`` responses.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HTTP_TITLES", "PROBLEM_BASE", "PROBLEM_MEDIA_TYPE", "Problem", "not_found"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://clutchcall.dev/problems/"

HTTP_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An error that becomes a problem+json response."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = PROBLEM_BASE + slug
        self.title = title or HTTP_TITLES.get(status, "Error")
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def not_found(what: str, ident: str) -> Problem:
    return Problem(404, "not-found", f"{what} {ident!r} does not exist", title="Not Found")
