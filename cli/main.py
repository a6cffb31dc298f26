"""``clutchcall``: the single command line for every node role and tool.

Each subcommand lives in its own ``cli/<name>.py`` module exposing
``register(subparsers)``; the subparser sets ``func(args) -> int``. Logging is
configured here (and only here), after the arguments are parsed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

# Order is the order shown in --help.
SUBCOMMANDS: tuple[str, ...] = (
    "up",
    "demo",
    "watch",
    "upload",
    "publish",
    "origin",
    "pop",
    "relay",
    "control",
    "admin",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clutchcall",
        description="ClutchCall Streams: MoQT relay mesh, origin/POP nodes, control plane and tools.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
