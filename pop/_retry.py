"""A QUIC server that validates client addresses with Retry while handshakes pile up.

Every QUIC Initial for an unknown connection id makes aioquic's server create a
connection (a TLS handshake in Python, ~3 ms of CPU, and retransmission timers)
before anything proves the source address is real, and tearing one down scans every
connection id of the server. A flood of spoofed Initials (random connection ids,
forged sources) therefore grows the process and stalls the event loop every honest
viewer shares.

:class:`GuardedQuicServer` answers an Initial without a token with a Retry packet
(RFC 9000 section 8.1: stateless) instead of creating a connection

* always, with ``quic_retry = "always"``;
* with ``"auto"`` (the default), while ``retry_threshold`` connections are half-open
  (created, handshake not complete), or while more than ``retry_threshold / 8`` new
  connections a second are asked for without a token (this second or the one before:
  the rate trigger, so a flood costs a few handshakes instead of ``retry_threshold``
  of them, and keeps costing none while it lasts), so the honest client pays one
  more round trip only during a flood or a burst of new connections;
* never, with ``"never"``.

An Initial that carries a Retry token is validated whatever the mode (the client may
have been sent the Retry just before the flood ended).

Each datagram costs as little as possible before it is known to belong to a
connection: the header is read by byte slicing (:func:`pop._initial.peek`) before
aioquic parses anything; packets for no connection that are not a new connection's
Initial are dropped there; the Retry is built by :class:`pop._initial.RetryEncoder`
(about 10 us instead of ~100 us). While the flood lasts, the event loop can so keep up
with it, and an honest client's packet is not left waiting behind thousands of
flood datagrams in the socket buffer (the cause of multi-second connect waits
measured under load). Two limits bound the work for unvalidated Initials further,
each counted: at most :attr:`GuardedQuicServer.per_source` a second from one source
address and port (more are dropped), and at most :attr:`GuardedQuicServer.retry_rate`
Retries a second in all (beyond it Initials are dropped: the client retransmits).

A datagram in a version we do not speak gets Version Negotiation only if it is large
enough to start a connection (RFC 9000 5.2.2), within the same limits.

Teardown looks up the connection's own ids instead of scanning every id of the server.
The counts are in :meth:`GuardedQuicServer.statistics` (``clutchcall_pop_quic_*``
gauges).

This relies on aioquic 1.x's ``QuicServer`` internals (``_retry``, ``_protocols``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic.retry import QuicRetryTokenHandler

from ._initial import LongHeader, RetryEncoder, peek

__all__ = ["RETRY_MODES", "GuardedQuicServer", "RetryMode"]

RetryMode = Literal["auto", "always", "never"]
RETRY_MODES: Final = ("auto", "always", "never")
_SMALLEST_INITIAL: Final = 1200
# How long a computed half-open count is reused (pruning it reads every half-open one).
_PRESSURE_CACHE: Final = 0.01
# Sources tracked for the per-source limit within one second (beyond: not limited).
_MAX_SOURCES: Final = 16384
_MAX_DATAGRAM: Final = 65535


class GuardedQuicServer(QuicServer):
    """See the module docstring."""

    #: Unvalidated Initials accepted from one source address and port within a second.
    per_source: int = 16
    #: Retry (and Version Negotiation) packets sent within a second, in all.
    retry_rate: int = 5000
    #: Datagrams read from the socket per event-loop poll.
    batch: int = 64

    def __init__(
        self,
        *,
        mode: RetryMode = "auto",
        threshold: int = 64,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        if mode not in RETRY_MODES:
            raise ValueError(f"quic_retry must be one of {', '.join(RETRY_MODES)}")
        if threshold < 1:
            raise ValueError("retry_threshold must be >= 1")
        super().__init__(retry=True, **kwargs)
        assert self._retry is not None
        self._tokens: QuicRetryTokenHandler = self._retry
        # aioquic's own Retry decision is off: ours is made before it sees a datagram.
        self._retry = None  # type: ignore[assignment]
        self._encoder = RetryEncoder(self._tokens)
        self._mode = mode
        self._threshold = threshold
        self._rate_threshold = max(1, threshold // 8)
        self._clock = clock
        self._cid_length = self._configuration.connection_id_length
        self._half_open: set[QuicConnectionProtocol] = set()
        self._sock: socket.socket | None = None
        self._pressure_until = 0.0
        self._pressure_value = False
        self._second = 0.0
        self._sources: dict[Any, int] = {}
        self._retries_this_second = 0
        self._initials_this_second = 0
        self._initials_last_second = 0
        self._counts = dict.fromkeys(
            (
                "retries_sent",
                "connections_created",
                "dropped_source_rate",
                "dropped_retry_rate",
                "dropped_invalid_token",
                "dropped_no_connection",
                "dropped_unknown_version",
                "refused_invalid_token",
                "version_negotiations_sent",
            ),
            0,
        )
        create = self._create_protocol

        def create_protocol(*args: Any, **kw: Any) -> QuicConnectionProtocol:
            protocol: QuicConnectionProtocol = create(*args, **kw)
            self._half_open.add(protocol)
            self._counts["connections_created"] += 1
            return protocol

        self._create_protocol = create_protocol

    @property
    def retries_sent(self) -> int:
        return self._counts["retries_sent"]

    @property
    def connections_created(self) -> int:
        return self._counts["connections_created"]

    # --- the decision, per datagram -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # A second descriptor of the same socket, to read the datagrams already
            # queued in a batch (asyncio's transport takes one per loop iteration).
            self._sock = sock.dup()
            self._sock.setblocking(False)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._datagram(data, addr)
        # The loop polls once per datagram; a flood queues thousands. Take up to
        # ``batch`` of them per poll: the queue drains faster (an honest packet waits
        # behind fewer), and other callbacks wait at most a batch's worth.
        for _ in range(self.batch - 1):
            sock = self._sock
            if sock is None:
                return
            try:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed under us (the server stopped)
            self._datagram(data, addr)

    def _datagram(self, data: bytes | str, addr: Any) -> None:
        if not isinstance(data, bytes) or not data:
            return
        protocols = self._protocols
        if not data[0] & 0x80:
            # Short header: an established connection's, or nobody's.
            if data[1 : 1 + self._cid_length] in protocols:
                super().datagram_received(data, addr)
            else:
                self._counts["dropped_no_connection"] += 1
            return
        header = peek(data)
        if header is None or header.destination_cid in protocols:
            super().datagram_received(data, addr)  # aioquic's to parse, or to drop
            return
        if not header.initial:
            if header.version in self._configuration.supported_versions:
                # A Handshake or 0-RTT packet for no connection: aioquic drops it too.
                self._counts["dropped_no_connection"] += 1
            else:
                self._other_version(data, addr, header)
            return
        if len(data) < _SMALLEST_INITIAL or header.token is None:
            self._counts["dropped_no_connection"] += 1  # aioquic ignores these too
            return
        self._new_connection(data, addr, header)

    def _admit(self, addr: Any, now: float) -> bool:
        """Within this second's per-source limit (counted in ``now``'s window)."""
        if now - self._second >= 1.0:
            self._initials_last_second = (
                self._initials_this_second if now - self._second < 2.0 else 0
            )
            self._second = now
            self._sources.clear()
            self._retries_this_second = 0
            self._initials_this_second = 0
        sources = self._sources
        key = (addr[0], addr[1])
        seen = sources.get(key)
        if seen is not None:
            if seen >= self.per_source:
                self._counts["dropped_source_rate"] += 1
                return False
            sources[key] = seen + 1
        elif len(sources) < _MAX_SOURCES:
            sources[key] = 1
        return True

    def _other_version(self, data: bytes, addr: Any, header: LongHeader) -> None:
        """A version we do not speak: Version Negotiation (aioquic's), but only for a
        datagram that could start a connection (RFC 9000 5.2.2: no reflection of small
        ones, ~7x larger answers), and within the same limits as a Retry."""
        if header.version == 0 or len(data) < _SMALLEST_INITIAL:
            self._counts["dropped_unknown_version"] += 1
            return
        if not self._admit(addr, self._clock()):
            return
        if self._retries_this_second >= self.retry_rate:
            self._counts["dropped_retry_rate"] += 1
            return
        self._retries_this_second += 1
        self._counts["version_negotiations_sent"] += 1
        super().datagram_received(data, addr)

    def _new_connection(self, data: bytes, addr: Any, header: LongHeader) -> None:
        """An Initial for a connection we do not have, from an address not yet validated
        (unless it carries our token)."""
        now = self._clock()
        if not self._admit(addr, now):
            return
        if header.token:
            self._with_token(data, addr, header)
            return
        self._initials_this_second += 1
        if self._mode == "never" or (self._mode == "auto" and not self._pressure(now)):
            super().datagram_received(data, addr)  # creates the connection
            return
        if self._retries_this_second >= self.retry_rate:
            self._counts["dropped_retry_rate"] += 1
            return
        packet = self._encoder.encode(header, addr, self._loop.time())
        if packet is None or self._transport is None:
            self._counts["dropped_no_connection"] += 1
            return
        self._transport.sendto(packet, addr)
        self._retries_this_second += 1
        self._counts["retries_sent"] += 1

    def _with_token(self, data: bytes, addr: Any, header: LongHeader) -> None:
        assert header.token is not None
        try:
            self._tokens.validate_token(
                address=addr,
                destination_cid=header.destination_cid,
                token=header.token,
                now=self._loop.time(),
            )
        except ValueError:
            if self._mode == "never" or (self._mode == "auto" and not self._pressure(0.0)):
                # aioquic closes it with INVALID_TOKEN (RFC 9000 8.1.3).
                self._counts["refused_invalid_token"] += 1
                self._pass_with_tokens(data, addr)
            else:
                # During a flood a forged token gets nothing (8.1.3 allows dropping it).
                self._counts["dropped_invalid_token"] += 1
            return
        self._pass_with_tokens(data, addr)

    def _pass_with_tokens(self, data: bytes, addr: Any) -> None:
        self._retry = self._tokens
        try:
            super().datagram_received(data, addr)
        finally:
            self._retry = None  # type: ignore[assignment]

    def _pressure(self, now: float) -> bool:
        """Half-open connections at the threshold, or new connections asked for without a
        token faster than the rate trigger, this second or the one before."""
        if max(self._initials_this_second, self._initials_last_second) > self._rate_threshold:
            return True
        if len(self._half_open) < self._threshold:
            return False
        now = now or self._clock()
        if now < self._pressure_until:
            return self._pressure_value
        done = [p for p in self._half_open if p._quic._handshake_complete]
        self._half_open.difference_update(done)
        self._pressure_value = len(self._half_open) >= self._threshold
        self._pressure_until = now + _PRESSURE_CACHE
        return self._pressure_value

    # --- constant-time teardown ----------------------------------------------------------

    def _connection_terminated(self, protocol: QuicConnectionProtocol) -> None:
        quic = protocol._quic
        cids = {c.cid for c in quic._host_cids}
        cids.update(
            cid
            for cid in (
                quic.host_cid,
                quic._original_destination_connection_id,
                quic._retry_source_connection_id,
            )
            if cid is not None
        )
        for cid in cids:
            if self._protocols.get(cid) is protocol:
                del self._protocols[cid]
        self._half_open.discard(protocol)

    def statistics(self) -> dict[str, int]:
        return {
            **self._counts,
            "half_open": len(self._half_open),
            "retry_threshold": self._threshold,
            "retry_rate_trigger": self._rate_threshold,
        }
