"""CLI errors say what to do: the busy address, the certificate to trust, the relay that
does not answer, and ``watch`` fails when nothing played."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clutchcall.streams import Streams
from tests.cli.test_up_watch_publish import _env, running_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _run(*args: str, timeout: float = 60, **env: str) -> tuple[int, str, float]:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=_env(**env),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return out.returncode, out.stdout + out.stderr, time.monotonic() - started


@pytest.fixture
def busy_tcp() -> Iterator[str]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield f"127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture
def busy_udp() -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


def test_a_busy_port_is_named_with_its_flag(busy_tcp: str, busy_udp: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    code, out, _ = _run("control", "--http", busy_tcp, "--db", db)
    assert code == 1, out
    assert f"{busy_tcp} (TCP, control plane HTTP API) is already in use" in out, out
    assert "--http HOST:PORT" in out and "Errno" not in out, out

    code, out, _ = _run("up", "--http", "127.0.0.1:0", "--origin", "127.0.0.1:0",
                        "--pop", busy_udp, "--rtmp", "127.0.0.1:0", "--db", db)  # fmt: skip
    assert code == 1, out
    assert f"{busy_udp} (UDP, POP MoQT) is already in use" in out and "--pop" in out, out
    assert "Errno" not in out, out

    code, out, _ = _run("origin", "--quic", "127.0.0.1:0", "--http", busy_tcp, "--rtmp", "",
                        "--publish-auth", "none", "--no-log-json")  # fmt: skip
    assert code == 1, out
    assert f"{busy_tcp} (TCP, /metrics) is already in use" in out and "--http" in out, out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with running_up(tmp_path_factory.mktemp("up")) as info:
        with Streams(base_url=info["base_url"], api_key=info["api_key"],
                     org_id=info["org_id"]) as streams:  # fmt: skip
            inp, _key = streams.live_inputs.create(name="errors", ingest="fmp4")
            info["playback_url"] = inp.signed_playback_url(ttl_seconds=600).url
        yield info


def test_an_untrusted_certificate_says_to_set_the_cafile(stack: dict[str, str]) -> None:
    code, out, took = _run("watch", stack["playback_url"], "--seconds", "20")
    assert code == 1, out
    assert took < 15, took  # at once: retrying cannot make the certificate trusted
    assert "does not trust" in out and "CLUTCHCALL_CAFILE=" in out, out
    assert "Error: 298" not in out, out


def test_watch_fails_when_nothing_played_within_its_seconds(stack: dict[str, str]) -> None:
    code, out, _ = _run("watch", stack["playback_url"], "--seconds", "3",
                        CLUTCHCALL_CAFILE=stack["cafile"])  # fmt: skip
    assert code == 6, out
    assert "did not play" in out, out


def test_an_unreachable_relay_fails_in_seconds_naming_it() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a port nobody serves
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    url = f"https://{address}/stream/org_x/lv_x?token=x"
    code, out, took = _run("watch", url, "--connect-timeout", "2", "--insecure")
    assert code == 5, out
    assert f"the relay at {address} did not answer within 2 s" in out, out
    assert took < 15, took
    assert "Future exception was never retrieved" not in out, out
