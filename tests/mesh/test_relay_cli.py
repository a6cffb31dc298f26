"""``clutchcall relay`` as a real process: ready line, /healthz, /metrics, clean SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.interop.conftest import start_relay, stop_relay

pytestmark = pytest.mark.e2e


def get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read().decode()


def test_relay_command_serves_ops_and_stops_cleanly(tmp_path: Path) -> None:
    relay = start_relay(tmp_path, "--cache-bytes", "1000000", "--max-object-size", "65536")
    try:
        assert get(relay.http_port, "/healthz") == (200, "ok\n")
        assert get(relay.http_port, "/readyz") == (200, "ready\n")
        status, metrics = get(relay.http_port, "/metrics")
        assert status == 200
        assert "clutchcall_relay_sessions 0.0" in metrics
    finally:
        code = stop_relay(relay)
    assert code == 0
    records = [json.loads(line) for line in relay.log().splitlines() if line.startswith("{")]
    events = [r["event"] for r in records]
    assert "self_signed_certificate" in events
    assert events[-1] == "relay_stopped"
    assert all("timestamp" in r and "level" in r for r in records)


def test_relay_command_with_given_certificate(tmp_path: Path) -> None:
    from moqt.aio import write_self_signed

    cert, key = write_self_signed(tmp_path / "tls")
    relay = start_relay(tmp_path, "--cert", str(cert), "--key", str(key))
    try:
        assert get(relay.http_port, "/healthz")[0] == 200
        assert "self_signed_certificate" not in relay.log()
    finally:
        assert stop_relay(relay) == 0


BINDS = ["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0"]


@pytest.mark.parametrize(
    "args",
    [
        ["--quic", "nonsense", "--http", "127.0.0.1:0"],
        ["--quic", "127.0.0.1:0", "--http", "127.0.0.1:70000"],
        ["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--cert", "/x.pem"],
        ["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--max-object-size", "0"],
        [*BINDS, "--quic-send-quantum", "1"],
        [*BINDS, "--quic-send-quantum", "fast"],
        [*BINDS, "--quic-send-quantum", "0.02", "--quic-congestion-control", "cubic"],
        [*BINDS, "--quic-stack", "aioquic", "--quic-congestion-control", "bbr1"],
        [*BINDS, "--quic-busy-connections", "-1"],
        [*BINDS, "--quic-busy-send-quantum", "0.5"],
        [*BINDS, "--quic-busy-connections", "0", "--quic-congestion-control", "cubic"],
        [*BINDS, "--quic-stack", "aioquic", "--quic-busy-send-quantum", "0.02"],
    ],
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.relay", *args],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr


def test_picoquic_tuning_on_aioquic_says_what_to_do() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.relay", *BINDS, "--quic-stack", "aioquic",
         "--quic-send-quantum", "0.02"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--quic-send-quantum: picoquic's, drop them or use --quic-stack picoquic" in proc.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    relay = start_relay(tmp_path)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cli.relay", "--quic", "127.0.0.1:0", "--http",
             f"127.0.0.1:{relay.http_port}"],
            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 1
        assert "relay_failed" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        assert stop_relay(relay) == 0
