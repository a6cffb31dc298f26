"""Interop fixtures: our relay as a real process, aiomoqt's tools as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@dataclass
class RelayProcess:
    proc: subprocess.Popen[str]
    quic_port: int
    http_port: int
    log_path: Path

    def url(self, transport: str, path: str = "") -> str:
        scheme = "https" if transport in ("wt", "pwt") else "moqt"
        return f"{scheme}://127.0.0.1:{self.quic_port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def _wait_ready(log_path: Path, proc: subprocess.Popen[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"relay exited with {proc.returncode}:\n{log_path.read_text()}")
        for line in log_path.read_text(errors="replace").splitlines():
            if '"relay_ready"' in line:
                record: dict[str, str] = json.loads(line)
                return record
        time.sleep(0.05)
    raise RuntimeError(f"relay not ready after {timeout}s:\n{log_path.read_text()}")


def start_relay(tmp_path: Path, *extra: str) -> RelayProcess:
    log_path = tmp_path / "relay.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "cli.relay", "--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", *extra],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    try:
        ready = _wait_ready(log_path, proc, 20.0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    quic_port = int(ready["quic"].rsplit(":", 1)[1])
    http_port = int(ready["http"].rsplit(":", 1)[1])
    return RelayProcess(proc, quic_port, http_port, log_path)


def stop_relay(relay: RelayProcess) -> int:
    if relay.proc.poll() is None:
        relay.proc.send_signal(signal.SIGTERM)
        try:
            relay.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relay.proc.kill()
            relay.proc.wait()
    return relay.proc.returncode


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    proc = start_relay(tmp_path)
    try:
        yield proc
    finally:
        code = stop_relay(proc)
        assert code == 0, f"relay exited with {code}:\n{proc.log()[-4000:]}"
        assert "Traceback" not in proc.log(), proc.log()[-4000:]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_tool(args: list[str], timeout: float, *, env: dict[str, str] | None = None) -> Finished:
    """Run an aiomoqt tool to completion; a hang is killed at ``timeout`` and fails the test."""
    proc = subprocess.Popen(
        [PYTHON, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{args[:3]} did not finish in {timeout}s\nstdout:\n{out}\nstderr:\n{err}")
    return Finished(proc.returncode, out, err)


class Background:
    """A tool running next to the test, killed (group) when the test ends."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )

    def finish(self, timeout: float) -> Finished:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate()
        return Finished(self.proc.returncode, out, err)

    def stop(self) -> Finished:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.finish(10)
