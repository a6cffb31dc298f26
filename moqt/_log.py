"""Library logging: structlog-style calls that go out through the standard ``logging`` module.

A library never configures logging in the program that imports it (no handlers, no
levels, no printing).  ``structlog.get_logger`` without a ``structlog.configure`` call
prints to stdout, so library modules (``moqt.aio`` and the ``clutchcall.streams`` SDK)
use :func:`library_logger` instead: the same ``log.info("event", key=value)`` calls,
emitted as a :class:`logging.LogRecord` on the named standard-library logger.  The
message reads ``event key=value ...``; the event name and the fields are also on the
record (``record.event``, ``record.fields``) for handlers that want them.  Programs that
route the standard library through structlog (``mesh.logging``) format them like
their own lines.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["library_logger"]


def _to_log_call(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[str], Mapping[str, Any]]:
    exc_info = event_dict.pop("exc_info", None)
    stack_info = bool(event_dict.pop("stack_info", False))
    event = str(event_dict.pop("event", ""))
    fields = dict(event_dict)
    text = " ".join([event, *(f"{key}={value!r}" for key, value in fields.items())])
    return (text,), {
        "exc_info": exc_info,
        "stack_info": stack_info,
        "extra": {"event": event, "fields": fields},
        "stacklevel": 4,  # the library's call, not structlog's proxy
    }


def library_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog-style logger that emits through ``logging.getLogger(name)`` only."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[_to_log_call],
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=False,
    )
    return logger
