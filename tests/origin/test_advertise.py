"""The address an origin puts in its node record: one the other nodes can dial.

Debian maps the host name to 127.0.1.1; an origin bound to a wildcard address
must not advertise that (POPs elsewhere would dial nowhere). It advertises the
bound address when it is specific, else the interface that routes to Redis
(``mesh.advertise``), else ``--advertise``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import running_origin


@pytest.fixture
def debian_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    # The host name resolves to 127.0.1.1, as /etc/hosts has it on Debian.
    monkeypatch.setattr(socket, "gethostname", lambda: "127.0.1.1")


@pytest.mark.usefixtures("debian_hostname")
async def test_wildcard_bind_advertises_the_route_to_redis(tmp_path: Path, redis_url: str) -> None:
    async with running_origin(tmp_path, redis_url, quic="0.0.0.0:0", rtmp="") as origin:
        assert origin.node.topology is not None
        advertised = origin.node.topology.node.quic
        assert advertised == f"127.0.0.1:{origin.node.quic_address[1]}"


@pytest.mark.usefixtures("debian_hostname")
async def test_specific_bind_is_advertised_as_is(tmp_path: Path, redis_url: str) -> None:
    async with running_origin(tmp_path, redis_url, quic="127.0.0.1:0", rtmp="") as origin:
        assert origin.node.topology is not None
        assert origin.node.topology.node.quic == f"127.0.0.1:{origin.node.quic_address[1]}"


async def test_advertise_setting_wins(tmp_path: Path, redis_url: str) -> None:
    async with running_origin(
        tmp_path, redis_url, quic="0.0.0.0:0", rtmp="", advertise="origin.example:4443"
    ) as origin:
        assert origin.node.topology is not None
        assert origin.node.topology.node.quic == "origin.example:4443"
