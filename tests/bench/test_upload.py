"""bench.upload on small sizes: the report's shape, and figures that are real."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.upload import ROOT, UploadReport, format_results, parse_size, run


def test_parse_size() -> None:
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("256MiB") == 256 << 20
    assert parse_size("100MB") == 100_000_000
    assert parse_size("4096") == 4096


def check_report(report: UploadReport, size: int, reps: int) -> None:
    assert report.size_bytes == size and report.reps == reps
    assert len(report.put_mib_s) == reps and len(report.upload_mib_s) == reps
    assert all(v > 0 for v in report.put_mib_s + report.upload_mib_s)
    assert report.ratio > 0
    assert report.put_cpu_s_per_gib > 0 and report.upload_cpu_s_per_gib > 0
    assert report.stored_ok, report.notes  # SHA-256 of what the server stored = the source
    assert 20 < report.rss_baseline_mib <= report.rss_peak_mib < 2000
    assert (
        0
        <= report.rss_growth_mib
        == pytest.approx(report.rss_peak_mib - report.rss_baseline_mib, abs=0.11)
    )


@pytest.mark.timeout(180)
def test_throughput_and_rss_on_a_small_file(tmp_path: Path) -> None:
    # 32 MiB: enough server CPU for the per-GiB figures to be above /proc's 10 ms tick
    report = run(32 << 20, reps=2, ready_seconds=None, workdir=tmp_path, command="test")
    check_report(report, 32 << 20, 2)
    assert report.ready is None and report.notes == []
    text = format_results(report)
    assert "upload / PUT" in text and f"{report.ratio:.2f}" in text
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


@pytest.mark.timeout(180)
def test_command_line_writes_the_json_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.upload", "--size", "32MiB", "--reps", "1", "--no-ready",
         "--json", str(out), "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| upload / PUT (median of the reps' ratios) |" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data) == set(asdict(_empty_report()))
    check_report(UploadReport(**{**data, "ready": None}), 32 << 20, 1)
    assert data["command"].startswith("python -m bench.upload --size 32MiB")


def _empty_report() -> UploadReport:
    return UploadReport("", 0, 0, [], [], 0.0, 0.0, 0.0, True, 0.0, 0.0, 0.0, 0.0, None)
