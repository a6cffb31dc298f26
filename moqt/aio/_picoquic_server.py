"""The listening side of :mod:`moqt.aio._picoquic`: one picoquic server and what it hosts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from .._log import library_logger
from ._connection import MoqtConnection
from ._picoquic_hooks import hooks as picoquic_hooks
from ._picoquic_native import NativeQuic

if TYPE_CHECKING:
    from ._picoquic import PicoquicProtocol
    from ._picoquic_wt import PicoquicWebTransportSession

__all__ = [
    "BUSY_CONNECTIONS",
    "BUSY_SEND_QUANTUM",
    "BusyPacing",
    "Pacing",
    "PicoquicServer",
    "RetryMode",
    "bbr_options",
]

RetryMode = Literal["auto", "always", "never"]

#: Connections from which a picoquic server's BBR sends in coarser bursts (:class:`BusyPacing`).
BUSY_CONNECTIONS: Final = 16
#: The send quantum of a busy server, in seconds of each connection's pacing rate.
BUSY_SEND_QUANTUM: Final = 0.01

logger = library_logger("moqt.aio")


def bbr_options(send_quantum: float) -> str:
    """picoquic's BBR option string for a send quantum of ``send_quantum`` seconds of its
    pacing rate (``Q`` and the ratio: 0.02 s is ``Q0.02``; 0: "", its own)."""
    return f"Q{send_quantum:.6f}".rstrip("0").rstrip(".") if send_quantum else ""


@dataclasses.dataclass(frozen=True, slots=True)
class Pacing:
    """BBR's send quantum of a server: ``quantum`` (0: picoquic's own, 1 ms) while it holds
    fewer than ``busy_connections`` connections (0: always), ``busy_quantum`` from then on."""

    quantum: float
    busy_connections: int
    busy_quantum: float


class BusyPacing:
    """A picoquic server's send quantum, following its load.

    picoquic's own quantum (1 ms of the pacing rate, at least two packets) sends a
    viewer's few Mbit/s a packet or two per wake-up of its thread, each in its own
    ``sendmsg``, and the viewers acknowledge as often. With a few connections that is
    cheap and the smoothest a shallow queue can get; with hundreds it is the node's CPU:
    a 1,000-viewer mesh of 250 kbit/s on the 2-core host delivered 44.7-73.0 % on it and
    100 % on 10 ms, and at 100 viewers of 2.5 Mbit/s 10 ms took picoquic's thread from
    0.27 cores to 0.15. A coarser quantum is burstier, though: on a 1.5 Mbit/s viewer link
    with a 50 ms queue, 10 ms overflowed it once in 14 runs where picoquic's own never did
    (bench/RESULTS.md, issue 15). Each connection on the fine quantum costs its share, so
    the default threshold is low (:data:`BUSY_CONNECTIONS`: with 64 a 200-viewer fan-out
    still tipped the host over, 78-92 % delivered; with 16, 98.8-100 %).

    So a server keeps the fine quantum while it is quiet, and once it holds
    ``busy_connections`` connections (half-open handshakes included), the connections
    created after that get ``busy_quantum``; they get the fine one again once it holds at
    most half as many. picoquic gives a connection its controller's options when it
    creates it, so each connection keeps the quantum it started with. :meth:`observe`
    runs on the event loop as each connection or WebTransport session arrives.
    """

    def __init__(self, native: NativeQuic, pacing: Pacing) -> None:
        self._native = native
        self._pacing = pacing
        self.busy = False

    @property
    def send_quantum(self) -> float:
        """What the next connection gets, in seconds (0: picoquic's own)."""
        return self._pacing.busy_quantum if self.busy else self._pacing.quantum

    def observe(self) -> None:
        held = self._native.connections
        threshold = self._pacing.busy_connections
        busy = held > threshold // 2 if self.busy else held >= threshold
        if busy == self.busy:
            return
        self.busy = busy
        self._native.set_congestion_control("bbr", bbr_options(self.send_quantum))
        logger.info(
            "picoquic_send_quantum",
            connections=held,
            busy=busy,
            send_quantum=self.send_quantum,
        )


class _Hosted(Protocol):
    """One MoQT session a picoquic server hosts (raw QUIC connection or WebTransport session)."""

    @property
    def moqt(self) -> MoqtConnection | None: ...

    def abort(self) -> None: ...


class PicoquicServer:
    """A listening picoquic MoQT endpoint; :meth:`close` stops it and its connections."""

    def __init__(
        self,
        server: Any,
        address: tuple[str, int],
        protocols: list[PicoquicProtocol],
        webtransport: list[PicoquicWebTransportSession] | None = None,
        *,
        native: NativeQuic | None = None,
        retry: RetryMode = "auto",
        transport: Any = None,
        pacing: BusyPacing | None = None,
    ):
        self._server = server
        self._address = address
        self._protocols = protocols
        self._webtransport = webtransport if webtransport is not None else []
        self._native = native
        self._retry = retry
        self._transport = transport
        self._pacing = pacing

    @property
    def can_reload_certificate(self) -> bool:
        """Whether :meth:`reload_certificate` works here (see ``_picoquic_hooks.py``)."""
        return self._native is not None and picoquic_hooks() is not None

    async def reload_certificate(self, certificate: Path, private_key: Path) -> None:
        """Serve ``certificate``/``private_key`` to the connections that come after
        (picoquic reads the files on its own thread); established ones keep theirs.
        ``RuntimeError`` where it cannot be done, ``ValueError`` when picoquic refused
        the files (the previous certificate stays served)."""
        native = picoquic_hooks()
        if self._native is None or native is None:
            raise RuntimeError("this picoquic build cannot reload a server's certificate")
        result = await native.refresh_certificate(
            self._native.pointer, self._transport, str(certificate), str(private_key)
        )
        if result != 0:
            raise ValueError(
                f"picoquic refused the certificate {certificate} / key {private_key} "
                f"(error {result:#x}); the previous one is still served"
            )

    def statistics(self) -> dict[str, int]:
        """Address validation at a glance (``clutchcall_pop_quic_*``): ``connections``
        picoquic holds state for (half-open handshakes included), ``unestablished``
        those of them hosting no MoQT session (yet), and the Retry policy:
        ``retry_always``, ``retry_threshold`` (past it picoquic answers new Initials
        with a stateless Retry instead of creating a connection). picoquic does not
        count the Retries it sends. ``busy``: 1 while new connections get the busy
        send quantum (:class:`BusyPacing`)."""
        sessions = len(self.connections)
        held = self._native.connections if self._native is not None else sessions
        return {
            "connections": held,
            "unestablished": max(0, held - sessions),
            "sessions": sessions,
            "retry_always": int(self._retry == "always"),
            "retry_threshold": self._native.retry_threshold if self._native is not None else 0,
            "busy": int(self._pacing is not None and self._pacing.busy),
        }

    @property
    def congestion_options(self) -> str:
        """The option string picoquic gives the next connection's controller ("" for its
        defaults; it changes as the server becomes busy and calm again: :class:`BusyPacing`)."""
        return self._native.congestion_options if self._native is not None else ""

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    @property
    def connections(self) -> list[MoqtConnection]:
        hosted: list[_Hosted] = [*self._protocols, *self._webtransport]
        return [h.moqt for h in hosted if h.moqt is not None and not h.moqt.is_closed]

    def close(self) -> None:
        hosted: list[_Hosted] = [*self._protocols, *self._webtransport]
        for host in hosted:
            host.abort()
        native = picoquic_hooks()
        if native is not None:  # their connections go with the server, reported or not
            for protocol in self._protocols:
                native.forget(protocol.cnx)
                native.take_remote_reason(protocol.cnx)
        self._protocols.clear()
        self._webtransport.clear()
        self._server.close()
