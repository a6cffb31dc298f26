"""``up`` and ``admin`` share one default database and keep their state (database,
certificate, uploads) in the XDG state directory, never in the working tree."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_up_watch_publish import _env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@contextlib.contextmanager
def up_without_db(work: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    info_file = work / "up.json"
    info_file.unlink(missing_ok=True)
    with (work / "up.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", "--http", "127.0.0.1:0",
             "--origin", "127.0.0.1:0", "--pop", "127.0.0.1:0", "--rtmp", "127.0.0.1:0",
             "--info-file", str(info_file)],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not info_file.exists():
                assert proc.poll() is None and time.monotonic() < deadline, (
                    work / "up.log"
                ).read_text()[-3000:]
                time.sleep(0.1)
            yield json.loads(info_file.read_text())
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 0, (work / "up.log").read_text()[-3000:]


def test_up_and_admin_share_the_state_directory(tmp_path: Path) -> None:
    state_home, work = tmp_path / "xdg-state", tmp_path / "work"
    work.mkdir()
    env = _env(XDG_STATE_HOME=str(state_home), HOME=str(tmp_path / "home"))
    state = state_home / "clutchcall"
    with up_without_db(work, env) as info:
        assert Path(info["cafile"]) == state / "certs" / "cert.pem"
        # admin, with no --db either, edits the database up serves.
        made = subprocess.run(
            [sys.executable, "-m", "cli.main", "admin", "create-api-key", info["org_id"],
             "--json"],
            cwd=work, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["api_key"]
        listed = httpx.get(
            f"{info['base_url']}/v1/live_inputs",
            headers={"Authorization": f"Bearer {key}"}, timeout=10,
        )  # fmt: skip
        assert listed.status_code == 200, listed.text
        first_cert = Path(info["cafile"]).read_bytes()
    assert (state / "clutchcall.sqlite3").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["up.json", "up.log"]
    # A restart keeps the database (the org) and the certificate clients already trust.
    with up_without_db(work, env) as again:
        assert again["org_id"] == info["org_id"]
        assert Path(again["cafile"]).read_bytes() == first_cert
    assert sorted(p.name for p in work.iterdir()) == ["up.json", "up.log"]
    assert not (tmp_path / "home").exists()  # XDG_STATE_HOME wins over ~/.local/state


def test_without_xdg_state_home_it_is_under_home(tmp_path: Path) -> None:
    env = _env(HOME=str(tmp_path))
    env.pop("XDG_STATE_HOME", None)
    made = subprocess.run(
        [sys.executable, "-m", "cli.main", "admin", "create-org", "Acme", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (tmp_path / ".local" / "state" / "clutchcall" / "clutchcall.sqlite3").is_file()
