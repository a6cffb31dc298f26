"""Browser test harness (docs/web-sdk.md "Tests"): real Chromium driven by Playwright,
a real ``clutchcall up`` stack, a real static HTTP server.

Chromium is Debian's ``/usr/bin/chromium`` (``make install`` installs it); Playwright
only drives it (never ``playwright install``). Tests are synchronous (the sync API runs
its own loop; do not mix it with pytest-asyncio in one test).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CLUTCHCALL_CHROMIUM", "/usr/bin/chromium")
SDK_DIST = ROOT / "web" / "dist" / "streams.js"

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--mute-audio",
]

playwright_sync = pytest.importorskip("playwright.sync_api")


def _require(condition: bool, what: str) -> None:
    if not condition:
        pytest.fail(f"{what}: run `make install`", pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (fake camera and microphone). Not per session:
    Playwright's sync API keeps an event loop running in this thread while it is started,
    so asyncio tests that a worker runs after a browser module would fail to start theirs."""
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (Debian package chromium)")
    pw = playwright_sync.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in a fresh context; ``page.console_errors`` collects the page's errors."""
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    p.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    p.console_errors = errors
    p.set_default_timeout(30_000)
    try:
        yield p
    finally:
        context.close()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUTCHCALL_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


class UpStack:
    """``python -m cli.main up`` on free ports, read until it says it is running."""

    def __init__(self, workdir: Path, org_id: str = "org_abc", *extra: str) -> None:
        self.workdir = workdir
        self.info_file = workdir / "up.json"
        self.log_path = workdir / "up.log"
        self.running = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up",
             "--http", "127.0.0.1:0", "--origin", "127.0.0.1:0", "--pop", "127.0.0.1:0",
             "--rtmp", "127.0.0.1:0", "--db", f"sqlite:///{workdir / 'up.db'}",
             "--org-id", org_id, "--info-file", str(self.info_file), *extra],
            cwd=workdir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("wb") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith(b"running;"):
                    self.running.set()
        self.running.set()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def wait_running(self, timeout: float = 60.0) -> dict[str, Any]:
        if not self.running.wait(timeout) or self.proc.poll() is not None:
            raise AssertionError(f"clutchcall up did not start:\n{self.log()}")
        info: dict[str, Any] = json.loads(self.info_file.read_text())
        return info

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)


@pytest.fixture(scope="module")
def up_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running ``clutchcall up`` (demo org ``org_abc``, like the seed); yields its info JSON
    (base_url, org_id, api_key, relay_url, publish_url, rtmp_url, cafile)."""
    _require(SDK_DIST.exists(), "the browser SDK is not built (web/dist/streams.js)")
    stack = UpStack(tmp_path_factory.mktemp("up"))
    try:
        yield stack.wait_running()
    finally:
        stack.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".m4s": "video/iso.segment",
        ".mp4": "video/mp4",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@pytest.fixture
def static_server() -> Iterator[Callable[[Path], str]]:
    """``static_server(directory)`` serves it over real HTTP on its own origin
    (``http://localhost:<port>``) and returns that base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://localhost:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


SDK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>sdk test</title><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@clutchcall/sdk/streams": "%(sdk)s"}}</script>
<script>globalThis.process = {env: %(env)s};</script>
</head><body><video id="v" muted playsinline width="640" height="360"></video></body></html>
"""


def open_sdk_page(
    page: Any, static_server: Callable[[Path], str], tmp: Path, sdk_url: str,
    env: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """Load a blank page on a static origin of its own with an import map that resolves
    ``@clutchcall/sdk/streams`` to ``sdk_url`` and ``process.env`` = ``env`` (what a bundler
    provides), so seed code runs as printed through :func:`run_module`. Returns the page URL."""
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text(SDK_PAGE % {"sdk": sdk_url, "env": json.dumps(env or {})})
    url = static_server(site) + "/index.html"
    page.goto(url)
    return url


def run_module(page: Any, code: str, result: str = "undefined") -> Any:
    """Run ``code`` as an ES module in the page (imports resolve through the import map) and
    return the value of the JS expression ``result`` evaluated at its end; a thrown error
    fails with its name and message."""
    script = code + f"\nglobalThis.__result = await (async () => ({result}))();\n"
    return page.evaluate(
        """async (code) => {
            const blob = new Blob([code], {type: "text/javascript"});
            const url = URL.createObjectURL(blob);
            try {
                await import(url);
            } catch (e) {
                throw new Error(`${e && e.name}: ${e && e.message}`);
            } finally {
                URL.revokeObjectURL(url);
            }
            return globalThis.__result;
        }""",
        script,
    )


def transpile_ts(code: str) -> str:
    """TypeScript to JavaScript with the package's own esbuild (types are erased, not checked)."""
    esbuild = ROOT / "web" / "node_modules" / ".bin" / "esbuild"
    _require(esbuild.exists(), "web/node_modules is missing")
    out = subprocess.run(
        [str(esbuild), "--loader=ts", "--format=esm", "--target=es2022"],
        input=code, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"esbuild could not transpile:\n{out.stderr}\n{code}")
    return out.stdout


def typecheck_ts(files: dict[str, str], tmp: Path) -> None:
    """Type-check TypeScript snippets with the package's tsc, ``@clutchcall/sdk/streams``
    resolved to the built declarations (strict, DOM). Fails with tsc's report."""
    tsc = ROOT / "web" / "node_modules" / "typescript" / "bin" / "tsc"
    _require(tsc.exists(), "web/node_modules is missing")
    work = tmp / "tscheck"
    work.mkdir(exist_ok=True)
    for name, text in files.items():
        (work / name).write_text(text)
    (work / "env.d.ts").write_text(
        "declare const process: { env: Record<string, string | undefined> };\n"
    )
    config = {
        "compilerOptions": {
            "target": "ES2022", "module": "ESNext", "moduleResolution": "Bundler",
            "lib": ["ES2022", "DOM", "DOM.Iterable"], "strict": True, "noEmit": True,
            "skipLibCheck": True,
            "paths": {"@clutchcall/sdk/streams": [str(ROOT / "web" / "dist" / "types" / "streams" / "index.d.ts")]},
        },
        "files": [*files, "env.d.ts"],
    }  # fmt: skip
    (work / "tsconfig.json").write_text(json.dumps(config))
    node = shutil.which("node")
    _require(node is not None, "node is missing")
    assert node is not None
    out = subprocess.run(
        [node, str(tsc), "-p", str(work / "tsconfig.json")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"tsc refused the code:\n{out.stdout}{out.stderr}")
