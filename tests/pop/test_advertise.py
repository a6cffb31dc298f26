"""The address a POP bound to a wildcard registers, and a clear CLI error when there is none.

Names under ``.invalid`` never resolve (RFC 6761), so the resolver failures here are real
ones, not fakes. The CLI tests run ``clutchcall pop`` in a UTS namespace whose host name
does not resolve, the situation in which it used to die with a resolver traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesh.advertise import format_hostport
from pop import AdvertiseError, advertised_host

ROOT = Path(__file__).resolve().parents[2]
NO_NAME = "clutchcall-no-such-host.invalid"


def test_a_concrete_bind_address_is_advertised_as_is() -> None:
    assert advertised_host("10.1.2.3", "redis://redis.invalid:6379") == "10.1.2.3"
    assert format_hostport("::1", 4443) == "[::1]:4443"
    assert format_hostport("10.1.2.3", 4443) == "10.1.2.3:4443"


def test_wildcard_uses_the_interface_that_routes_to_redis() -> None:
    # The host name does not resolve; the route to Redis still names an address.
    found = advertised_host("0.0.0.0", "redis://127.0.0.1:6390/0", hostname=lambda: NO_NAME)
    assert found == "127.0.0.1"


def test_wildcard_ipv6_routes_to_an_ipv6_redis() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        found = advertised_host("::", "redis://[::1]:6390", hostname=lambda: NO_NAME)
    except AdvertiseError:
        pytest.skip("no IPv6 loopback route here")
    assert found == "::1"


def test_without_a_network_redis_the_cluster_is_this_machine() -> None:
    assert advertised_host("0.0.0.0", None, hostname=lambda: NO_NAME) == "127.0.0.1"
    assert advertised_host("0.0.0.0", "unix:///run/redis.sock", hostname=lambda: NO_NAME) == (
        "127.0.0.1"
    )


def test_no_route_and_no_host_name_asks_for_advertise() -> None:
    with pytest.raises(AdvertiseError, match="pass --advertise HOST:PORT") as caught:
        advertised_host("0.0.0.0", "redis://redis.invalid:6379", hostname=lambda: NO_NAME)
    message = str(caught.value)
    assert "redis.invalid" in message and NO_NAME in message


def test_a_host_name_that_resolves_to_loopback_only_is_not_advertised() -> None:
    # "localhost" resolves, but only to loopback: no other machine could dial it.
    with pytest.raises(AdvertiseError):
        advertised_host("0.0.0.0", "redis://redis.invalid:6379", hostname=lambda: "localhost")


# --- the CLI, with a host name that does not resolve --------------------------------------

_UNSHARE = shutil.which("unshare")


def _can_unshare() -> bool:
    if _UNSHARE is None or os.geteuid() != 0:
        return False
    probe = subprocess.run([_UNSHARE, "--uts", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare --uts")


def _pop_command(tmp_path: Path, redis: str) -> list[str]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    pop = [
        sys.executable, "-m", "cli.pop", "--quic", "0.0.0.0:0", "--http", "127.0.0.1:0",
        "--redis", redis, "--region", "eu", "--node-id", "pop-adv", "--jwks", str(jwks),
    ]  # fmt: skip
    script = f'hostname {NO_NAME.split(".")[0]} && exec "$@"'
    assert _UNSHARE is not None
    return [_UNSHARE, "--uts", "sh", "-c", script, "sh", *pop]


@needs_unshare
def test_cli_refuses_with_a_clear_error_when_no_address_can_be_found(tmp_path: Path) -> None:
    result = subprocess.run(
        _pop_command(tmp_path, "redis://redis.invalid:6379/0"),
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "pass --advertise HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


@needs_unshare
def test_cli_starts_and_advertises_the_route_to_redis(tmp_path: Path, redis_url: str) -> None:
    process = subprocess.Popen(
        _pop_command(tmp_path, redis_url),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    listening: dict[str, object] | None = None
    lines: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and listening is None:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if '"pop_listening"' in line:
                listening = json.loads(line)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert listening is not None, "".join(lines)
    advertised = str(listening["advertise"])
    assert advertised.startswith("127.0.0.1:") and not advertised.endswith(":0"), advertised
    assert not any("Traceback" in line for line in lines)
