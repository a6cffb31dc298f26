"""Origin settings layers, the ladder option, status reports with Redis away, CLI errors."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mesh.bus import BusMessage, RedisBus
from mesh.settings import SettingsError, load_settings
from origin.settings import OriginNodeSettings, parse_rungs
from origin.status import INPUT_STATUS_CHANNEL, INPUT_STATUS_PREFIX, InputStatus, StatusReporter
from tests.conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(30)


def test_defaults_give_the_issue_ladder() -> None:
    spec = OriginNodeSettings().ladder_spec()
    assert [(r.name, r.height) for r in spec.video] == [
        ("1080p", 1080),
        ("720p", 720),
        ("360p", 360),
    ]
    assert spec.audio is not None and spec.audio.codec == "aac"
    plan = spec.plan(1280, 720)  # capped at the source: never upscaled
    assert [v.name for v in plan.video] == ["720p", "360p"]


def test_layers_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "origin.toml"
    config.write_text(
        'region = "from-file"\n[origin]\nladder = ["480p:480:1200000"]\naudio = "opus"\n'
    )
    env = {"CLUTCHCALL_REGION": "from-env", "CLUTCHCALL_REDIS": "redis://127.0.0.1:1/0"}
    settings = load_settings(
        OriginNodeSettings, "origin", file=config, env=env, overrides={"node_id": "o1"}
    )
    assert settings.region == "from-env" and settings.redis == "redis://127.0.0.1:1/0"
    assert [r.name for r in settings.ladder_spec().video] == ["480p"]
    assert settings.ladder_spec().audio is not None
    assert settings.node_id == "o1" and settings.publish_auth == "redis"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ladder": "720p:720"}, "NAME:HEIGHT:BITRATE"),
        ({"ladder": "720p:719:100"}, "even"),
        ({"publish_auth": "maybe"}, "redis, none"),
        ({"resume_window": "-1"}, "resume_window"),
        ({"rtmp": "nohost"}, "rtmp"),
    ],
)
def test_bad_settings_are_clear_errors(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(OriginNodeSettings, "origin", env={}, overrides=overrides)
    assert message in str(info.value) or "HOST:PORT" in str(info.value)


def test_parse_rungs() -> None:
    (rung,) = parse_rungs(("540p:540:1500000",))
    assert (rung.name, rung.height, rung.bitrate) == ("540p", 540, 1_500_000)
    with pytest.raises(ValueError, match="NAME:HEIGHT:BITRATE"):
        parse_rungs(("x",))


async def test_status_reports_reach_redis_and_survive_an_outage(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    bus = RedisBus(server.url, retry_interval=0.2, timeout=0.5)
    try:
        reporter = StatusReporter(bus, node_id="o1")
        got: asyncio.Queue[BusMessage] = asyncio.Queue()

        async def follow() -> None:
            async with bus.subscribe(INPUT_STATUS_CHANNEL) as messages:
                async for m in messages:
                    if not m.resync:
                        await got.put(m)
                        return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.3)  # the subscription starts with the iteration
        await reporter.report("lv_s", InputStatus.ERROR, "ffmpeg exited (1)")
        message = await asyncio.wait_for(got.get(), 5)
        await follower
        assert message.data["status"] == "error" and message.data["detail"] == "ffmpeg exited (1)"
        record = await bus.get(INPUT_STATUS_PREFIX + "lv_s")
        assert record is not None and record["status"] == "error" and record["node"] == "o1"
        server.stop()
        report = await reporter.report("lv_s", InputStatus.IDLE)  # logged, never raised
        assert report.status is InputStatus.IDLE and reporter.failures == 1
        assert reporter.latest("lv_s") == report
    finally:
        server.stop()
        await bus.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.origin", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_cli_rejects_bad_arguments_clearly() -> None:
    bad = _cli("--quic", "nope", "--http", "127.0.0.1:0")
    assert bad.returncode == 2 and "expected HOST:PORT, got 'nope'" in bad.stderr
    half = _cli("--quic", "127.0.0.1:0", "--http", "127.0.0.1:0", "--cert", "x.pem")
    assert half.returncode == 2 and "--cert and --key go together" in half.stderr


def test_cli_busy_rtmp_port_is_a_clear_failure() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli("--quic", "127.0.0.1:0", "--http", "127.0.0.1:0",
                      "--rtmp", f"127.0.0.1:{port}", "--publish-auth", "none")  # fmt: skip
    assert result.returncode == 1
    assert "address already in use" in result.stderr and "origin_failed" in result.stderr
