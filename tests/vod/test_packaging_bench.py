"""bench.vod_packaging runs end to end on a tiny clip and reports every measure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.vod_packaging import main


def test_the_benchmark_reports_each_rendition_and_submit_to_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert main(["--seconds", "2", "--height", "360", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "$ python -m bench.vod_packaging --seconds 2 --height 360" in text
    assert "| x real time per CPU core |" in text
    rows = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^\| ([^|]+?) \| [^|]+ \| ([\d.]+)x \|", text, re.M)
    }
    assert set(rows) == {"360p", "audio", "full ladder (submit -> ready)"}  # 1080p/720p capped
    assert all(speed > 0 for speed in rows.values())
    saved = json.loads(out.read_text())
    assert [m["name"] for m in saved] == list(rows)
    assert all(m["media_s"] == 2.0 and len(m["seconds"]) == 1 for m in saved)


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--seconds", "0"])
    assert exit_.value.code == 2
    assert "--seconds must be > 0" in capsys.readouterr().err
