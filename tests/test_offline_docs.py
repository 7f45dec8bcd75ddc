"""GET /docs draws with no network: Swagger UI's assets are served by the service itself, with
no API key (like /openapi.json), while every endpoint keeps its key check."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers.browser import EXTERNAL_LOAD, render
from helpers.serve import build_store, start_serve, write_params

from pipeline.api.app import create_app
from pipeline.api.docs import ASSETS

URL = re.compile(r"(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.I)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(build_store(tmp_path))) as client:
        yield client


def test_docs_page_references_only_its_own_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL_LOAD.search(page.text)
    assert "cdn.jsdelivr.net" not in page.text and "fastapi.tiangolo.com" not in page.text
    assert '"validatorUrl": null' in page.text  # the badge would call validator.swagger.io
    loaded = URL.findall(page.text)
    assert sorted(loaded) == sorted(f"/docs/assets/{name}" for name in ASSETS)


@pytest.mark.parametrize(("name", "kind"), sorted(ASSETS.items()))
def test_assets_are_served_without_a_key(client: TestClient, name: str, kind: str) -> None:
    response = client.get(f"/docs/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == kind
    assert len(response.content) > 500


def test_only_the_listed_assets_are_public(client: TestClient) -> None:
    # Unlisted names under the asset route still need a key: the guard knows exact paths.
    assert client.get("/docs/assets/LICENSE").status_code == 401
    assert client.get("/docs/assets/..%2F..%2Fapp.py").status_code == 401
    assert client.get("/openapi.json").status_code == 200  # as before: the schema is public
    assert client.get("/stats").status_code == 401
    assert client.get("/redoc").status_code == 401  # off (it would load from a CDN)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    """`pipeline serve` on loopback; its URL."""
    params = write_params(build_store(tmp_path), tmp_path)
    proc, url, _ = start_serve(params, tmp_path)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_docs_draw_the_operations_in_chromium_offline(live_server: str, tmp_path: Path) -> None:
    assert httpx.get(live_server + "/docs", timeout=10).status_code == 200
    dom = render(live_server + "/docs", screenshot=tmp_path / "docs.png")
    # Swagger UI renders one block per operation from /openapi.json; none when its script
    # cannot load (the CDN page offline).
    operations = re.findall(r'id="operations-[^"]+"', dom)
    assert len(operations) >= 10, dom[-2000:]
    assert 'id="operations-search-' in dom
    assert (tmp_path / "docs.png").stat().st_size > 20_000
