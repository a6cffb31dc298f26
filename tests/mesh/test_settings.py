"""Settings layers (defaults < TOML < environment < flags) and their refusals."""

from __future__ import annotations

import argparse
import dataclasses
import socket
from pathlib import Path

import pytest

from mesh.settings import (
    NodeSettings,
    OriginSettings,
    PopSettings,
    SettingsError,
    add_settings_arguments,
    load_settings,
    parse_hostport,
    settings_from_args,
)

CONFIG = """
region = "eu-west"
redis = "redis://10.0.0.5:6379/0"
heartbeat_interval = 2

[pop]
jwks = "https://control.example/.well-known/jwks.json"
parent_regions = ["eu-central"]
workers = 2
log_json = false

[origin]
publish_auth = "none"

[control]
database = "postgresql://whatever"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "clutchcall.toml"
    path.write_text(CONFIG)
    return path


def test_defaults() -> None:
    pop = load_settings(PopSettings, "pop", env={})
    assert pop.node_id == f"pop-{socket.gethostname()}"
    assert (pop.region, pop.quic, pop.redis, pop.jwks, pop.workers) == (
        "default",
        "0.0.0.0:4433",
        None,
        "bus",
        1,
    )
    assert pop.advertised_quic == "0.0.0.0:4433"
    with pytest.raises(dataclasses.FrozenInstanceError):
        pop.region = "x"  # type: ignore[misc]


def test_layers_and_precedence(config: Path) -> None:
    env = {
        "CLUTCHCALL_REGION": "ignored-by-role-specific",
        "CLUTCHCALL_POP_REGION": "eu-north",
        "CLUTCHCALL_WORKERS": "4",
        "CLUTCHCALL_DATABASE": "postgres://not-ours",  # another role's: left alone
        "CLUTCHCALL_POP_LINGER": "2.5",
        "CLUTCHCALL_POP_LOG_JSON": "yes",
    }
    pop = load_settings(
        PopSettings, "pop", file=config, env=env, overrides={"workers": "3", "quic": None}
    )
    assert pop.region == "eu-north"  # env (role-specific) over file
    assert pop.workers == 3  # flag over env over file
    assert pop.linger == 2.5 and pop.log_json is True
    assert pop.redis == "redis://10.0.0.5:6379/0" and pop.heartbeat_interval == 2.0
    assert pop.parent_regions == ("eu-central",)
    assert pop.jwks.startswith("https://")
    origin = load_settings(OriginSettings, "origin", file=config, env={})
    assert origin.publish_auth == "none" and origin.region == "eu-west"
    env_tuple = load_settings(PopSettings, "pop", env={"CLUTCHCALL_PARENT_REGIONS": "a, b,"})
    assert env_tuple.parent_regions == ("a", "b")
    optional = load_settings(PopSettings, "pop", env={"CLUTCHCALL_REDIS": ""})
    assert optional.redis is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('regoin = "eu"', "unknown setting 'regoin'"),
        ('[pop]\njwks_url = "x"', "unknown setting 'jwks_url'"),
        ('publish_auth = "none"', "unknown setting 'publish_auth'"),  # origin key at top level
        ("[popp]\nx = 1", r"unknown table \[popp\]"),
        ('workers = "two"', "workers: must be an integer"),
        ("workers = true", "workers: must be an integer"),
        ('log_json = "yes"', "log_json: must be true or false"),
        ('log_level = "loud"', "log_level: must be one of"),
        ('parent_regions = "eu"', "parent_regions: must be a list of strings"),
        ("[pop.extra]\nx = 1", "nested tables"),
        ("region = ", "invalid TOML"),
        ('quic = "no-port"', "expected HOST:PORT"),
        ('quic = "::1:443"', "need brackets"),
        ('redis = "http://x"', "redis must be a redis:// URL"),
        ("heartbeat_interval = 5", "node_ttl must be longer"),
        ("workers = 0", "workers must be between"),
    ],
)
def test_file_refusals(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError, match=message):
        load_settings(PopSettings, "pop", file=path, env={})


def test_env_and_flag_refusals(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="environment: unknown setting CLUTCHCALL_POP_JWSK"):
        load_settings(PopSettings, "pop", env={"CLUTCHCALL_POP_JWSK": "x"})
    with pytest.raises(SettingsError, match="environment: workers: must be an integer"):
        load_settings(PopSettings, "pop", env={"CLUTCHCALL_WORKERS": "many"})
    with pytest.raises(SettingsError, match="environment: log_json: must be true or false"):
        load_settings(PopSettings, "pop", env={"CLUTCHCALL_LOG_JSON": "maybe"})
    with pytest.raises(SettingsError, match="command line: unknown setting 'jwks'"):
        load_settings(OriginSettings, "origin", env={}, overrides={"jwks": "x"})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(PopSettings, "pop", file=tmp_path / "missing.toml", env={})
    with pytest.raises(TypeError):
        load_settings(dict, "pop", env={})


def test_cli_arguments(config: Path) -> None:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, PopSettings)
    args = parser.parse_args(
        [
            "--config",
            str(config),
            "--node-id",
            "pop-a",
            "--quic",
            "[::1]:4443",
            "--no-log-json",
            "--parent-regions",
            "us,eu",
            "--log-level",
            "debug",
        ]
    )
    pop = settings_from_args(PopSettings, "pop", args, env={})
    assert (pop.node_id, pop.quic, pop.log_json, pop.parent_regions, pop.log_level) == (
        "pop-a",
        "[::1]:4443",
        False,
        ("us", "eu"),
        "debug",
    )
    assert pop.workers == 2  # from the file
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "loud"])


def test_parse_hostport() -> None:
    assert parse_hostport("0.0.0.0:4433") == ("0.0.0.0", 4433)
    assert parse_hostport("[::1]:0") == ("::1", 0)
    assert parse_hostport("pop.example:443") == ("pop.example", 443)
    for bad in ("x", ":80", "host:", "host:99999", "[::1:80", "::1:80", "h:-1"):
        with pytest.raises(ValueError):
            parse_hostport(bad)


def test_node_settings_is_a_base_for_other_roles() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class RelayLike(NodeSettings):
        cache_groups: int = 3

    relay = load_settings(RelayLike, "relay", env={"CLUTCHCALL_RELAY_CACHE_GROUPS": "5"})
    assert relay.cache_groups == 5 and relay.node_id.startswith("relay-")


def test_quic_stack_setting() -> None:
    assert load_settings(PopSettings, "pop", env={}).quic_stack == "picoquic"
    assert load_settings(OriginSettings, "origin", env={}).quic_stack == "picoquic"
    origin = load_settings(OriginSettings, "origin", env={"CLUTCHCALL_QUIC_STACK": "aioquic"})
    assert origin.quic_stack == "aioquic"
    with pytest.raises(SettingsError, match="quic_stack"):
        load_settings(PopSettings, "pop", env={"CLUTCHCALL_POP_QUIC_STACK": "quiche"})
    # Workers share the UDP port (SO_REUSEPORT) on either stack.
    pop = load_settings(
        PopSettings,
        "pop",
        env={"CLUTCHCALL_POP_QUIC_STACK": "picoquic", "CLUTCHCALL_POP_WORKERS": "2"},
    )
    assert pop.workers == 2


def test_the_send_quantum_comes_from_the_environment_and_is_bounded() -> None:
    pop = settings_from_args(PopSettings, "pop", [], env={"CLUTCHCALL_QUIC_SEND_QUANTUM": "0.02"})
    assert pop.quic_send_quantum == 0.02
    assert PopSettings().quic_send_quantum == 0.0  # picoquic's own unless asked
    with pytest.raises(ValueError, match=r"quic_send_quantum is 0 to 0\.1 seconds"):
        PopSettings(quic_send_quantum=0.5)
    with pytest.raises(ValueError, match="set quic_congestion_control = bbr"):
        PopSettings(quic_send_quantum=0.02, quic_congestion_control="cubic")


def test_a_busy_nodes_send_quantum_has_bounds_and_is_bbrs() -> None:
    pop = settings_from_args(
        PopSettings,
        "pop",
        argparse.Namespace(quic_busy_connections=200),
        env={"CLUTCHCALL_QUIC_BUSY_SEND_QUANTUM": "0.02"},
    )
    assert (pop.quic_busy_connections, pop.quic_busy_send_quantum) == (200, 0.02)
    assert (PopSettings().quic_busy_connections, PopSettings().quic_busy_send_quantum) == (16, 0.01)
    with pytest.raises(ValueError, match=r"quic_busy_send_quantum is 0 to 0\.1 seconds"):
        PopSettings(quic_busy_send_quantum=0.2)
    with pytest.raises(ValueError, match="quic_busy_connections must be >= 0"):
        PopSettings(quic_busy_connections=-1)
    with pytest.raises(ValueError, match="quic_busy_connections: picoquic's BBR's"):
        PopSettings(quic_busy_connections=0, quic_congestion_control="cubic")
    assert PopSettings(quic_congestion_control="cubic").quic_busy_connections == 16  # not asked


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLUTCHCALL_QUIC_SEND_QUANTUM": "0.02"}, "quic_send_quantum"),
        ({"CLUTCHCALL_QUIC_CONGESTION_CONTROL": "cubic"}, "quic_congestion_control"),
        ({"CLUTCHCALL_QUIC_STREAM_BUFFER": "1048576"}, "quic_stream_buffer"),
        ({"CLUTCHCALL_QUIC_BUSY_CONNECTIONS": "128"}, "quic_busy_connections"),
        ({"CLUTCHCALL_QUIC_BUSY_SEND_QUANTUM": "0.02"}, "quic_busy_send_quantum"),
    ],
)
def test_a_picoquic_setting_on_aioquic_is_refused_not_ignored(
    env: dict[str, str], named: str
) -> None:
    """aioquic has no BBR, no controller choice and no stream ring: a node told to tune
    them on aioquic would run untuned and say nothing, so it does not start."""
    with pytest.raises(SettingsError, match=rf"pop settings: {named}: picoquic's, not aioquic's"):
        settings_from_args(PopSettings, "pop", [], env={"CLUTCHCALL_QUIC_STACK": "aioquic", **env})
    assert getattr(settings_from_args(PopSettings, "pop", [], env=env), named)  # picoquic: kept
    plain = settings_from_args(PopSettings, "pop", [], env={"CLUTCHCALL_QUIC_STACK": "aioquic"})
    assert plain.quic_stack == "aioquic"  # their defaults are not a request
