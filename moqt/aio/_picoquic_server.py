"""The listening side of :mod:`moqt.aio._picoquic`: one picoquic server and what it hosts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ._connection import MoqtConnection
from ._picoquic_hooks import hooks as picoquic_hooks
from ._picoquic_native import NativeQuic

if TYPE_CHECKING:
    from ._picoquic import PicoquicProtocol
    from ._picoquic_wt import PicoquicWebTransportSession

__all__ = ["PicoquicServer", "RetryMode"]

RetryMode = Literal["auto", "always", "never"]


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
    ):
        self._server = server
        self._address = address
        self._protocols = protocols
        self._webtransport = webtransport if webtransport is not None else []
        self._native = native
        self._retry = retry
        self._transport = transport

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
        count the Retries it sends."""
        sessions = len(self.connections)
        held = self._native.connections if self._native is not None else sessions
        return {
            "connections": held,
            "unestablished": max(0, held - sessions),
            "sessions": sessions,
            "retry_always": int(self._retry == "always"),
            "retry_threshold": self._native.retry_threshold if self._native is not None else 0,
        }

    @property
    def congestion_options(self) -> str:
        """The option string picoquic's controller was given ("" for its defaults)."""
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
