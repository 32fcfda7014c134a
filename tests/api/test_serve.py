"""``webapp.serve``: one process serving the API, the docs and the UI on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.live import live_service, stop


def test_serve_one_process(tmp_path: Path) -> None:
    with live_service(tmp_path) as service:
        root = httpx.get(f"{service.base}/", follow_redirects=False)
        assert root.status_code in (302, 307) and root.headers["location"] == "/ui/"
        page = httpx.get(f"{service.base}/ui/", follow_redirects=True)
        assert page.status_code == 200 and "/ui/_nicegui/" in page.text
        assert httpx.get(f"{service.base}/docs").status_code == 200
        assert httpx.get(f"{service.base}/api/studies").json() == []
        assert "autotuner service on http://127.0.0.1:" in service.log.read_text()
        assert stop(service.process, timeout=30) == 0
    assert (tmp_path / "store.db").exists()


def test_serve_with_a_token(tmp_path: Path) -> None:
    with live_service(tmp_path, token="tok") as service:
        assert httpx.get(f"{service.base}/api/studies").status_code == 401
        assert httpx.get(f"{service.base}/api/studies",
                         headers={"Authorization": "Bearer tok"}).status_code == 200
        login = httpx.get(f"{service.base}/ui/new", follow_redirects=False)
        assert login.status_code in (302, 307)
        assert login.headers["location"] == "/ui/login?next=/new"
        assert httpx.get(f"{service.base}/ui/new?token=tok").status_code in (302, 307)
