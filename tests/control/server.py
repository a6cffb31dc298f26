"""Run the control plane as a real process (our own CLI code) on a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

# Runs cli/control.py and cli/admin.py through their register() functions, as cli/main.py does.
_RUNNER = (
    "import argparse, sys\n"
    "from cli import admin, control\n"
    "p = argparse.ArgumentParser(prog='clutchcall')\n"
    "s = p.add_subparsers()\n"
    "control.register(s); admin.register(s)\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clutchcall(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``clutchcall <args>`` (control/admin subcommands) and capture its output."""
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def create_org(db_url: str, name: str = "acme") -> dict[str, Any]:
    out = clutchcall("admin", "create-org", name, "--json", "--db", db_url)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


class ControlServer:
    """``clutchcall control --http 127.0.0.1:<free port>`` as a subprocess."""

    def __init__(self, db_url: str, *extra: str, redis_url: str | None = None) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = ["control", "--http", f"127.0.0.1:{self.port}", "--db", db_url, *extra]
        if redis_url:
            args += ["--redis", redis_url]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # A file, not a pipe: a chatty server must never block on a full pipe.
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60  # its imports alone took 9 s at load 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"control plane exited early: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("control plane did not become healthy in 60 s")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        self.stop()
        self._log.close()
