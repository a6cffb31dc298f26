"""``node --test web/test``: the browser SDK's unit tests (every helper's), on real media.

``CLUTCHCALL_VOD_FIXTURE`` is an asset packaged by vod.packaging from an ffmpeg clip;
``FFMPEG`` is the ffmpeg binary, for tests that make their own media.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from tests.web.vodkit import package_clip

ROOT = Path(__file__).resolve().parents[2]


def test_node_unit_tests_pass(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (ROOT / "web" / "dist" / "lib").is_dir():
        pytest.fail("node or the web build is missing: run `make install`", pytrace=False)
    assert node is not None
    fixture = package_clip(tmp_path, seconds=6.0)
    env = {
        **os.environ,
        "CLUTCHCALL_VOD_FIXTURE": str(fixture),
        "FFMPEG": imageio_ffmpeg.get_ffmpeg_exe(),
    }
    files = sorted(str(p) for p in (ROOT / "web" / "test").glob("*.test.mjs"))
    assert files, "no node tests found"
    out = subprocess.run(
        [node, "--test", "--test-reporter=spec", *files],
        cwd=ROOT / "web", env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
