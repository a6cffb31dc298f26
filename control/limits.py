"""A request body size limit (ASGI middleware): larger bodies get a 413 problem."""

from __future__ import annotations

import json
from typing import Any

from control.errors import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["BodyLimit"]

Scope = dict[str, Any]
Message = dict[str, Any]


def _is_upload(path: str) -> bool:
    """Upload URLs take file bytes (their own limit: max_upload_bytes, vod/uploads.py)."""
    return path == "/v1/uploads" or path.startswith("/v1/uploads/")


class BodyLimit:
    """Refuse HTTP request bodies above ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int = 64 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _is_upload(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        exceeded = False
        replaced = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # End the body here; whatever the app answers is replaced by a 413.
                    exceeded = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced, started
            if exceeded and not started:
                if not replaced:
                    replaced = True
                    await self._refuse(scope, send)
                return
            if replaced:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope: Scope, send: Any) -> None:
        problem = Problem(
            413, "body-too-large", f"request bodies are limited to {self.max_bytes} bytes"
        )
        body = json.dumps(problem.body(scope.get("path"))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
