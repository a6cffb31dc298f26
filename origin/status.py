"""Live input status reports from the origin to the control plane.

The control plane (``control/service.py``) defines the contract: origins publish
``{"external_input_id", "status": "idle" | "live" | "error", "detail", "at"}`` on
channel ``clutchcall:input-status`` and keep the latest report as record
``clutchcall:input-status:<external_input_id>``, which the control plane reads
after a bus resync. A report that cannot be delivered (Redis away) is logged and
dropped: the next transition, or the control plane's resync, catches up.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import redis.exceptions
import structlog

from mesh.bus import Bus, BusUnavailable

__all__ = [
    "INPUT_STATUS_CHANNEL",
    "INPUT_STATUS_PREFIX",
    "InputStatus",
    "StatusReport",
    "StatusReporter",
]

INPUT_STATUS_CHANNEL: Final = "clutchcall:input-status"
INPUT_STATUS_PREFIX: Final = "clutchcall:input-status:"
_BUS_DOWN = (BusUnavailable, redis.exceptions.RedisError, OSError)
_log = structlog.get_logger("origin.status")


class InputStatus(enum.StrEnum):
    IDLE = "idle"
    LIVE = "live"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class StatusReport:
    external_input_id: str
    status: InputStatus
    detail: str | None
    at: float

    def to_record(self) -> dict[str, object]:
        return {
            "external_input_id": self.external_input_id,
            "status": self.status.value,
            "detail": self.detail,
            "at": self.at,
        }


class StatusReporter:
    """Publishes status transitions; remembers the latest report per input."""

    def __init__(self, bus: Bus, *, node_id: str = "", clock: Callable[[], float] = time.time):
        self._bus = bus
        self._node_id = node_id
        self._clock = clock
        self._latest: dict[str, StatusReport] = {}
        self.failures = 0

    def latest(self, external_input_id: str) -> StatusReport | None:
        return self._latest.get(external_input_id)

    async def report(
        self, external_input_id: str, status: InputStatus, detail: str | None = None
    ) -> StatusReport:
        report = StatusReport(external_input_id, status, detail, self._clock())
        self._latest[external_input_id] = report
        record = report.to_record()
        if self._node_id:
            record["node"] = self._node_id
        log = _log.warning if status is InputStatus.ERROR else _log.info
        log("input_status", input=external_input_id, status=status.value, detail=detail)
        try:
            await self._bus.set(INPUT_STATUS_PREFIX + external_input_id, record)
            await self._bus.publish(INPUT_STATUS_CHANNEL, record)
        except _BUS_DOWN as exc:
            self.failures += 1
            _log.warning("input_status_not_delivered", input=external_input_id, error=str(exc))
        return report
