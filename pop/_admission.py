"""Viewer admission at the edge: find the playback token, verify it, watch it.

A viewer presents its playback JWT in one of three places (``issues show 3``):
the AUTHORIZATION TOKEN parameter of CLIENT_SETUP, the one of a SUBSCRIBE (or
FETCH / TRACK_STATUS), or ``?token=`` on the connection URL (the WebTransport
CONNECT path, or the PATH setup parameter over raw QUIC).  :class:`Gatekeeper`
verifies tokens with :class:`mesh.auth.TokenVerifier`, counts refusals by reason
and registers admitted tokens with :class:`mesh.guard.PlaybackGuard`, which
closes the session when the token is revoked or reaches ``exp``.

Every refusal of a viewer session closes it with the draft's UNAUTHORIZED code
and the reason phrase ``auth_failed`` (:data:`mesh.auth.AUTH_FAILED`).

Relay links (another POP using this one as its regional parent) identify
themselves with ``hops=`` on the connection path, whose last hop must be a POP
of the node registry, and prove it with a node credential signed with the
cluster key in their CLIENT_SETUP (:mod:`mesh.node_credential`); a session
without one is a viewer whatever its path says.  They are multiplexed, so
they are not closed when one viewer's token ends: each of their requests must
carry a valid token for its namespace and a refusal rejects only that request.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from mesh._topology_types import parse_hop_path
from mesh.auth import (
    AUTH_FAILED,
    AuthError,
    AuthFailure,
    PlaybackClaims,
    TokenVerifier,
    token_from_auth_tokens,
    token_from_path,
)
from mesh.guard import PlaybackGuard
from mesh.metrics import NodeMetrics
from mesh.node_credential import credential_node
from moqt.errors import SessionCloseCode
from moqt.events import SetupCompleted
from moqt.types import AuthToken, Namespace

from ._publishers import is_stream_key

__all__ = ["Gatekeeper", "SessionAuth", "hop_path_from", "namespace_text"]

_log = structlog.get_logger("pop.admission")

Closer = Callable[[int, str], None]


def namespace_text(namespace: Namespace | Sequence[bytes]) -> str:
    """The routing name of a MoQT namespace: its fields joined by ``/`` (``stream/<org>/<id>``)."""
    return "/".join(f.decode("utf-8", "replace") for f in namespace)


def hop_path_from(path: str | None) -> tuple[str, ...] | None:
    """The ``hops=`` list of a relay link's connection path, or None for a viewer."""
    if not path:
        return None
    query = urllib.parse.urlsplit(path).query
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("hops")
    if values is None:
        return None
    return parse_hop_path(values[-1])


@dataclass(slots=True, eq=False)
class SessionAuth:
    """What one downstream session has been admitted with."""

    name: str
    close: Closer
    relay_link: bool = False
    hops: tuple[str, ...] = ()
    session_token: str | None = None
    claims: dict[str, PlaybackClaims] = field(default_factory=dict)  # jti -> claims
    tokens: dict[str, str] = field(default_factory=dict)  # namespace -> a token granting it
    closed: bool = False


class Gatekeeper:
    """Verification, refusal accounting and guarding of playback tokens for one POP."""

    def __init__(
        self,
        verifier: TokenVerifier,
        guard: PlaybackGuard,
        metrics: NodeMetrics,
        *,
        is_pop: Callable[[str], bool] = lambda _node_id: False,
        cluster_key: str = "",
    ) -> None:
        self._cluster_key = cluster_key
        self._verifier = verifier
        self._guard = guard
        self._metrics = metrics
        self._is_pop = is_pop

    def open(self, name: str, close: Closer) -> SessionAuth:
        return SessionAuth(name, close)

    async def on_setup(
        self, auth: SessionAuth, setup: SetupCompleted, connect_path: str | None
    ) -> bool:
        """Admit (or refuse) the session from its setup; False means it was closed."""
        path = connect_path if connect_path is not None else setup.path
        try:
            hops = hop_path_from(path)
        except ValueError as exc:
            self.refuse(auth, AuthError(AuthFailure.MALFORMED, f"hop path: {exc}"))
            return False
        node = credential_node(self._cluster_key, setup.auth_tokens) if hops else None
        if node is not None and hops is not None:
            # A node credential names the node that signed in: it must be the last hop.
            if node != hops[-1] or not self._is_pop(node):
                # Only POPs of the cluster registry may open multiplexed relay links.
                self.refuse(auth, AuthError(AuthFailure.MALFORMED, f"unknown relay {hops!r}"))
                return False
            auth.relay_link = True
            auth.hops = hops
            return True
        # Without a node credential ``hops=`` proves nothing: this is a viewer.
        try:
            token = token_from_auth_tokens(setup.auth_tokens) or token_from_path(path)
        except AuthError as exc:
            self.refuse(auth, exc)
            return False
        if token is None or is_stream_key(token):
            # The token may come with each request; a stream key is a publisher's, which
            # the POP carries to an origin that checks it (pop._publishers).
            return True
        try:
            claims = await self._verifier.verify(token)
        except AuthError as exc:
            self.refuse(auth, exc)
            return False
        auth.session_token = token
        self._watch(auth, claims)
        return True

    async def authorize(
        self, auth: SessionAuth, namespace: Namespace, request_tokens: tuple[AuthToken, ...]
    ) -> str | None:
        """The token that grants ``namespace`` to this session's request, or None (refused).

        Without a token of its own, a request uses the token this session was last
        admitted with for the same namespace (e.g. a joining FETCH after its
        SUBSCRIBE), else the session's token; it is verified again either way.

        A refused viewer session is closed; a refused relay-link request is only
        reported (the caller rejects that request).
        """
        try:
            token = (
                token_from_auth_tokens(request_tokens)
                or auth.tokens.get(namespace_text(namespace))
                or auth.session_token
            )
            claims = await self._verifier.verify(token, namespace)
        except AuthError as exc:
            if auth.relay_link:
                self._count(exc)
                _log.info("request_refused", session=auth.name, reason=exc.reason.value)
            else:
                self.refuse(auth, exc)
            return None
        if auth.closed:
            return None
        assert token is not None
        auth.tokens[namespace_text(namespace)] = token
        if not auth.relay_link:
            self._watch(auth, claims)
        return token

    def release(self, auth: SessionAuth) -> None:
        """The session ended: stop watching its tokens."""
        auth.closed = True
        for jti in list(auth.claims):
            self._guard.release((auth.name, jti))
        auth.claims.clear()

    def _watch(self, auth: SessionAuth, claims: PlaybackClaims) -> None:
        if claims.jti in auth.claims:
            return
        auth.claims[claims.jti] = claims

        def end(reason: AuthFailure) -> None:
            self._count(AuthError(reason))
            if reason is AuthFailure.REVOKED:
                self._metrics.revoked_sessions.inc()
            self._close(auth, reason)

        self._guard.admit((auth.name, claims.jti), claims, end)

    def refuse(self, auth: SessionAuth, error: AuthError) -> None:
        self._count(error)
        self._close(auth, error.reason, error.detail)

    def _count(self, error: AuthError) -> None:
        self._metrics.auth_failures.labels(error.reason.value).inc()

    def _close(self, auth: SessionAuth, reason: AuthFailure, detail: str = "") -> None:
        if auth.closed:
            return
        _log.info("viewer_refused", session=auth.name, reason=reason.value, detail=detail[:200])
        self.release(auth)
        auth.close(SessionCloseCode.UNAUTHORIZED, AUTH_FAILED)
