"""Every flag of every ``clutchcall`` subcommand explains itself; flags that are settings
name their TOML key and environment variables, and those names really work."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import SUBCOMMANDS, build_parser
from control.settings import ControlSettings
from mesh.settings import PopSettings, load_settings
from mesh.settings_help import setting_help
from origin.settings import OriginNodeSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"origin": OriginNodeSettings, "pop": PopSettings, "control": ControlSettings}
# Flags outside the settings layers that still read an environment variable.
ENV_FLAGS = {
    ("up", "--db"): "CLUTCHCALL_CONTROL_DB",
    ("up", "--redis"): "CLUTCHCALL_REDIS",
    ("demo", "--db"): "CLUTCHCALL_CONTROL_DB",
    ("admin", "create-live-input", "--redis"): "CLUTCHCALL_REDIS",
    ("admin", "rotate-signing-key", "--redis"): "CLUTCHCALL_REDIS",
    ("admin", "rotate-signing-key", "--key-secret"): "CLUTCHCALL_CONTROL_KEY_SECRET",
}


def _actions(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_action_of_every_subcommand_has_help() -> None:
    parser = build_parser()
    actions = list(_actions(parser))
    assert {path[0] for path, _ in actions} == set(SUBCOMMANDS)
    bare = [
        " ".join((*path, *(a.option_strings or [a.dest])))
        for path, a in actions
        if not (a.help or "").strip() or (a.help or "").startswith(" (default")
    ]
    assert bare == [], f"flags without help: {bare}"
    for path, action in actions:
        for flag in action.option_strings:
            env = ENV_FLAGS.get((*path, flag))
            if env is not None:
                assert env in (action.help or ""), (path, flag, action.help)


@pytest.mark.parametrize("role", sorted(SETTINGS))
def test_setting_flags_name_their_toml_key_and_environment(role: str) -> None:
    cls = SETTINGS[role]
    parser = build_parser()
    flags = {
        a.dest: a.help or "" for path, a in _actions(parser) if path == (role,) and a.option_strings
    }
    for field in dataclasses.fields(cls):
        assert setting_help(role, field.name), f"mesh/settings_help.py: no help for {field.name}"
        text = flags[field.name]
        assert f"TOML: {field.name} (top level or [{role}])" in text, text
        assert f"CLUTCHCALL_{role.upper()}_{field.name.upper()}" in text, text
        assert f"CLUTCHCALL_{field.name.upper()}" in text, text
    assert "[origin]" in flags["config"] if role == "origin" else True


@pytest.mark.parametrize(
    ("role", "field", "value", "expected"),
    [
        ("origin", "preset", "slow", "slow"),
        ("pop", "linger", "2.5", 2.5),
        ("control", "webhook_timeout", "3", 3.0),
    ],
)
def test_the_named_environment_variable_and_toml_key_are_honoured(
    role: str, field: str, value: str, expected: object, tmp_path: Path
) -> None:
    cls = SETTINGS[role]
    help_text = next(
        a.help or "" for path, a in _actions(build_parser()) if path == (role,) and a.dest == field
    )
    env_var = help_text.split("env: ")[1].split(" or ")[0]
    assert getattr(load_settings(cls, role, env={env_var: value}), field) == expected
    toml = tmp_path / "s.toml"
    toml.write_text(f"[{role}]\n{field} = {value if value[0].isdigit() else repr(value)}\n")
    assert getattr(load_settings(cls, role, file=toml, env={}), field) == expected


@pytest.mark.parametrize("command", ["origin", "pop", "control", "up", "admin"])
def test_help_runs(command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", command, "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "usage: clutchcall" in out.stdout
