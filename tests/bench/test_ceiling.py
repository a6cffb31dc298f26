"""bench.ceiling's per-core arithmetic and arguments (no transfer: the figures live in
bench/RESULTS.md)."""

from __future__ import annotations

import math

import pytest

from bench import ceiling, fanout, pop_fanout
from bench.ceiling import Bulk, parse_quicperf, per_core
from bench.fanout import FanoutResult


def test_egress_per_core_is_goodput_over_the_cores_the_sender_used() -> None:
    # 2 s at 400 Mbit/s for 0.5 CPU-seconds: 0.25 cores, 1600 Mbit/s per core.
    bulk = Bulk("picoquic", 96, 400.0, seconds=2.0, sender_cpu_s=0.5)
    assert bulk.sender_cores == pytest.approx(0.25)
    assert bulk.mbit_s_per_core == pytest.approx(1600.0)
    assert bulk.as_json()["mbit_s_per_core"] == 1600.0


def test_no_cpu_figure_gives_no_per_core_figure() -> None:
    assert math.isnan(per_core(100.0, 0.0))
    assert math.isnan(per_core(100.0, math.nan))
    assert math.isnan(Bulk("aioquic", 96, 150.0).mbit_s_per_core)


def test_the_relay_is_compared_per_core_against_each_reference() -> None:
    relay = FanoutResult(
        "ours-picoquic", 20, egress_mbit_s=50.0, relay_cpu_cores=0.1, relay_loop_cores=0.06
    )
    assert relay.egress_per_core == pytest.approx(500.0)
    # The rest of the relay's CPU is picoquic's network thread: 0.04 cores for 50 Mbit/s.
    assert relay.network_cores == pytest.approx(0.04)
    assert relay.network_egress_per_core == pytest.approx(1250.0)
    refs = [Bulk("picoquic", 32, 400.0, 1.0, 0.4), Bulk("picoquic-c", 32, 2000.0, 1.0, 1.0)]
    row = fanout._format([relay], None, refs).splitlines()
    assert (
        "| egress per core Mbit/s | % of picoquic per core | % of picoquic-c per core "
        "| network thread alone, % of picoquic-c per core |" in row[0]
    )
    assert row[0].count("|") == row[1].count("|") == row[2].count("|")
    assert "| 0.10: 0.06 + 0.04 | 50.0 | 500.0 | 50% | 25% | 62% |" in row[2]
    # A single-threaded relay (aioquic) has no network thread to set apart.
    single = FanoutResult("ours", 20, egress_mbit_s=50.0, relay_cpu_cores=0.1, relay_loop_cores=0.1)
    assert math.isnan(single.network_egress_per_core)
    # The default table is unchanged: egress as a % of the aioquic ceiling's goodput.
    plain = fanout._format([relay], 100.0).splitlines()
    assert "% of aioquic ceiling" in plain[0]
    assert "| 50.0 | 50% |" in plain[2]


def test_the_pop_is_compared_per_core_too() -> None:
    pop = pop_fanout.PopFanoutResult(20, 1, 2.5, pop_egress_mbit_s=50.0, pop_cpu_cores=0.25)
    refs = [Bulk("picoquic", 32, 400.0, 1.0, 1.0)]
    header, rule, row = pop_fanout.format_results([pop], None, refs).splitlines()
    assert "| egress per core Mbit/s | % of picoquic per core |" in header
    assert header.count("|") == rule.count("|") == row.count("|")
    assert "| 50.0 | 200.0 | 50% |" in row
    header, rule, row = pop_fanout.format_results([pop], 100.0).splitlines()
    assert "| % of aioquic ceiling |" in header and "| 50.0 | 50% |" in row
    assert header.count("|") == rule.count("|") == row.count("|")


def test_the_relay_is_compared_with_picoquic_serving_the_same_fan_out() -> None:
    relay = FanoutResult(
        "ours-picoquic", 200, egress_mbit_s=500.0, relay_cpu_cores=0.5, relay_loop_cores=0.25
    )
    refs = [Bulk("picoquic-c", 32, 2000.0, 1.0, 0.5)]
    same_n = {200: Bulk("picoquic-c fan-out", 0, 500.0, 10.0, 7.5)}  # 0.75 cores
    header, rule, row = fanout._format([relay], None, refs, same_n).splitlines()[:3]
    assert (
        "| % of picoquic-c fan-out (same N) per core | relay RSS MB | KiB per active viewer |"
        in header
    )
    assert header.count("|") == rule.count("|") == row.count("|")
    assert "| 1000.0 | 25% | 50% | 150% |" in row
    # No reference measured at this N: said as such, not as 0%.
    other = fanout._format([relay], None, refs, {50: same_n[200]}).splitlines()[2]
    assert "| 50% | - |" in other


def test_a_fan_out_viewer_is_one_quicperf_media_stream() -> None:
    # 2.5 Mbit/s at 30 frames/s is 10,417 bytes a frame; 2 s groups; 20 s.
    assert ceiling.quicperf_media_scenario(2.5e6, 30.0, 2.0, 20.0) == "=v1:s30:n600:10417:G60;"
    out = "Quicperf scenario v1: received 598/ 600 frames, delay min/average/max = 1/ 2/ 3.\n"
    assert ceiling.parse_media_frames(out) == (598, 600)
    assert ceiling.parse_media_frames("Client exit with code = 1\n") == (0, 0)


def test_quicperf_statistics_are_read_from_the_client_output() -> None:
    out = "Connection_duration_sec: 0.5\nDownload_bytes: 33554432\nSome text: here\n"
    assert parse_quicperf(out) == {"Connection_duration_sec": 0.5, "Download_bytes": 33554432.0}


@pytest.mark.parametrize(
    "argv",
    [
        ["--megabytes", "0"],
        ["--megabytes", "lots"],
        ["--stack", "quiche"],
        ["--stack", "picoquic", "--stream-buffer", "100"],
        ["--stack", "picoquic", "--picoquic-bin", "/nonexistent/picoquicdemo"],
        ["--picoquic-bin", "/bin/true"],  # the C reference goes with the picoquic stack
    ],
)
def test_bad_arguments_are_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        ceiling.main(argv)
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_fanout_takes_the_c_reference_only_with_the_picoquic_ceiling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        fanout.main(["run", "--picoquic-bin", "/bin/true"])
    assert exit_.value.code == 2
    assert "--ceiling-stack picoquic" in capsys.readouterr().err


def test_a_run_on_a_saturated_host_says_its_latency_is_the_hosts() -> None:
    calm = FanoutResult("ours-picoquic", 100, viewers_cpu_cores=0.7, host_busy=0.6)
    busy = FanoutResult(
        "ours-picoquic", 200, relay_cpu_cores=0.5, viewers_cpu_cores=1.4, host_busy=0.97
    )
    table = fanout._format([calm, busy], 100.0).splitlines()
    assert table[0].endswith("| viewers' CPU (cores) | host busy |")
    assert table[2].endswith("| 0.70 | 60% |") and table[3].endswith("| 1.40 | 97% |")
    assert table[0].count("|") == table[1].count("|") == table[2].count("|")
    assert not calm.saturated and busy.saturated
    flagged = [line for line in table if "busy (the viewers" in line]
    assert flagged == [
        "- ours-picoquic N=200: the host was 97% busy (the viewers 1.40 cores, the relay "
        "0.50): its latency is the viewers' wait for a core as much as the relay's"
    ]
    # Not measured (NaN) is not saturated.
    assert not FanoutResult("ours", 10).saturated


def test_the_host_cpu_is_read_from_proc_stat() -> None:
    from bench._procs import HostCpu

    before = HostCpu.sample("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    after = HostCpu.sample("cpu  250 0 150 800 100 0 0 0 0 0\n")
    # 200 busy ticks of 300 (iowait is idle time): two thirds busy.
    assert after.busy_since(before) == pytest.approx(2 / 3)
    assert math.isnan(after.busy_since(after))
    real = HostCpu.sample()
    assert 0 < real.busy <= real.total
