"""Pins the public surface of the mesh modules owned by MESH (and origin.admission)."""

from __future__ import annotations

import importlib

import pytest

EXPORTS = {
    "mesh.topology": {
        "NODE_PREFIX", "ROUTE_PREFIX", "TOPOLOGY_CHANNEL", "HOPS_PARAM", "NoRoute", "NodeInfo",
        "NodeRole", "Route", "RouteLoop", "Topology", "TopologyError", "TopologyEvent",
        "TopologyStatistics", "Upstream", "format_hop_path", "hop_path_from", "is_relay_link_path", "parse_hop_path",
        "with_hop_path",
    },
    "mesh.auth": {
        "AUTH_FAILED", "DEFAULT_AUDIENCE", "AuthError", "AuthFailure", "PlaybackClaims",
        "TokenVerifier", "seconds_until_expiry", "token_from_auth_tokens", "token_from_path",
        "wait_until_expiry",
    },
    "mesh.jwks": {"JWKS_CHANNEL", "JWKS_KEY", "JwksProvider", "JwksUnavailable", "parse_jwks"},
    "mesh.revocation": {
        "MAX_PLAYBACK_TTL", "REVOCATIONS_CHANNEL", "REVOKED_PREFIX", "Revocation",
        "RevocationSet", "RevocationStatistics", "publish_revocation",
    },
    "mesh.guard": {"GuardStatistics", "PlaybackGuard"},
    "mesh.settings": {
        "NodeSettings", "OriginSettings", "PopSettings", "SettingsError",
        "add_settings_arguments", "load_settings", "parse_hostport", "settings_from_args",
    },
    "mesh.metrics": {"LATENCY_BUCKETS", "DropReason", "NodeMetrics", "OpsServer", "ReadyCheck"},
    "mesh.logging": {"bind_context", "configure_logging"},
    "origin.admission": {
        "STREAMKEYS_CHANNEL", "STREAMKEY_PREFIX", "Admission", "AdmissionStatistics",
        "AllowAllAuthorizer", "BusStreamKeyAuthorizer", "Refusal", "StreamKeyAuthorizer",
        "hash_stream_key", "rtmp_authorizer",
    },
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_exports_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == EXPORTS[module_name]
    for name in module.__all__:
        assert hasattr(module, name), name
