"""``@clutchcall/sdk`` as a user gets it: ``npm pack`` of web/, installed (offline, from the
tarball) into a fresh project; its ``exports["./streams"]`` resolves for node and for
TypeScript (Bundler and NodeNext resolution) and the seed's client code type-checks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.web.conftest import ROOT

pytestmark = [pytest.mark.timeout(240)]

USER_CODE = """\
import { Streams, PlaybackError, type LiveInput } from "@clutchcall/sdk/streams";

const streams = new Streams({ baseUrl: "https://app.clutchcall.dev", apiKey: "ck_x", orgId: "org_abc" });
export async function go(): Promise<string> {
  const { input, streamKey }: { input: LiveInput; streamKey: string } = await streams.liveInputs.create({
    name: "Live Demo", ingest: "fmp4",
  });
  const { url } = await input.signedPlaybackUrl({ ttlSeconds: 3600 });
  const { uploadUrl, assetId } = await streams.assets.createUpload({ name: "Session-Recording.mp4" });
  const viewer = new Streams({ apiBase: "" }).viewer({ onError: (e: PlaybackError) => e.reason });
  return [input.external_input_id, streamKey, url, uploadUrl, assetId, typeof viewer.play].join();
}
"""


def _run(args: list[str], cwd: Path) -> str:
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, f"{args}: {out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out.stdout


def test_the_packed_package_installs_imports_and_type_checks(tmp_path: Path) -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    assert npm and node, "npm and node are needed (node 20)"
    assert (ROOT / "web" / "dist" / "streams.js").exists(), "run make install"
    tarball = _run([npm, "pack", "--pack-destination", str(tmp_path), "--json"], ROOT / "web")
    packed = json.loads(tarball)[0]
    files = {f["path"] for f in packed["files"]}
    assert {"dist/streams.js", "dist/streams.d.ts", "dist/types/streams/index.d.ts"} <= files
    assert not any(f.startswith("dist/console/") for f in files)
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
    _run(
        [
            npm,
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            str(tmp_path / packed["filename"]),
        ],
        app,
    )
    probe = "import('@clutchcall/sdk/streams').then(m => console.log(typeof m.Streams, typeof m.NotFound))"
    assert _run([node, "-e", probe], app).split() == ["function", "function"]
    (app / "main.ts").write_text(USER_CODE)
    tsc = str(ROOT / "web" / "node_modules" / "typescript" / "bin" / "tsc")
    for module, resolution in (("ESNext", "Bundler"), ("NodeNext", "NodeNext")):
        config = {
            "compilerOptions": {
                "target": "ES2022", "module": module, "moduleResolution": resolution,
                "lib": ["ES2022", "DOM", "DOM.Iterable"], "strict": True, "noEmit": True,
            },
            "files": ["main.ts"],
        }  # fmt: skip
        (app / "tsconfig.json").write_text(json.dumps(config))
        _run([node, tsc, "-p", "tsconfig.json"], app)
