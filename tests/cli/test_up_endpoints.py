"""``clutchcall up`` prints and writes every endpoint it opens, the nodes' /metrics too."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.test_up_watch_publish import running_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def test_up_prints_and_writes_every_metrics_endpoint(tmp_path: Path) -> None:
    with running_up(tmp_path) as info:
        urls = {k: info[k] for k in ("metrics_url", "origin_metrics_url", "pop_metrics_url")}
        assert len(set(urls.values())) == 3, urls
        printed = (tmp_path / "up.log").read_text()
        bodies = {}
        for key, url in urls.items():
            assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), url
            assert url in printed, (key, printed)
            response = httpx.get(url, timeout=5)
            assert response.status_code == 200, (key, response.text)
            bodies[key] = response.text
        for key in ("base_url", "publish_url", "relay_url", "rtmp_url", "cafile"):
            assert info[key] in printed, key
    assert "clutchcall_control_requests_total" in bodies["metrics_url"]
    assert 'clutchcall_node_info{node="origin-up"' in bodies["origin_metrics_url"]
    assert 'clutchcall_node_info{node="pop-up"' in bodies["pop_metrics_url"]
