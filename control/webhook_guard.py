"""The webhook SSRF guard: deliveries go to public addresses only.

An org's webhook URL is a request the control plane makes on the org's behalf, from
inside the cluster. Without a guard, ``http://169.254.169.254/...`` (cloud metadata),
``http://127.0.0.1:6379/`` or ``http://10.0.0.5/admin`` would make it reach what only
the cluster should. So a target must resolve to globally routable addresses only:
private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback (127/8, ::1), link-local
(169.254/16 with the metadata services, fe80::/10), shared (100.64/10), unspecified
(0.0.0.0/8, ::), multicast and reserved addresses are refused, IPv4-mapped IPv6
addresses by the IPv4 address they map.

Checked twice: when the endpoint is created (a name that resolves to a refused
address, or such an address literally, is a 422 problem), and at every delivery,
where :class:`GuardedTransport` resolves the name, checks every address and connects
to a checked address itself, so a name that resolves differently by then (DNS
rebinding) cannot slip through. TLS still verifies the certificate for the name (SNI
and the Host header are unchanged). Deliveries connect directly: no HTTP(S)_PROXY
from the environment, no redirects.

``webhook_allow_private`` (off by default) lets private targets through, for local
development: ``clutchcall up`` sets it, so a receiver on localhost gets the demo's
events.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Final

import httpcore
import httpx

__all__ = ["ForbiddenTarget", "GuardedTransport", "forbidden_reason", "resolve_target"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NETWORKS: Final[tuple[tuple[str, str], ...]] = (
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("fc00::/7", "a private (unique local) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("::1/128", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (cloud metadata lives there)"),
    ("fe80::/10", "a link-local address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("0.0.0.0/8", "an unspecified address"),
    ("::/128", "an unspecified address"),
)
_REFUSED: Final = tuple((ipaddress.ip_network(net), why) for net, why in _NETWORKS)


class ForbiddenTarget(Exception):
    """The target resolves to an address deliveries may not reach."""


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a delivery may not go to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, why in _REFUSED:
        if address.version == network.version and address in network:
            return why
    if address.is_multicast:
        return "a multicast address"
    if not address.is_global:
        return "not a globally routable address"
    return None


async def resolve_target(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses of ``host`` (a name or an address literal), each checked.

    Raises :class:`ForbiddenTarget` if any of them is refused (unless
    ``allow_private``), :class:`OSError` (``socket.gaierror``) if it does not resolve."""
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(literal, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise socket.gaierror(f"{host} has no address")
    if not allow_private:
        for text in addresses:
            why = forbidden_reason(ipaddress.ip_address(text.split("%", 1)[0]))
            if why is not None:
                shown = host if text == literal else f"{host} resolves to {text}, which"
                raise ForbiddenTarget(
                    f"{shown} is {why}; webhooks are delivered to public addresses only "
                    "(the control plane's webhook_allow_private setting allows private "
                    "targets for local development)"
                )
    return addresses


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses :func:`resolve_target` checked, never to a name."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_target(host, port, allow_private=self._allow_private)
        except ForbiddenTarget as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not delivered to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on :class:`_GuardedBackend`."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # The pool httpx built, rebuilt with the guarded network backend (httpx has no
        # parameter for it); request/response mapping stays httpx's own.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_GuardedBackend(allow_private=allow_private),
        )
