"""A real HTTP endpoint for webhook tests: answers a scripted status per request."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


class Receiver:
    """``http://127.0.0.1:<port>/hook``: answers ``statuses`` in turn (then ``default``)."""

    def __init__(self, statuses: list[int] | None = None, default: int = 200) -> None:
        self.statuses = list(statuses or [])
        self.default = default
        self.requests: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                    receiver.requests.append(
                        Received(time.monotonic(), self.path, dict(self.headers), body, status)
                    )
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _wait(self, predicate: Any, timeout: float) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.requests), timeout):
                raise TimeoutError(f"receiver got {len(self.requests)} requests")
            return list(self.requests)

    async def wait_for(self, predicate: Any, wait: float = 20.0) -> list[Received]:
        return await asyncio.to_thread(self._wait, predicate, wait)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
