"""A QUIC server that validates client addresses with Retry while handshakes pile up.

Every QUIC Initial for an unknown connection id makes aioquic's server create a
connection (TLS state, retransmission timers) before anything proves the source
address is real, and tearing one down scans every connection id of the server. A
flood of spoofed Initials (random connection ids, forged sources) therefore grows the
process and stalls the event loop every honest viewer shares.

:class:`GuardedQuicServer` answers an Initial without a token with a Retry packet
(RFC 9000 section 8.1: stateless, one HMAC) instead of creating a connection

* always, with ``quic_retry = "always"``;
* with ``"auto"`` (the default), while more than ``retry_threshold`` connections are
  half-open (created, handshake not complete), so the honest client pays one more
  round trip only during a flood, and the number of half-open connections stays
  bounded near the threshold;
* never, with ``"never"``.

An Initial that carries a Retry token is validated whatever the mode (the client may
have been sent the Retry just before the flood ended). Teardown looks up the
connection's own ids instead of scanning every id of the server. The counts are in
:meth:`GuardedQuicServer.statistics` (``clutchcall_pop_quic_*`` gauges).

This relies on aioquic 1.x's ``QuicServer`` internals (``_retry``, ``_protocols``).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import Buffer
from aioquic.quic.connection import END_STATES
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from aioquic.quic.retry import QuicRetryTokenHandler

__all__ = ["RETRY_MODES", "GuardedQuicServer", "RetryMode"]

RetryMode = Literal["auto", "always", "never"]
RETRY_MODES: Final = ("auto", "always", "never")
_SMALLEST_INITIAL: Final = 1200


class GuardedQuicServer(QuicServer):
    """See the module docstring."""

    def __init__(self, *, mode: RetryMode = "auto", threshold: int = 64, **kwargs: Any) -> None:
        if mode not in RETRY_MODES:
            raise ValueError(f"quic_retry must be one of {', '.join(RETRY_MODES)}")
        if threshold < 1:
            raise ValueError("retry_threshold must be >= 1")
        super().__init__(retry=True, **kwargs)
        self._tokens: QuicRetryTokenHandler = self._retry  # type: ignore[assignment]
        self._mode = mode
        self._threshold = threshold
        self._half_open: set[QuicConnectionProtocol] = set()
        self._is_tokenless = False
        self.retries_sent = 0
        self.connections_created = 0
        create = self._create_protocol

        def create_protocol(*args: Any, **kw: Any) -> QuicConnectionProtocol:
            protocol: QuicConnectionProtocol = create(*args, **kw)
            self._half_open.add(protocol)
            self.connections_created += 1
            return protocol

        self._create_protocol = create_protocol

    # --- the decision, per datagram -------------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        retry = self._retry_for(data) if isinstance(data, bytes) else None
        self._retry = retry  # type: ignore[assignment]
        created = self.connections_created
        super().datagram_received(data, addr)
        if retry is not None and self._is_tokenless and self.connections_created == created:
            self.retries_sent += 1  # answered with Retry: no state was created

    def _retry_for(self, data: bytes) -> QuicRetryTokenHandler | None:
        self._is_tokenless = False
        if len(data) < _SMALLEST_INITIAL:
            return None
        try:
            header = pull_quic_header(
                Buffer(data=data), host_cid_length=self._configuration.connection_id_length
            )
        except ValueError:
            return None
        if (
            header.packet_type != QuicPacketType.INITIAL
            or header.destination_cid in self._protocols
        ):
            return None
        if header.token:
            return self._tokens  # validate it, whatever the mode
        self._is_tokenless = True
        if self._mode == "always":
            return self._tokens
        if self._mode == "never":
            return None
        return self._tokens if self._pressure() else None

    def _pressure(self) -> bool:
        """More than ``threshold`` half-open connections (pruned only when it matters)."""
        if len(self._half_open) < self._threshold:
            return False
        for protocol in list(self._half_open):
            quic = protocol._quic
            if quic._handshake_complete or quic._state in END_STATES:
                self._half_open.discard(protocol)
        return len(self._half_open) >= self._threshold

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
            "retries_sent": self.retries_sent,
            "connections_created": self.connections_created,
            "half_open": len(self._half_open),
        }
