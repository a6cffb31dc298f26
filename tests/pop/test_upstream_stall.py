"""``upstream_stall``: the POP's upstream-dead timer is a setting (TOML, environment, flag),
validated, and what the POP's links actually use (a longer one waits longer, 0 never fires)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from pathlib import Path

import pytest

from mesh.bus import MemoryBus
from mesh.settings import PopSettings, SettingsError, add_settings_arguments, load_settings
from mesh.settings import settings_from_args as from_args
from tests.pop.conftest import MakePop
from tests.pop.lab import Origin, Tokens, Viewer, namespace_name, namespace_of

NS = namespace_of("lv_a")


def test_every_layer_sets_it_and_zero_is_off(tmp_path: Path) -> None:
    assert PopSettings().upstream_stall == 1.5
    config = tmp_path / "clutchcall.toml"
    config.write_text("[pop]\nupstream_stall = 4\n")
    assert load_settings(PopSettings, "pop", file=config, env={}).upstream_stall == 4.0
    env = {"CLUTCHCALL_POP_UPSTREAM_STALL": "2.5"}
    assert load_settings(PopSettings, "pop", env=env).upstream_stall == 2.5
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, PopSettings, "pop")
    args = parser.parse_args(["--upstream-stall", "0"])
    assert from_args(PopSettings, "pop", args, env={}).upstream_stall == 0.0
    flag = next(a for a in parser._actions if a.dest == "upstream_stall")
    assert flag.help is not None and "0: off" in flag.help and "UPSTREAM_STALL" in flag.help


@pytest.mark.parametrize("value", ["-1", "0.01", "nan", "inf", "7200", "soon"])
def test_bad_values_are_refused_with_the_key_named(value: str) -> None:
    with pytest.raises(SettingsError, match="upstream_stall"):
        load_settings(PopSettings, "pop", env={"CLUTCHCALL_POP_UPSTREAM_STALL": value})
    with pytest.raises(ValueError, match="upstream_stall"):
        number = float(value) if value != "soon" else math.nan
        PopSettings(upstream_stall=number)


async def test_the_links_use_the_setting(
    bus: MemoryBus, certs: tuple[Path, Path], make_pop: MakePop, tokens: Tokens
) -> None:
    near = Origin(bus, "o-eu", "eu", certs[0], certs[1], (NS,), group_ms=200)
    far = Origin(bus, "o-us", "us", certs[0], certs[1], (NS,), group_ms=200)
    async with near.running(), far.running():
        slow = await make_pop(node_id="pop-slow", upstream_stall=2.5)
        never = await make_pop(node_id="pop-never", upstream_stall=0)
        for pop in (slow, never):
            topology = pop.topology
            assert topology is not None
            hosting = lambda t=topology: len([n for n in t.nodes().values() if n.hosts]) == 2  # noqa: E731
            deadline = time.monotonic() + 10
            while not (hosting() and topology.route(namespace_name("lv_a")) is not None):
                assert time.monotonic() < deadline, "the POP never saw both origins"
                await asyncio.sleep(0.02)
        viewers = [Viewer(f"moqt://127.0.0.1:{p.quic_address[1]}", NS) for p in (slow, never)]
        tasks = [asyncio.create_task(v.watch(subscribe_token=tokens.mint())) for v in viewers]
        try:
            for viewer in viewers:
                await asyncio.wait_for(viewer.got_object.wait(), 10)
                assert viewer.objects[-1].origin == "o-eu"
            # o-eu hangs: its session and registry record stay, its track goes silent.
            near.publishers[0].frozen = True
            frozen_at = time.time()
            deadline = time.monotonic() + 15
            while viewers[0].objects[-1].origin != "o-us":
                assert time.monotonic() < deadline, "the 2.5 s stall timer never fired"
                await asyncio.sleep(0.02)
            first = next(o for o in viewers[0].objects if o.origin == "o-us")
            # Not the old fixed 1.5 s: the link waited out its configured 2.5 s of silence.
            assert first.at - frozen_at >= 2.5
            assert slow.router.reroutes >= 1
            # Off: more than 2.5 s of silence later, the other POP still holds its link.
            assert never.pool.failures == 0 and never.router.reroutes == 0
            assert [link.key.node_id for link in never.pool.links()] == ["o-eu"]
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
