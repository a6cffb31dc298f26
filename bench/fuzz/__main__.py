"""Run the fuzz harnesses with atheris (libFuzzer).

    python -m bench.fuzz <target|all> --runs N [--corpus DIR] [-- <libFuzzer flags>]
    python -m bench.fuzz seed <target|all>       # (re)write the seed inputs of the corpus
    python -m bench.fuzz merge <target> DIR...   # minimize DIRs + the corpus into the corpus
    python -m bench.fuzz list

A run reads the committed corpus ``bench/fuzz/corpus/<target>/`` and writes the new
inputs it finds to ``--corpus`` (default: the committed directory itself). Crash
inputs go to ``--artifacts`` (default: the current directory). One target runs in
this process (atheris exits the process when libFuzzer ends); ``all`` runs each
target in a child process, one after the other, and fails if any failed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from bench.fuzz import CORPUS_ROOT, TARGETS

__all__ = ["main"]


def _names(target: str) -> list[str]:
    if target == "all":
        return list(TARGETS)
    if target not in TARGETS:
        raise SystemExit(f"unknown target {target!r}; choose one of: all, {', '.join(TARGETS)}")
    return [target]


def _seed(name: str) -> int:
    module = importlib.import_module(f"bench.fuzz.{name}")
    seeds = cast(Callable[[], Iterator[bytes]], module.seeds)
    out = CORPUS_ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for data in seeds():
        (out / f"seed-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
        count += 1
    return count


def _launcher(name: str) -> Path:
    """An executable that runs this target with the arguments libFuzzer gives it."""
    import os
    import shlex
    import tempfile

    root = Path(__file__).resolve().parents[2]
    path = Path(tempfile.mkdtemp(prefix="fuzz-launch-")) / name
    path.write_text(
        f"#!/bin/sh\ncd {shlex.quote(str(root))} && exec {shlex.quote(sys.executable)} "
        f'-m bench.fuzz {name} -- "$@"\n'
    )
    os.chmod(path, 0o755)
    return path


def _fuzz(
    name: str, runs: int, corpus: Path | None, artifacts: Path | None, extra: list[str]
) -> None:
    import atheris  # type: ignore[import-untyped]

    committed = CORPUS_ROOT / name
    committed.mkdir(parents=True, exist_ok=True)
    dirs = [committed]
    if corpus is not None and corpus.resolve() != committed:
        corpus.mkdir(parents=True, exist_ok=True)
        dirs = [corpus, committed]  # libFuzzer writes new inputs to the first one
    prefix = f"-artifact_prefix={artifacts}/" if artifacts is not None else None
    with atheris.instrument_imports(include=list(TARGETS[name])):
        module = importlib.import_module(f"bench.fuzz.{name}")
    args = [sys.argv[0], f"-runs={runs}", "-timeout=10", "-print_final_stats=1", *extra]
    if prefix:
        args.append(prefix)
    if any(a.startswith("-merge") for a in extra):
        # libFuzzer's merge re-runs argv[0] as a program: give it one that is this target.
        args[0] = str(_launcher(name))
    else:
        args += [str(d) for d in dirs]
    atheris.Setup(args, module.TestOneInput)
    atheris.Fuzz()  # exits the process


def _merge(name: str, sources: list[Path]) -> None:
    """libFuzzer -merge=1: the smallest set of inputs (committed + sources) with the same
    coverage replaces the committed corpus."""
    import shutil
    import tempfile

    committed = CORPUS_ROOT / name
    with tempfile.TemporaryDirectory(prefix=f"fuzz-merge-{name}-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        cmd = [sys.executable, "-m", "bench.fuzz", name, "--", "-merge=1", str(out)]
        cmd += [str(committed), *map(str, sources)]
        subprocess.run(cmd, check=True)
        kept = {p.name for p in out.iterdir()}
        for p in committed.iterdir():
            if p.name not in kept and not p.name.startswith("seed-"):
                p.unlink()
        for p in out.iterdir():
            if not (committed / p.name).exists() and not (committed / f"seed-{p.name}").exists():
                shutil.copy(p, committed / p.name)


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in raw:
        cut = raw.index("--")
        raw, extra = raw[:cut], raw[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("command", help="a target, 'all', 'seed' or 'list'")
    parser.add_argument("target", nargs="?", default="all", help="for 'seed', 'merge': a target")
    parser.add_argument("sources", nargs="*", type=Path, help="for 'merge': corpus directories")
    parser.add_argument("--runs", type=int, default=100_000, help="libFuzzer -runs (inputs)")
    parser.add_argument("--corpus", type=Path, help="where new inputs go (default: committed)")
    parser.add_argument("--artifacts", type=Path, help="where crash inputs go")
    args = parser.parse_args(raw)
    if args.command == "list":
        print("\n".join(TARGETS))
        return 0
    if args.command == "seed":
        for name in _names(args.target):
            print(f"{name}: {_seed(name)} seeds")
        return 0
    if args.command == "merge":
        _merge(args.target, args.sources)
        return 0
    names = _names(args.command)
    if len(names) == 1:
        corpus = args.corpus
        _fuzz(names[0], args.runs, corpus, args.artifacts, extra)
        return 0
    failed = []
    for name in names:
        cmd = [sys.executable, "-m", "bench.fuzz", name, "--runs", str(args.runs)]
        if args.corpus is not None:
            cmd += ["--corpus", str(args.corpus / name)]
        if args.artifacts is not None:
            cmd += ["--artifacts", str(args.artifacts)]
        if extra:
            cmd += ["--", *extra]
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"findings in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
