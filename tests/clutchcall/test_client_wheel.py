"""The SDK as its own distribution: the ``clutchcall`` wheel, alone in a fresh venv.

The wheel is built from ``sdk/python`` (``pip wheel --no-deps``) and installed with its
dependencies (from the package index pip is configured with) into a new venv that has
nothing of the repository. There, no server dependency is installed, the server's
packages do not import, ``import clutchcall.streams`` leaves aiopquic (the ``picoquic``
extra) unloaded, and the seed's Recipe 4, as printed but for ``base_url``, records a
live broadcast of a real stack (control plane, origin and POP as processes: the fixture
of tests/e2e/test_seed_recipe.py) into a file that plays.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from clutchcall.streams import AsyncPublisher, AsyncStreams
from tests.clutchcall.dataplane import decode
from tests.e2e.test_seed_recipe import Stack, _media_seconds, _provision, recipe_4
from tests.e2e.test_seed_recipe import stack as stack  # the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "python"
RUN_SECONDS = 6.0

SERVER_DISTRIBUTIONS = {
    "fastapi",
    "uvicorn",
    "psycopg",
    "psycopg-binary",
    "redis",
    "prometheus-client",
    "rich",
    "fastapi-offline",
    "platformdirs",
    "clutchcall-streams",
    "aiopquic",  # the optional `picoquic` extra
}

# What the fresh venv says about itself, as JSON.
PROBE = """
import importlib, importlib.metadata as md, json, sys
import clutchcall.streams
report = {
    "clutchcall_file": clutchcall.streams.__file__,
    "aiopquic_loaded": any(m.split(".")[0] == "aiopquic" for m in sys.modules),
    "distributions": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "version": md.version("clutchcall"),
    "server_packages": {},
}
for name in ("mesh", "control", "origin", "pop", "vod", "cli"):
    try:
        importlib.import_module(name)
        report["server_packages"][name] = "imported"
    except ModuleNotFoundError:
        report["server_packages"][name] = "missing"
try:
    clutchcall.streams.Streams().close()
    import moqt.aio
    moqt.aio.serve_picoquic
    report["picoquic"] = "loaded"
except ModuleNotFoundError as exc:
    report["picoquic"] = str(exc)
print(json.dumps(report))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """No repository on the path and no settings of the test run."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLUTCHCALL_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(PYTHONUNBUFFERED="1", PYTHONNOUSERSITE="1", **extra)
    return env


def _run(args: list[str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


# Build the wheel, make the venv (no pip of its own: the test run's pip installs into it)
# and install the wheel with what it depends on, from pip's configured index.
INSTALL = """
set -eu
"$PY" -m pip wheel --no-deps -q -w "$WORK/wheels" "$SDK"
"$PY" -m venv --without-pip "$WORK/venv"
"$PY" -m pip --python "$WORK/venv/bin/python" install -q --no-compile "$WORK"/wheels/clutchcall-*.whl
"""


class ClientVenv:
    """The install runs in the background while the stack starts."""

    def __init__(self, work: Path) -> None:
        self.python = work / "venv" / "bin" / "python"
        self.log = work / "install.log"
        env = _clean_env(WORK=str(work), SDK=str(SDK), PY=sys.executable)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", INSTALL], cwd=work, env=env, stdout=log, stderr=log
            )

    def ready(self, timeout: float = 180) -> Path:
        code = self.process.wait(timeout)
        assert code == 0, self.log.read_text()[-3000:]
        return self.python


@pytest.fixture
def client_venv(tmp_path: Path) -> Iterator[ClientVenv]:
    work = tmp_path / "client"
    work.mkdir()
    venv = ClientVenv(work)
    try:
        yield venv
    finally:
        if venv.process.poll() is None:
            venv.process.kill()
            venv.process.wait()


def test_both_distributions_have_the_same_version_and_no_shared_package() -> None:
    server_toml = tomllib.loads((ROOT / "pyproject.toml").read_text())
    client_toml = tomllib.loads((SDK / "pyproject.toml").read_text())
    server, client = server_toml["project"], client_toml["project"]
    server_packages = server_toml["tool"]["setuptools"]["packages"]["find"]["include"]
    client_packages = client_toml["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*").split(".")[0] for p in server_packages}.isdisjoint(
        {p.split(".")[0] for p in client_packages}
    )
    assert f"clutchcall[picoquic,ffmpeg]=={client['version']}" in server["dependencies"]
    assert client["version"] == server["version"]
    assert not any(d.startswith(("aiopquic", "imageio")) for d in client["dependencies"])


def test_client_wheel_alone_runs_recipe_4(
    stack: Stack, client_venv: ClientVenv, redis_url: str, tmp_path: Path
) -> None:
    # (client_venv after stack: the install runs while the org is provisioned and the
    # broadcast starts, not while the nodes start, which have readiness deadlines.)
    api_key = _provision(stack, redis_url)
    code = recipe_4().replace("https://app.clutchcall.dev", stack.control.base_url)
    asyncio.run(_publish_and_capture(client_venv, code, api_key, stack, tmp_path))


def _check_venv(python: Path, tmp_path: Path) -> None:
    """Only the SDK and what it depends on; no server package; aiopquic not loaded."""
    report = json.loads(_run([str(python), "-c", PROBE], tmp_path))
    assert report["clutchcall_file"].startswith(str(python.parent.parent))
    assert report["version"] == "0.1.0"
    installed = set(report["distributions"])
    assert "clutchcall" in installed
    assert installed.isdisjoint(SERVER_DISTRIBUTIONS), installed & SERVER_DISTRIBUTIONS
    assert set(report["server_packages"].values()) == {"missing"}, report["server_packages"]
    assert not report["aiopquic_loaded"]
    assert "pip install 'clutchcall[picoquic]'" in report["picoquic"]


async def _publish_and_capture(
    venv: ClientVenv, code: str, api_key: str, stack: Stack, tmp_path: Path
) -> None:
    async with AsyncStreams(base_url=stack.control.base_url, api_key=api_key,
                            org_id="org_abc") as streams:  # fmt: skip
        inp = await streams.live_inputs.get(id="li_xyz")
        _, stream_key = await inp.rotate_stream_key()
        pub = AsyncPublisher(stack.publish_url, timeslice_ms=500, cafile=str(stack.cafile))
        await pub.publish(inp.external_input_id, stream_key, "testsrc", inp.namespace)
        try:
            python = await asyncio.to_thread(venv.ready)
            await asyncio.to_thread(_check_venv, python, tmp_path)
            await _run_recipe(python, code, api_key, stack, tmp_path)
        finally:
            await pub.stop()


async def _run_recipe(python: Path, code: str, api_key: str, stack: Stack, tmp_path: Path) -> None:
    workdir = tmp_path / "recipe"
    workdir.mkdir()
    (workdir / "recipe4.py").write_text(code)
    env = _clean_env(CLUTCHCALL_CREDENTIALS=api_key, CLUTCHCALL_CAFILE=str(stack.cafile))
    proc = await asyncio.create_subprocess_exec(
        str(python), "recipe4.py", cwd=workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        capture = workdir / "broadcast.mp4"
        # Run until media arrived, then RUN_SECONDS more, and stop it as a user would (^C).
        deadline = asyncio.get_running_loop().time() + 30
        while not (capture.exists() and capture.stat().st_size > 20_000):
            assert proc.returncode is None, "the recipe exited early"
            assert asyncio.get_running_loop().time() < deadline, "no media within 30 s"
            await asyncio.sleep(0.1)
        await asyncio.sleep(RUN_SECONDS)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-3000:]
        assert "capture closed: closed" in out.decode(), (out.decode(), err.decode()[-3000:])
    finally:  # a failed wait must not leave the recipe running (it watches until ^C)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    decoded = decode(capture)
    assert decoded.errors == ""
    seconds = _media_seconds(capture)
    assert decoded.frames == round(seconds * 30)
    assert seconds >= RUN_SECONDS - 1.5, seconds


def test_import_does_not_load_picoquic_where_it_is_installed() -> None:
    """In the dev venv aiopquic is installed (the server depends on it): importing the SDK
    still leaves it alone, and asking for the stack loads it."""
    code = (
        "import sys, clutchcall.streams, moqt.aio\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] == 'aiopquic')\n"
        "moqt.aio.serve_picoquic\n"
        "print(before, 'aiopquic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "True"]
