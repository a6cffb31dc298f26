"""/docs (Swagger UI) and /redoc (ReDoc) render with the network cut off: every asset
they load is served by the control plane itself, none by a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.web.conftest import UpStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = UpStack(tmp_path_factory.mktemp("docs"))
    try:
        yield str(stack.wait_running()["base_url"])
    finally:
        stack.stop()


def _offline(page: Any, base_url: str) -> tuple[list[str], list[str]]:
    """Abort every request that does not go to our server; returns (served, refused)."""
    ours = urlsplit(base_url).netloc
    served: list[str] = []
    refused: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if urlsplit(url).netloc == ours or url.startswith("data:"):
            served.append(url)
            r.continue_()
        else:
            refused.append(url)
            r.abort("internetdisconnected")

    page.route("**/*", route)
    return served, refused


def test_swagger_ui_renders_offline(page: Any, base_url: str) -> None:
    served, refused = _offline(page, base_url)
    page.goto(f"{base_url}/docs")
    page.wait_for_selector(".opblock-tag-section")
    operations = page.locator(".opblock .opblock-summary-path")
    page.wait_for_function("document.querySelectorAll('.opblock').length > 5")
    paths = {operations.nth(i).inner_text().strip() for i in range(operations.count())}
    assert "/v1/live_inputs" in {p.replace("\u200b", "") for p in paths}, paths
    assert refused == [], refused
    assert any(u.endswith("/docs-assets/swagger-ui-bundle.js") for u in served), served
    assert any(u.endswith("/openapi.json") for u in served), served


def test_redoc_renders_offline(page: Any, base_url: str) -> None:
    served, refused = _offline(page, base_url)
    page.goto(f"{base_url}/redoc")
    page.wait_for_selector("h1:has-text('ClutchCall Streams control plane')")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached")
    assert refused == [], refused
    assert any(u.endswith("/docs-assets/redoc.standalone.js") for u in served), served


def test_docs_pages_may_load_nothing_from_elsewhere(base_url: str) -> None:
    for path in ("/docs", "/redoc"):
        response = httpx.get(base_url + path, timeout=10)
        assert response.status_code == 200, path
        assert "cdn.jsdelivr.net" not in response.text, path
        assert "fonts.googleapis" not in response.text, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:" in csp, csp
