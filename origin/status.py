"""Live input status reports from the origin to the control plane.

The control plane (``control/service.py``) defines the contract: origins publish
``{"external_input_id", "status": "idle" | "live" | "error", "detail", "at"}`` on
channel ``clutchcall:input-status`` and keep the latest report as record
``clutchcall:input-status:<external_input_id>``, which the control plane reads
after a bus resync. A ``live`` record carries a TTL (``live_ttl``, the node TTL)
that the origin's heartbeat (:meth:`StatusReporter.run`) keeps refreshing, so the
inputs of an origin that died without reporting (SIGKILL, lost host) lose their
``live`` record within one TTL, like its ``clutchcall:route:*`` records; ``idle``
and ``error`` records stay until the next report. A report that cannot be
delivered (Redis away) is logged and dropped: the next transition, the next
heartbeat (for ``live``), or the control plane's resync, catches up.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.exceptions
import structlog

from mesh.bus import Bus, BusUnavailable
from mesh.bus_contract import (
    INPUT_STATUS_CHANNEL,
    INPUT_STATUS_PREFIX,
    InputStatusRecord,
    input_status_key,
)

__all__ = [
    "INPUT_STATUS_CHANNEL",
    "INPUT_STATUS_PREFIX",
    "InputStatus",
    "StatusReport",
    "StatusReporter",
]

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

    def to_record(self, node: str = "") -> dict[str, object]:
        return InputStatusRecord(
            self.external_input_id, self.status.value, self.detail, self.at, node
        ).encode()


class StatusReporter:
    """Publishes status transitions; remembers the latest report per input.

    ``live`` records expire after ``live_ttl`` seconds unless :meth:`refresh` (run
    every heartbeat by :meth:`run`) re-writes them.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        node_id: str = "",
        live_ttl: float = 3.0,
        clock: Callable[[], float] = time.time,
    ):
        if not live_ttl > 0:
            raise ValueError("live_ttl must be positive")
        self._bus = bus
        self._node_id = node_id
        self._live_ttl = live_ttl
        self._clock = clock
        self._latest: dict[str, StatusReport] = {}
        # Serialises writes, so a heartbeat never re-writes a live record over a newer report.
        self._write = asyncio.Lock()
        self.failures = 0
        self.refreshes = 0

    def latest(self, external_input_id: str) -> StatusReport | None:
        return self._latest.get(external_input_id)

    async def report(
        self, external_input_id: str, status: InputStatus, detail: str | None = None
    ) -> StatusReport:
        report = StatusReport(external_input_id, status, detail, self._clock())
        self._latest[external_input_id] = report
        record = self._record(report)
        log = _log.warning if status is InputStatus.ERROR else _log.info
        log("input_status", input=external_input_id, status=status.value, detail=detail)
        try:
            async with self._write:
                await self._bus.set(
                    input_status_key(external_input_id), record, ttl=self._ttl(report)
                )
            await self._bus.publish(INPUT_STATUS_CHANNEL, record)
        except _BUS_DOWN as exc:
            self.failures += 1
            _log.warning("input_status_not_delivered", input=external_input_id, error=str(exc))
        return report

    async def refresh(self) -> int:
        """Re-write every ``live`` record (renewing its TTL); returns how many were written.

        Raises the bus error when Redis is away (the caller's heartbeat retries).
        """
        written = 0
        async with self._write:
            for ext, report in list(self._latest.items()):
                if report.status is not InputStatus.LIVE or self._latest.get(ext) is not report:
                    continue
                await self._bus.set(input_status_key(ext), self._record(report), ttl=self._live_ttl)
                written += 1
        self.refreshes += 1
        return written

    async def run(self, interval: float) -> None:
        """Heartbeat: :meth:`refresh` every ``interval`` seconds (less than ``live_ttl``)."""
        if not 0 < interval < self._live_ttl:
            raise ValueError("need 0 < interval < live_ttl")
        while True:
            try:
                await self.refresh()
            except _BUS_DOWN as exc:
                self.failures += 1
                _log.warning("input_status_refresh_failed", error=str(exc))
            await asyncio.sleep(interval)

    def _ttl(self, report: StatusReport) -> float | None:
        return self._live_ttl if report.status is InputStatus.LIVE else None

    def _record(self, report: StatusReport) -> dict[str, object]:
        return report.to_record(self._node_id)
