"""structlog JSON logging for node entry points (libraries log through stdlib or structlog).

One JSON object per line with stable keys: ``ts`` (ISO 8601 UTC), ``level``,
``event`` (a snake_case name, never an f-string), ``logger``, the node's
``node``/``role``/``region``, and whatever context is bound, typically
``session`` and ``track`` (:func:`bind_context` binds them for the current
task through contextvars).  Standard-library loggers (aioquic, asyncio, uvicorn)
are routed to the same output and format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

__all__ = ["bind_context", "configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip


def configure_logging(
    *,
    node: str,
    role: str,
    region: str = "",
    level: str = "info",
    json: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging for this process (call once, from ``main``)."""
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r} (expected one of {sorted(_LEVELS)})")
    out = stream if stream is not None else sys.stderr
    static = {"node": node, "role": role, **({"region": region} if region else {})}

    def add_static(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in static.items():
            event.setdefault(key, value)
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        add_static,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_library_fields, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    logging.getLogger("quic").setLevel(max(_LEVELS[level], logging.INFO))


def _library_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Lines of libraries (``moqt.aio``, ``moqt._log``) keep their event name and keys."""
    record = event.get("_record")
    fields = getattr(record, "fields", None)
    name = getattr(record, "event", None)
    if isinstance(fields, dict) and isinstance(name, str):
        event["event"] = name
        for key, value in fields.items():
            event.setdefault(key, value)
    return event


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Bind ``session=...``, ``track=...`` etc. to every log line of this task inside the block."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
