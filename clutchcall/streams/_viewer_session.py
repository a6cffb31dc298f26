"""The live viewer's sessions: connect, reconnect or fall back to another POP, and the
stall probe that tells a dead POP from a quiet broadcast.

:class:`ViewerSessions` is the base of :class:`~clutchcall.streams.AsyncBroadcastViewer`:
it owns the MoQT connection, the ``on_close`` contract and the reconnect loop; the
viewer (``_viewer.py``) owns the media (subscriptions, catalog, delivery, ABR) and
implements the hooks at the end of this class.

Reconnect: a lost session (``network``: closed, refused, GOAWAY, a track that moved,
or a stalled session) is opened again for up to ``reconnect`` seconds, to the GOAWAY's
new URI or in turn to ``url`` and ``fallback_urls``; the window restarts after a
session that delivered media. ``auth_failed``, ``ended``, ``closed``, ``not_found``
and ``error`` are never retried.

Stall probe: a POP that dies (SIGKILL, power, a frozen process or path) sends no
CONNECTION_CLOSE, and QUIC alone would notice only at its idle timeout (30 s). When
no object has arrived for ``max(stall_timeout, 3 x the group duration)`` the viewer
sends a QUIC PING; an ACK within ``ping_timeout`` means the relay is alive and the
broadcast merely quiet (a publisher pause: nothing happens, the probe looks again
after the same silence); no ACK means the session is lost: it is closed here and
reconnected like any other loss. (The browser viewer, which cannot PING, takes 8 s
of silence for a loss: web/src/streams/live.ts.)
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from clutchcall.streams._backoff import Backoff
from clutchcall.streams._connect import PlaybackTarget, unreachable_detail
from clutchcall.streams._viewer_types import ViewerOptions, close_reason
from moqt._log import library_logger
from moqt.aio import ConnectionClosed, MoqtConnection, SessionOptions, connect
from moqt.errors import SessionCloseCode

__all__ = ["ViewerSessions", "redact"]

_log = library_logger("clutchcall.streams.viewer")

_RECONNECT_PAUSE = 0.2
_STALL_GROUPS = 3  # groups of silence before a probe
_GROUP_SAMPLES = 5  # group durations measured (median), when the catalog names none


def redact(url: str) -> str:
    return url.split("?", 1)[0]


class ViewerSessions:
    """Connection lifecycle, reconnect/fallback and the stall probe (see the module doc)."""

    def __init__(self, target: PlaybackTarget, options: ViewerOptions) -> None:
        self.target = target
        self._options = options
        self._urls = (target.url, *options.fallback_urls)
        self._loop = asyncio.get_running_loop()
        # The current session's end (a new one per connection; see _run).
        self._done: asyncio.Future[tuple[str, str]] = self._loop.create_future()
        self._result: tuple[str, str] | None = None
        self._closing = False
        self._ending = False  # the broadcast ended; its last media is being delivered
        self._goaway_uri = ""
        self._delivered_in_session = False
        self._closed_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: MoqtConnection | None = None
        self._sessions = 0  # sessions that completed SETUP (statistics()["sessions"])
        self._tasks: set[asyncio.Task[Any]] = set()
        # Stall probe. The group duration: the catalog's, else measured (see _saw_group).
        self._group_duration = options.group_duration
        self._catalog_group_duration = False
        self._group_samples: list[float] = []
        self._group_seen: tuple[int, float] | None = None
        self._stall_timeout = options.stall_timeout  # 0 once a stack turns out to lack PING
        self._heard = 0.0  # when the last object arrived (or the relay last answered a probe)
        self._probing = False
        self._probes = 0  # PINGs sent (statistics()["probes"])
        self._stalls = 0  # sessions found lost by a probe (statistics()["stalls"])

    # --- API -----------------------------------------------------------------------------

    async def close(self) -> tuple[str, str]:
        """Stop watching (``on_close("closed", ...)`` unless it already ended)."""
        self._closing = True
        self._finish("closed", "closed by the application")
        if self._task is not None and (self._conn is None or self._conn.is_closed):
            self._task.cancel()  # still connecting (or between attempts): stop now
        return await self.wait_closed()

    async def wait_closed(self) -> tuple[str, str]:
        """Wait until the viewer ended; returns ``(reason, detail)`` as given to ``on_close``."""
        await self._closed_event.wait()
        assert self._result is not None
        return self._result

    @property
    def closed(self) -> bool:
        return self._closed_event.is_set()

    # --- hooks (the viewer implements them) ------------------------------------------------

    def _session_started(self, conn: MoqtConnection) -> None:
        """A session completed SETUP: subscribe."""
        raise NotImplementedError

    def _reset_session(self) -> None:
        """The session was lost: forget its subscriptions before the next one."""
        raise NotImplementedError

    def _end_now(self) -> None:
        """Deliver what is left of an ended broadcast and finish ``ended``."""
        raise NotImplementedError

    # --- lifecycle ---------------------------------------------------------------------

    def _finish(self, reason: str, detail: str) -> None:
        if reason == "network" and self._ending and not self._done.done():
            # The broadcast had ended; losing the session while its last media arrives
            # does not make the end an error: deliver what came and close ``ended``.
            self._end_now()
            return
        if not self._done.done():
            _log.info("viewer_closing", reason=reason, detail=detail)
            self._done.set_result((reason, detail))

    async def _run(self) -> None:
        result = ("network", "not connected")
        # A window of ``reconnect`` seconds from the first loss (0: give up at once),
        # restarted after a session that delivered media.
        retry = Backoff(_RECONNECT_PAUSE, window=self._options.reconnect, clock=self._loop.time)
        index = 0
        try:
            while True:
                url = self._goaway_uri or self._urls[index % len(self._urls)]
                self._goaway_uri = ""
                result = await self._session(url)
                if result[0] != "network" or self._closing or self._ending:
                    break
                if self._delivered_in_session:
                    retry.restart()
                pause = retry.failed()
                if pause is None:
                    break
                index += 1
                _log.info("viewer_reconnecting", after=result[1], url=redact(url))
                self._reset_session()
                await asyncio.sleep(pause)
                if self._closing:
                    result = ("closed", "closed by the application")
                    break
        except asyncio.CancelledError:
            result = ("closed", "closed by the application" if self._closing else "cancelled")
        finally:
            self._result = result
            self._closed_event.set()
            if self._options.on_close is not None:
                try:
                    self._options.on_close(*result)
                except Exception:
                    _log.exception("on_close_failed")

    async def _session(self, url: str) -> tuple[str, str]:
        """One connection, until it ends; returns why (``_finish``'s reason and detail)."""
        self._done = self._loop.create_future()
        self._delivered_in_session = False
        token = self.target.token
        session_options = SessionOptions(
            auth_token=None if token is None else token.encode(),
            implementation="clutchcall-python-viewer",
        )
        try:
            async with connect(
                url,
                verify=self._options.tls.verify,
                cafile=self._options.tls.cafile,
                options=session_options,
                setup_timeout=self._options.connect_timeout,
            ) as conn:
                self._conn = conn
                self._sessions += 1
                self._heard = self._loop.time()
                self._probing = False
                self._session_started(conn)
                await asyncio.shield(self._done)
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                if not conn.is_closed and self._done.result()[0] != "closed":
                    conn.close(SessionCloseCode.NO_ERROR, "viewer done")
        except ConnectionClosed as exc:
            self._finish(*close_reason(exc.code, exc.reason, exc.by_peer))
        except (OSError, TimeoutError, ConnectionError) as exc:
            # An untrusted certificate will not change by retrying: end at once, saying why.
            reason = "error" if getattr(exc, "untrusted_certificate", False) else "network"
            self._finish(reason, unreachable_detail(redact(url), exc))
        except Exception as exc:  # a bug must still end in on_close, never a silent hang
            _log.exception("viewer_failed")
            self._finish("error", f"{type(exc).__name__}: {exc}")
        finally:
            for task in list(self._tasks):
                task.cancel()
            self._finish("network", "connection ended")
        return self._done.result()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or isinstance(exc, ConnectionClosed):
            return
        _log.error("viewer_task_failed", error=repr(exc))
        self._finish("error", f"{type(exc).__name__}: {exc}")

    # --- stall probe -------------------------------------------------------------------

    def _set_group_duration(self, seconds: float) -> None:
        """The catalog's maximum group duration (it wins over what is measured)."""
        self._group_duration = seconds
        self._catalog_group_duration = True

    def _saw_group(self, group_id: int, now: float) -> None:
        """A video object of ``group_id`` arrived: measure the group duration (median of
        the last few consecutive groups, so one publisher pause does not inflate it)."""
        seen = self._group_seen
        if seen is not None and group_id <= seen[0]:
            return
        if seen is not None and group_id == seen[0] + 1 and not self._catalog_group_duration:
            self._group_samples = [*self._group_samples[-(_GROUP_SAMPLES - 1) :], now - seen[1]]
            self._group_duration = statistics.median(self._group_samples)
        self._group_seen = (group_id, now)

    def _stall_after(self) -> float:
        """Silence (s) after which the session is probed."""
        return max(self._stall_timeout, _STALL_GROUPS * self._group_duration)

    def _check_stall(self, now: float) -> None:
        """From the ticker: probe a session that has been silent too long."""
        if self._stall_timeout <= 0 or self._probing or self._ending or self._done.done():
            return
        conn = self._conn
        if conn is None or conn.is_closed or now - self._heard < self._stall_after():
            return
        self._probing = True
        self._spawn(self._probe(conn, now - self._heard))

    async def _probe(self, conn: MoqtConnection, silence: float) -> None:
        self._probes += 1
        try:
            async with asyncio.timeout(self._options.ping_timeout):
                await conn.ping()
        except TimeoutError:
            if conn is not self._conn or self._done.done():
                return
            self._stalls += 1
            detail = (
                f"no media for {silence:.1f} s and no answer to a QUIC PING within "
                f"{self._options.ping_timeout:g} s: the relay is gone"
            )
            _log.warning("viewer_session_stalled", silence=round(silence, 2))
            self._finish("network", detail)
            conn.close(SessionCloseCode.INTERNAL_ERROR, "session stalled")
            return
        except NotImplementedError:
            self._stall_timeout = 0  # a stack without PING: QUIC's idle timeout decides
            return
        finally:
            self._probing = False
        # Answered: the relay is alive and the broadcast only quiet (a publisher pause).
        self._heard = self._loop.time()
        _log.debug("viewer_session_quiet", silence=round(silence, 2))
