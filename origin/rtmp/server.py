"""asyncio RTMP ingest server: a thin adapter over :class:`~origin.rtmp.connection.ServerConnection`.

One coroutine per TCP connection reads, feeds the sans-I/O core, awaits the
authorizer and the sink in order (a slow sink slows the encoder through TCP
backpressure: nothing is buffered without bound), and writes replies.

Policy:

* Admission at ``publish``: the app / name pair is parsed (see
  :mod:`origin.rtmp.publish`), then the authorizer decides. Refusal sends
  ``onStatus`` level ``error`` code ``NetStream.Publish.BadName`` with the reason,
  then closes the connection.
* One publisher per external input: while an input is being published, a second
  *authorized* publisher is refused with ``NetStream.Publish.BadName`` "already
  publishing" (checked after the key, so it reveals nothing to strangers). A
  reconnecting encoder whose old TCP connection silently died gets in once the
  old one hits ``idle_timeout``.
* Limits: handshake timeout, idle timeout (no bytes received), chunk and message
  size caps, stream counts, connection cap. Any peer fault closes that
  connection only; the handler always tells the sink how the publish ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Self

import structlog

from origin.rtmp.connection import ConnectionLimits, ServerConnection
from origin.rtmp.errors import RtmpPeerError, RtmpUsageError
from origin.rtmp.events import (
    ConnectRequested,
    Event,
    HandshakeCompleted,
    MediaReceived,
    MetadataReceived,
    Notice,
    PlayRequested,
    PublishFinished,
    PublishRequested,
)
from origin.rtmp.publish import (
    Authorizer,
    EndReason,
    InvalidPublishTarget,
    PublishEnd,
    PublishInfo,
    PublishSink,
    SinkFactory,
    app_is_ours,
    parse_publish_target,
    redact_app,
    redact_tc_url,
)

__all__ = ["RtmpServer", "RtmpServerSettings", "RtmpServerStatistics"]

BAD_NAME = "NetStream.Publish.BadName"
DENIED = "NetStream.Publish.Denied"


@dataclass(frozen=True, slots=True)
class RtmpServerSettings:
    app_name: str = "live"
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    handshake_timeout: float = 10.0
    idle_timeout: float = 20.0
    #: A connection without an admitted publish for this long is closed (slow-loris guard).
    publish_timeout: float = 30.0
    auth_timeout: float = 10.0
    write_timeout: float = 10.0
    end_timeout: float = 5.0
    max_connections: int = 1000
    read_size: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class RtmpServerStatistics:
    connections_accepted: int
    connections_active: int
    connections_refused: int
    publishes_admitted: int
    publishes_refused: int
    publishes_active: int
    peer_errors: int
    timeouts: int
    media_tags: int
    bytes_received: int
    internal_errors: int


class _Close(Exception):
    """Close this connection: ``reason`` for sinks, ``label`` for the connection log."""

    def __init__(self, reason: EndReason, detail: str, label: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.label = label or str(reason)


@dataclass(slots=True)
class _Publish:
    external_input_id: str
    sink: PublishSink


@dataclass(slots=True)
class _Session:
    session: str
    peer: str
    conn: ServerConnection
    writer: asyncio.StreamWriter
    task: asyncio.Task[Any] | None
    log: Any
    tc_url: str = ""
    flash_ver: str = ""
    publishes: dict[int, _Publish] = field(default_factory=dict)
    kicked: str | None = None
    idle_since: float = 0.0  # loop time since when no publish is active


class RtmpServer:
    """``async with RtmpServer(authorizer, sink_factory) as srv: await srv.start(host, port)``."""

    def __init__(
        self,
        authorizer: Authorizer,
        sink_factory: SinkFactory,
        settings: RtmpServerSettings | None = None,
    ) -> None:
        self._authorize = authorizer
        self._sink_factory = sink_factory
        self._settings = settings or RtmpServerSettings()
        self._server: asyncio.Server | None = None
        self._closing = False
        self._sessions: dict[str, _Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._live: dict[str, _Session] = {}
        self._ids = itertools.count(1)
        self._log = structlog.get_logger("origin.rtmp")
        self._stats = dict.fromkeys(
            (
                "accepted",
                "refused",
                "admitted",
                "pub_refused",
                "peer_errors",
                "timeouts",
                "media",
                "bytes",
                "internal_errors",
            ),
            0,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 1935) -> None:
        if self._server is not None:
            raise RuntimeError("RTMP server already started")
        self._server = await asyncio.start_server(self._handle, host, port)
        self._log.info("rtmp.listening", addresses=[str(a) for a in self.addresses])

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [s.getsockname()[:2] for s in self._server.sockets]

    @property
    def port(self) -> int:
        if not self.addresses:
            raise RuntimeError("RTMP server is not listening")
        return self.addresses[0][1]

    async def close(self) -> None:
        """Stop listening, end every connection (sinks get SERVER_CLOSED), wait for handlers."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Handlers that started between close() and now see _closing and leave at once;
        # loop until none is left so nothing outlives the server.
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.end_timeout):
                    await server.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def live_inputs(self) -> list[str]:
        """External input ids being published right now."""
        return sorted(self._live)

    async def disconnect(self, external_input_id: str, reason: str) -> bool:
        """End the publish of ``external_input_id`` (sink gets KICKED). False if not live."""
        sess = self._live.get(external_input_id)
        if sess is None or sess.task is None:
            return False
        sess.kicked = reason
        sess.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({sess.task}, timeout=self._settings.end_timeout)
        return True

    def statistics(self) -> RtmpServerStatistics:
        s = self._stats
        return RtmpServerStatistics(
            connections_accepted=s["accepted"],
            connections_active=len(self._sessions),
            connections_refused=s["refused"],
            publishes_admitted=s["admitted"],
            publishes_refused=s["pub_refused"],
            publishes_active=len(self._live),
            peer_errors=s["peer_errors"],
            timeouts=s["timeouts"],
            media_tags=s["media"],
            bytes_received=s["bytes"],
            internal_errors=s["internal_errors"],
        )

    # ------------------------------------------------------------------ per connection

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer, task)
        except asyncio.CancelledError:
            # A second cancellation while cleaning up. This task is the connection's
            # root (asyncio's stream callback treats a cancelled handler as an error),
            # so it ends here; the sinks were already told in _serve.
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any] | None,
    ) -> None:
        cfg = self._settings
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else "?"
        session = f"rtmp-{next(self._ids)}"
        log = self._log.bind(session=session, peer=peer)
        if self._closing:
            await self._close_writer(writer)
            return
        if len(self._sessions) >= cfg.max_connections:
            self._stats["refused"] += 1
            log.warning("rtmp.connection_refused", reason="max_connections")
            await self._close_writer(writer)
            return
        self._stats["accepted"] += 1
        sess = _Session(session, peer, ServerConnection(cfg.limits), writer, task, log)
        self._sessions[session] = sess
        log.info("rtmp.connection_opened")
        reason, detail = EndReason.CONNECTION_LOST, "connection closed by peer"
        label = ""
        try:
            await self._pump(sess, reader)
        except _Close as close:
            reason, detail, label = close.reason, close.detail, close.label
        except RtmpPeerError as exc:
            self._stats["peer_errors"] += 1
            reason, detail = EndReason.PROTOCOL_ERROR, f"{exc.reason}: {exc}"
            log.warning("rtmp.protocol_error", reason=exc.reason, detail=str(exc))
        except TimeoutError:
            self._stats["timeouts"] += 1
            phase = "handshake" if not sess.conn.handshake_done else "idle"
            reason, detail = EndReason.IDLE_TIMEOUT, f"{phase} timeout"
            log.warning("rtmp.timeout", phase=phase)
        except (ConnectionError, OSError) as exc:
            reason, detail = EndReason.CONNECTION_LOST, type(exc).__name__
        except Exception as exc:  # a bug of ours: contain it to this connection
            self._stats["internal_errors"] += 1
            reason, detail = EndReason.INTERNAL_ERROR, type(exc).__name__
            log.exception("rtmp.internal_error")
        except asyncio.CancelledError:
            # Only close() and disconnect() cancel a handler; it is the task's root, so
            # the cancellation is consumed here and the cleanup below runs normally.
            if task is not None:
                task.uncancel()
            if sess.kicked is None:
                reason, detail = EndReason.SERVER_CLOSED, "server shutting down"
            else:
                reason, detail = EndReason.KICKED, sess.kicked
                for sid in list(sess.publishes):
                    with contextlib.suppress(RtmpUsageError):  # finished meanwhile
                        sess.conn.end_publish(sid, sess.kicked)
                await self._flush(sess, suppress=True)
        finally:
            # Synchronous bookkeeping first: a second cancellation while the sinks are
            # told must not leave the session registered or the socket open.
            self._sessions.pop(session, None)
            sess.conn.close()
            try:
                await self._end_all(sess, PublishEnd(reason, detail))
            finally:
                writer.close()
                log.info(
                    "rtmp.connection_closed",
                    reason=label or str(reason),
                    detail=detail,
                    bytes_received=sess.conn.bytes_received,
                )
        await self._close_writer(writer)

    async def _pump(self, sess: _Session, reader: asyncio.StreamReader) -> None:
        cfg = self._settings
        conn = sess.conn
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(cfg.handshake_timeout):
            while not conn.handshake_done:
                data = await reader.read(cfg.read_size)
                if not data:
                    raise _Close(EndReason.CONNECTION_LOST, "closed during handshake")
                self._stats["bytes"] += len(data)
                events = conn.receive_data(data)
                await self._flush(sess)
                await self._process(sess, events)
        sess.idle_since = loop.time()
        while True:
            wait = cfg.idle_timeout
            if not sess.publishes:
                left = sess.idle_since + cfg.publish_timeout - loop.time()
                if left <= 0:
                    self._stats["timeouts"] += 1
                    raise _Close(
                        EndReason.IDLE_TIMEOUT,
                        f"no publish within {cfg.publish_timeout:g} s",
                        "publish_timeout",
                    )
                wait = min(wait, left)
            try:
                async with asyncio.timeout(wait):
                    data = await reader.read(cfg.read_size)
            except TimeoutError:
                if wait < cfg.idle_timeout:
                    continue  # the publish deadline, reported at the top of the loop
                raise
            if not data:
                return
            self._stats["bytes"] += len(data)
            events = conn.receive_data(data)
            await self._flush(sess)
            await self._process(sess, events)

    async def _flush(self, sess: _Session, *, suppress: bool = False) -> None:
        data = sess.conn.data_to_send()
        if not data:
            return
        try:
            sess.writer.write(data)
            async with asyncio.timeout(self._settings.write_timeout):
                await sess.writer.drain()
        except (ConnectionError, OSError, TimeoutError) as exc:
            if not suppress:
                raise _Close(
                    EndReason.CONNECTION_LOST, f"write failed: {type(exc).__name__}"
                ) from exc

    async def _close_writer(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(self._settings.end_timeout):
                await writer.wait_closed()

    async def _refuse(self, sess: _Session, sid: int, code: str, detail: str) -> None:
        self._stats["pub_refused"] += 1
        sess.conn.reject_publish(sid, code, detail)
        await self._flush(sess, suppress=True)
        raise _Close(EndReason.PROTOCOL_ERROR, f"publish refused: {detail}", "publish_refused")

    async def _process(self, sess: _Session, events: list[Event]) -> None:
        for ev in events:
            match ev:
                case MediaReceived(stream_id=sid, tag=tag):
                    pub = sess.publishes.get(sid)
                    if pub is not None:
                        self._stats["media"] += 1
                        await self._sink_call(sess, pub.sink.on_media(tag))
                case MetadataReceived(stream_id=sid, metadata=meta):
                    pub = sess.publishes.get(sid)
                    if pub is not None:
                        sess.log.info(
                            "rtmp.metadata",
                            external_input_id=pub.external_input_id,
                            keys=sorted(meta)[:32],
                        )
                        await self._sink_call(sess, pub.sink.on_metadata(meta))
                case PublishRequested():
                    await self._on_publish(sess, ev)
                case PublishFinished(stream_id=sid, command=command):
                    await self._end_publish(sess, sid, PublishEnd(EndReason.UNPUBLISHED, command))
                case ConnectRequested(app=app, tc_url=tc_url, flash_ver=flash_ver):
                    sess.tc_url, sess.flash_ver = redact_tc_url(tc_url), flash_ver
                    sess.log.info(
                        "rtmp.connect", app=redact_app(app), tc_url=sess.tc_url, flash_ver=flash_ver
                    )
                    if app_is_ours(app, self._settings.app_name):
                        # Always AMF0: objectEncoding 0 tells AMF3-capable clients to use it.
                        pipelined = sess.conn.accept_connect(object_encoding=0.0)
                        await self._flush(sess)
                        await self._process(sess, pipelined)
                    else:
                        sess.conn.reject_connect(f"unknown application {app!r}")
                        await self._flush(sess, suppress=True)
                        raise _Close(EndReason.PROTOCOL_ERROR, "unknown app", "connect_rejected")
                case PlayRequested(stream_id=sid):
                    sess.conn.refuse(sid, "NetStream.Play.Failed", "this server only ingests")
                    await self._flush(sess, suppress=True)
                    raise _Close(EndReason.PROTOCOL_ERROR, "play refused", "play_refused")
                case Notice(kind=kind, detail=detail):
                    sess.log.debug("rtmp.notice", kind=kind, detail=detail)
                case HandshakeCompleted():
                    sess.log.debug("rtmp.handshake_completed")
            await self._flush(sess)

    async def _sink_call(self, sess: _Session, call: Any) -> None:
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            sess.log.exception("rtmp.sink_failed")
            raise _Close(EndReason.SINK_FAILED, f"sink raised {type(exc).__name__}") from exc

    async def _on_publish(self, sess: _Session, ev: PublishRequested) -> None:
        if not sess.conn.publish_pending(ev.stream_id):
            # Withdrawn by a command pipelined behind connect (its PublishFinished is
            # among the same events): nothing to admit and nothing to answer.
            return
        cfg = self._settings
        log = sess.log
        try:
            target = parse_publish_target(sess.conn.app, ev.name, app_name=cfg.app_name)
        except InvalidPublishTarget as exc:
            log.warning("rtmp.publish_refused", reason=exc.reason, detail=str(exc))
            await self._refuse(sess, ev.stream_id, BAD_NAME, str(exc))
            return
        input_id = target.external_input_id
        log = log.bind(external_input_id=input_id)
        try:
            async with asyncio.timeout(cfg.auth_timeout):
                admission = await self._authorize(input_id, target.stream_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("rtmp.authorizer_failed")
            await self._refuse(
                sess,
                ev.stream_id,
                DENIED,
                f"authorization unavailable ({type(exc).__name__}), retry later",
            )
            return
        if not admission.ok:
            log.warning("rtmp.publish_refused", reason="auth_failed", detail=admission.reason)
            await self._refuse(
                sess, ev.stream_id, BAD_NAME, admission.reason or "invalid stream key"
            )
            return
        if input_id in self._live:
            log.warning("rtmp.publish_refused", reason="already_publishing")
            await self._refuse(
                sess,
                ev.stream_id,
                BAD_NAME,
                f"{input_id} is already publishing from another connection",
            )
            return
        self._live[input_id] = sess
        info = PublishInfo(
            external_input_id=input_id,
            org_id=admission.org_id,
            namespace=admission.namespace,
            app=redact_app(sess.conn.app),
            tc_url=sess.tc_url,
            flash_ver=sess.flash_ver,
            publish_type=ev.publish_type,
            peer=sess.peer,
            session=sess.session,
        )
        try:
            sink = await self._sink_factory(info)
        except asyncio.CancelledError:
            self._live.pop(input_id, None)
            raise
        except Exception as exc:
            self._live.pop(input_id, None)
            log.exception("rtmp.sink_factory_failed")
            await self._refuse(
                sess,
                ev.stream_id,
                DENIED,
                f"ingest unavailable ({type(exc).__name__}), retry later",
            )
            return
        sess.publishes[ev.stream_id] = _Publish(input_id, sink)
        self._stats["admitted"] += 1
        sess.conn.accept_publish(ev.stream_id, f"Publishing {input_id}.", input_id)
        log.info(
            "rtmp.publish_admitted",
            org=admission.org_id,
            namespace=admission.namespace,
            publish_type=ev.publish_type,
        )

    def _release(self, sess: _Session, sid: int, end: PublishEnd) -> _Publish | None:
        """Forget a publish (synchronously, so a cancellation cannot leave the input taken)."""
        pub = sess.publishes.pop(sid, None)
        if pub is None:
            return None
        if not sess.publishes:
            sess.idle_since = asyncio.get_running_loop().time()
        if self._live.get(pub.external_input_id) is sess:
            del self._live[pub.external_input_id]
        sess.log.info(
            "rtmp.publish_ended",
            external_input_id=pub.external_input_id,
            reason=str(end.reason),
            detail=end.detail,
            clean=end.clean,
        )
        return pub

    async def _notify_end(self, sess: _Session, pub: _Publish, end: PublishEnd) -> None:
        try:
            async with asyncio.timeout(self._settings.end_timeout):
                await pub.sink.on_end(end)
        except Exception:
            sess.log.exception("rtmp.sink_end_failed", external_input_id=pub.external_input_id)

    async def _end_publish(self, sess: _Session, sid: int, end: PublishEnd) -> None:
        pub = self._release(sess, sid, end)
        if pub is not None:
            await self._notify_end(sess, pub, end)

    async def _end_all(self, sess: _Session, end: PublishEnd) -> None:
        """Release every publish first, then tell each sink, even if cancelled meanwhile."""
        pubs = [p for sid in list(sess.publishes) if (p := self._release(sess, sid, end))]
        cancelled = False
        for pub in pubs:
            try:
                await self._notify_end(sess, pub, end)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
