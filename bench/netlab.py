"""A multi-host network lab on one machine: network namespaces joined by veth links.

Each *host* (a "region", a viewer, ...) is a network namespace; each link is a
veth pair with its own /24 out of 198.18.0.0/15 (the RFC 2544 benchmarking
range, never routed). Rate limits use ``tc tbf`` on a link end (this kernel
has no netem: delay, jitter and loss come from :mod:`bench.impair`, run inside
a namespace). Names resolve per namespace through ``/etc/netns/<ns>/hosts``,
which ``ip netns exec`` mounts over ``/etc/hosts``, so a POP in one region can
reach "the origin" through its region's impairment proxy while the origin's
own region reaches it directly.

Needs root. Everything is torn down on exit, also after a failed setup.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LabError", "Link", "NetLab", "netlab_available"]

NETNS_ETC = Path("/etc/netns")


class LabError(RuntimeError):
    """The lab could not be built (not root, no iproute2, ...)."""


def netlab_available() -> str | None:
    """``None`` when the lab can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    return None


def _sh(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


@dataclass(frozen=True, slots=True)
class Link:
    a: str
    b: str
    index: int
    dev_a: str
    dev_b: str

    def address(self, host: str) -> str:
        if host == self.a:
            return f"198.18.{self.index}.1"
        if host == self.b:
            return f"198.18.{self.index}.2"
        raise KeyError(f"{host} is not on link {self.a}<->{self.b}")

    def device(self, host: str) -> str:
        return self.dev_a if host == self.a else self.dev_b


@dataclass
class NetLab:
    """``with NetLab(["origin", "eu", "ap"], [("origin", "eu"), ("origin", "ap")]) as lab: ...``"""

    hosts: Sequence[str]
    links: Sequence[tuple[str, str]]
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    _links: dict[frozenset[str], Link] = field(default_factory=dict, init=False)
    _up: bool = field(default=False, init=False)

    def ns(self, host: str) -> str:
        if host not in self.hosts:
            raise KeyError(f"unknown host {host!r}")
        return f"cc{self.tag}-{host}"

    def link(self, a: str, b: str) -> Link:
        return self._links[frozenset((a, b))]

    def address(self, host: str, toward: str) -> str:
        """``host``'s address on its link to ``toward``."""
        return self.link(host, toward).address(host)

    def __enter__(self) -> NetLab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        reason = netlab_available()
        if reason:
            raise LabError(reason)
        if len(self.links) > 250:
            raise LabError("at most 250 links")
        try:
            for host in self.hosts:
                _sh("ip", "netns", "add", self.ns(host))
                _sh("ip", "-n", self.ns(host), "link", "set", "lo", "up")
            for i, (a, b) in enumerate(self.links, start=1):
                link = Link(a, b, i, f"cc{self.tag}l{i}a", f"cc{self.tag}l{i}b")
                self._links[frozenset((a, b))] = link
                _sh(
                    "ip",
                    "link",
                    "add",
                    link.dev_a,
                    "netns",
                    self.ns(a),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    link.dev_b,
                    "netns",
                    self.ns(b),
                )
                for host in (a, b):
                    dev, ns = link.device(host), self.ns(host)
                    _sh("ip", "-n", ns, "addr", "add", f"{link.address(host)}/24", "dev", dev)
                    _sh("ip", "-n", ns, "link", "set", dev, "up")
            self._up = True
            self.set_hosts({})
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        for host in self.hosts:
            ns = self.ns(host)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        self._up = False

    def set_hosts(self, names: dict[str, dict[str, str]]) -> None:
        """Per-namespace ``/etc/hosts``: ``{host: {name: address}}`` (plus localhost)."""
        for host in self.hosts:
            folder = NETNS_ETC / self.ns(host)
            folder.mkdir(parents=True, exist_ok=True)
            lines = ["127.0.0.1 localhost", "::1 localhost"]
            lines += [f"{addr} {name}" for name, addr in names.get(host, {}).items()]
            (folder / "hosts").write_text("\n".join(lines) + "\n")

    def argv(self, host: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.argv(host, argv), **kwargs)

    def run(
        self, host: str, argv: Sequence[str], timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.argv(host, argv), timeout=timeout, **kwargs)

    def rate_limit(
        self, host: str, toward: str, rate_mbit: float, *, burst_kb: int = 32, latency_ms: int = 50
    ) -> None:
        """``tc tbf`` on ``host``'s egress toward ``toward`` (bounded queue: excess is dropped)."""
        dev = self.link(host, toward).device(host)
        _sh(
            "ip",
            "netns",
            "exec",
            self.ns(host),
            "tc",
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            f"{rate_mbit}mbit",
            "burst",
            f"{burst_kb}kb",
            "latency",
            f"{latency_ms}ms",
        )

    def qdisc_stats(self, host: str, toward: str) -> str:
        dev = self.link(host, toward).device(host)
        return _sh("ip", "netns", "exec", self.ns(host), "tc", "-s", "qdisc", "show", "dev", dev)

    def describe(self) -> dict[str, Any]:
        return {
            "hosts": {h: self.ns(h) for h in self.hosts},
            "links": [
                {
                    "a": link.a,
                    "b": link.b,
                    link.a: link.address(link.a),
                    link.b: link.address(link.b),
                }
                for link in self._links.values()
            ],
        }


@contextlib.contextmanager
def three_regions(tag: str | None = None) -> Iterator[NetLab]:
    """The standard lab: an origin region and two POP regions, each linked to the origin."""
    lab = NetLab(
        ["origin", "eu", "ap"],
        [("origin", "eu"), ("origin", "ap"), ("eu", "ap")],
        **({"tag": tag} if tag else {}),
    )
    with lab:
        yield lab


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.netlab", description="Build or remove a lab."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the three-region lab and print it as JSON")
    up.add_argument("--tag", default=secrets.token_hex(2))
    down = sub.add_parser("down", help="remove a lab by tag")
    down.add_argument("--tag", required=True)
    args = parser.parse_args(argv)
    lab = NetLab(
        ["origin", "eu", "ap"], [("origin", "eu"), ("origin", "ap"), ("eu", "ap")], tag=args.tag
    )
    try:
        if args.cmd == "up":
            lab.up()
            print(json.dumps({"tag": args.tag, **lab.describe()}, indent=2))
        else:
            lab.down()
    except LabError as exc:
        print(f"netlab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
