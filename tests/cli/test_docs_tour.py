"""README's tour and docs/ARCHITECTURE.md stay true to the code: every ``clutchcall``
command the tour prints parses with the real CLI, and the architecture names every
package and document that exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _tour() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Five-minute tour", 1)[1].split("\n## ", 1)[0]


def _commands() -> list[list[str]]:
    commands: list[list[str]] = []
    in_block, lines = False, []
    for line in _tour().splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block:
            lines.append(line)
    for raw in lines:
        line = raw.split("  #", 1)[0].strip()
        if not re.search(r"(^|\s)(\.venv/bin/)?clutchcall ", line):
            continue
        words = shlex.split(line)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)  # VAR=value prefixes
        if words and words[0] in (".venv/bin/clutchcall", "clutchcall"):
            commands.append(words[1:])
    for inline in re.findall(r"`((?:\.venv/bin/)?clutchcall [^`]+)`", _tour()):
        if len(inline.split()) > 2:  # a command line, not a name like `clutchcall admin`
            commands.append(shlex.split(inline)[1:])
    return commands


def test_the_tour_has_commands() -> None:
    assert {c[0] for c in _commands()} >= {"watch", "up", "relay", "publish", "upload"}


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a)[:60])
def test_every_tour_command_parses_with_the_real_cli(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.func)


def test_the_architecture_names_every_package_and_document() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    packages = sorted(
        p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"
    )
    for name in [*packages, "moqt/aio", "web", "deploy", "docs"]:
        assert f"`{name}/`" in text, name
    for doc in (ROOT / "docs").glob("*.md"):
        if doc.name != "ARCHITECTURE.md":
            assert doc.name in text, doc.name
    for path in re.findall(r"`((?:docs|deploy|cli|mesh|pop)/[\w./-]+\.(?:md|py|json))`", text):
        assert (ROOT / path).exists(), path
