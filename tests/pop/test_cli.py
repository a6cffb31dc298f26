"""``clutchcall pop`` settings: flags, environment (as the deploy manifests set it), TOML, workers."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cli.pop import register, worker_settings
from mesh.settings import PopSettings, SettingsError, settings_from_args

ROOT = Path(__file__).resolve().parents[2]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clutchcall")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["pop", *argv])


def test_flags_env_and_toml_layers(tmp_path: Path) -> None:
    config = tmp_path / "pop.toml"
    config.write_text(
        'region = "from-file"\n[pop]\nlinger = 4.5\nworkers = 3\n[origin]\nrtmp = ""\n'
    )
    args = parse(
        ["--config", str(config), "--quic", "127.0.0.1:4443", "--http", "127.0.0.1:9100",
         "--node-id", "pop-1", "--jwks", "/keys.json", "--advertise", "pop.example:4443",
         "--linger", "7"]
    )  # fmt: skip
    env = {"CLUTCHCALL_REGION": "eu-west", "CLUTCHCALL_REDIS": "redis://redis:6379/0"}
    settings = settings_from_args(PopSettings, "pop", args, env=env)
    assert settings.region == "eu-west"  # environment beats the file
    assert settings.redis == "redis://redis:6379/0"
    assert settings.linger == 7.0  # flag beats the file
    assert settings.workers == 3  # from [pop]
    assert settings.advertised_quic == "pop.example:4443"
    assert settings.jwks == "/keys.json"


def test_unknown_role_variable_is_an_error() -> None:
    args = parse(["--jwks", "/k.json"])
    with pytest.raises(SettingsError, match="CLUTCHCALL_POP_LINGERR"):
        settings_from_args(PopSettings, "pop", args, env={"CLUTCHCALL_POP_LINGERR": "1"})


def test_worker_settings_share_quic_port_and_split_http() -> None:
    base = PopSettings(node_id="pop-1", quic="0.0.0.0:0", http="127.0.0.1:9100", workers=2)
    first, second = (worker_settings(base, i, 4443) for i in range(2))
    assert (first.quic, second.quic) == ("0.0.0.0:4443", "0.0.0.0:4443")
    assert (first.http, second.http) == ("127.0.0.1:9100", "127.0.0.1:9101")
    assert (first.node_id, second.node_id) == ("pop-1-w0", "pop-1-w1")
    assert first.workers == second.workers == 1
    free = worker_settings(PopSettings(http="127.0.0.1:0"), 1, 4443)
    assert free.http == "127.0.0.1:0"


def test_bad_settings_exit_2_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.pop", "--jwks", "/k.json", "--workers", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "workers must be between 1 and 256" in result.stderr
