"""When an upload of unknown length is complete (docs/vod.md): the sample tables, fragments.

Real ffmpeg-made MP4s (plain, faststart, fragmented with and without ``mfra``), cut at
every top-level box boundary and inside every box: only the whole file is complete.
"""

from __future__ import annotations

import asyncio
import random
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.vod._clips import FFMPEG
from tests.vod.uploadkit import OCTETS, SEED, asset, new_upload, upload_api
from vod.completion import FRAGMENTS, INCOMPLETE, WHOLE, completion

FLAGS = {
    "plain": [],
    "faststart": ["-movflags", "+faststart"],
    "fragmented": ["-movflags", "frag_keyframe+empty_moov"],
    "fragmented_no_mfra": ["-movflags", "frag_keyframe+empty_moov+skip_trailer"],
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("completion")
    out = {}
    for name, flags in FLAGS.items():
        path = root / f"{name}.mp4"
        subprocess.run(
            [
                FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=1.2",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1.2",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "10",
                "-c:a", "aac", "-shortest", *flags, str(path),
            ],
            check=True,
            timeout=60,
        )  # fmt: skip
        out[name] = path
    return out


def _boundaries(data: bytes) -> list[tuple[str, int, int]]:
    """The top-level boxes: (type, start, end)."""
    boxes, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        boxes.append((kind.decode(), pos, pos + size))
        pos += size
    return boxes


def _cuts(data: bytes) -> list[int]:
    cuts = set()
    for _, start, end in _boundaries(data):
        cuts |= {start, start + 4, start + 8, (start + end) // 2, end - 1, end}
    return sorted(c for c in cuts if 0 < c <= len(data))


def test_layouts_are_what_the_cases_need(clips: dict[str, Path]) -> None:
    kinds = {n: [b[0] for b in _boundaries(p.read_bytes())] for n, p in clips.items()}
    assert kinds["plain"][-1] == "moov" and "mdat" in kinds["plain"]
    assert kinds["faststart"].index("moov") < kinds["faststart"].index("mdat")
    assert kinds["fragmented"][-1] == "mfra" and kinds["fragmented"].count("moof") >= 2
    assert kinds["fragmented_no_mfra"][-2:] == ["moof", "mdat"]


@pytest.mark.parametrize("name", ["plain", "faststart"])
def test_plain_files_are_whole_only_when_whole(clips: dict[str, Path], name: str) -> None:
    path = clips[name]
    size = path.stat().st_size
    answers = {cut: completion(path, cut) for cut in _cuts(path.read_bytes())}
    assert answers.pop(size) == WHOLE
    assert set(answers.values()) == {INCOMPLETE}, answers


def test_faststart_cut_after_moov_at_a_box_boundary_is_not_whole(clips: dict[str, Path]) -> None:
    path = clips["faststart"]
    boxes = _boundaries(path.read_bytes())
    moov_end = next(end for kind, _, end in boxes if kind == "moov")
    mdat_start = next(start for kind, start, _ in boxes if kind == "mdat")
    for cut in {moov_end, mdat_start}:
        assert completion(path, cut) == INCOMPLETE


def test_fragmented_files(clips: dict[str, Path]) -> None:
    path = clips["fragmented"]
    data = path.read_bytes()
    boxes = _boundaries(data)
    pair_ends = {end for i, (kind, _, end) in enumerate(boxes) if kind == "mdat" and i > 0}
    for cut in _cuts(data):
        got = completion(path, cut)
        if cut == len(data):
            assert got == WHOLE  # ends with mfra: whole at once
        elif cut in pair_ends:
            assert got == FRAGMENTS, cut  # more fragments may come: the longer idle
        else:
            assert got == INCOMPLETE, cut
    assert completion(clips["fragmented_no_mfra"]) == FRAGMENTS


def test_malformed_tables_are_never_complete_nor_an_error(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    data = clips["faststart"].read_bytes()
    moov = next((start, end) for kind, start, end in _boundaries(data) if kind == "moov")
    rng = random.Random(11)
    target = tmp_path / "bad.mp4"
    answers = set()
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            bad[rng.randrange(moov[0] + 8, moov[1])] = rng.randrange(256)
        target.write_bytes(bytes(bad))
        answers.add(completion(target))
    assert answers <= {WHOLE, INCOMPLETE} and INCOMPLETE in answers
    # A sample table pointing past the end of the file.
    stco = data.index(b"stco", moov[0])
    bad = bytearray(data)
    struct.pack_into(">I", bad, stco + 12, len(data))  # the first chunk's offset
    target.write_bytes(bytes(bad))
    assert completion(target) == INCOMPLETE


async def test_a_faststart_upload_cut_after_moov_waits_for_the_rest(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """The train case: the box check passed at the cut before; the resumed PATCH then failed."""
    data = clips["faststart"].read_bytes()
    cut = next(end for kind, _, end in _boundaries(data) if kind == "moov")
    async with upload_api(tmp_path, upload_idle_seconds=0.2) as (api, queue):
        created = await new_upload(api)
        url, aid = created["uploadUrl"], created["assetId"]
        r = await api.client.patch(
            url, content=data[:cut], headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204
        await asyncio.sleep(0.7)  # past the idle time: the cut must not count as whole
        await api.app.state.uploads.sweep()
        assert (await asset(api, aid))["status"] == "uploading" and queue.jobs == []
        r = await api.client.patch(
            url, content=data[cut:], headers={**SEED, **OCTETS, "upload-offset": str(cut)}
        )
        assert r.status_code == 204, r.text
        job = await queue.wait()
        assert job.source.read_bytes() == data


async def test_fragmented_upload_waits_the_longer_idle(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    data = clips["fragmented_no_mfra"].read_bytes()
    idle: dict[str, Any] = {"upload_idle_seconds": 0.2, "upload_idle_fragmented_seconds": 1.5}
    async with upload_api(tmp_path, **idle) as (api, queue):
        created = await new_upload(api)
        url, aid = created["uploadUrl"], created["assetId"]
        r = await api.client.patch(
            url, content=data, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204
        sent = asyncio.get_running_loop().time()
        job = await queue.wait(within=10)
        assert asyncio.get_running_loop().time() - sent >= 1.4
        assert job.asset_id == aid and (await asset(api, aid))["size"] == len(data)


async def test_fragmented_upload_with_mfra_completes_at_the_ordinary_idle(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    data = clips["fragmented"].read_bytes()
    idle: dict[str, Any] = {"upload_idle_seconds": 0.2, "upload_idle_fragmented_seconds": 60}
    async with upload_api(tmp_path, **idle) as (api, queue):
        created = await new_upload(api)
        r = await api.client.patch(
            created["uploadUrl"], content=data, headers={**SEED, **OCTETS, "upload-offset": "0"}
        )
        assert r.status_code == 204
        job = await queue.wait(within=10)
        assert job.asset_id == created["assetId"]
