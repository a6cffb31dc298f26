"""The browser SDK's control client (web/src/streams/control.ts, built) retries a create
under its Idempotency-Key too: run by node against a real control plane, through the
proxy of test_idempotent_retry that loses the first create's answer (or answers 503)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from control.ids import sha256_hex

from .conftest import OrgMaker
from .test_idempotent_retry import CREATE, FaultyProxy, _stored_inputs, proxy

__all__ = ["proxy"]  # the fixture, shared

ROOT = Path(__file__).resolve().parents[2]
CONTROL_JS = ROOT / "web" / "dist" / "lib" / "streams" / "control.js"
SCRIPT = """
const [url, apiKey, orgId, lib] = process.argv.slice(1);
const { ControlClient, LiveInputs } = await import(lib);
const inputs = new LiveInputs(new ControlClient({ baseUrl: url, apiKey, orgId }));
const made = await inputs.create({ name: "Lost in the browser" });
const again = await inputs.create({ name: "Mine", idempotencyKey: "web-1" });
const replay = await inputs.create({ name: "Mine", idempotencyKey: "web-1" });
console.log(JSON.stringify({
  id: made.input.id, key: made.streamKey, same: replay.streamKey === again.streamKey,
}));
"""


@pytest.mark.parametrize("proxy", [(CREATE, "drop"), (CREATE, "503")], indirect=True)
def test_the_web_sdk_retries_a_lost_create_under_its_key(
    proxy: FaultyProxy, control_db: str, make_org: OrgMaker
) -> None:
    node = shutil.which("node")
    if node is None or not CONTROL_JS.is_file():
        pytest.fail("node or the web build is missing: run `make install`", pytrace=False)
    assert node is not None
    org, key = make_org("web-lost-answer")
    out = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, proxy.url, key, org, CONTROL_JS.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert proxy.faults == 1
    sent = [h["idempotency-key"] for h in proxy.headers_of(CREATE)]
    assert sent[0] == sent[1] and sent[2:] == ["web-1", "web-1"]  # the lost one and its retry
    assert result["same"]
    stored = {li.name: li for li in _stored_inputs(control_db, org)}
    assert sorted(stored) == ["Lost in the browser", "Mine"]  # each made once
    assert stored["Lost in the browser"].id == result["id"]
    assert stored["Lost in the browser"].stream_key_sha256 == sha256_hex(result["key"])
