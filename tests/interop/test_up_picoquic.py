"""``clutchcall up --quic-stack picoquic``: origin and POP on picoquic, fed by
``clutchcall publish`` (raw QUIC) and read by ``clutchcall watch`` (WebTransport, aioquic
client, a signed playback URL whose token makes the CONNECT path 500+ bytes long).

This delivered nothing before: picoquic's HTTP/3 refused the Huffman-coded path."""

from __future__ import annotations

from pathlib import Path

import pytest

from clutchcall.streams import Streams
from tests.cli.test_up_watch_publish import publish_and_watch, running_up
from tests.clutchcall.dataplane import decode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_an_all_picoquic_up_delivers_to_a_webtransport_viewer(tmp_path: Path) -> None:
    with running_up(tmp_path, "--quic-stack", "picoquic", "--log-level", "info") as up:
        with Streams(base_url=up["base_url"], api_key=up["api_key"],
                     org_id=up["org_id"]) as streams:  # fmt: skip
            inp, key = streams.live_inputs.create(name="picoquic", ingest="fmp4")
            ticket = inp.signed_playback_url(ttl_seconds=600)
        assert len(ticket.url) > 300
        out = tmp_path / "watched.mp4"
        watched, published = publish_and_watch(up, inp.namespace, key, ticket.url, out)
        log = (tmp_path / "up.log").read_text()
    # Both nodes served on picoquic: the viewer's session at the POP, the publisher's
    # at the origin.
    assert "transport=picoquic/webtransport/moqt-16" in log, log[-3000:]
    assert "transport=picoquic/moqt-16" in log, log[-3000:]
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "init segment (video)" in watched.stdout
    assert published.returncode == 0, published.stdout
    decoded = decode(out)
    assert decoded.errors == "" and decoded.frames >= 60
