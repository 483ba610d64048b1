"""``/docs`` in a real headless Chromium, with every request off the loopback address refused.

Proves that the API documentation page renders from the service's own assets (no CDN), lists
the operations, and that "Try it out" sends a real authenticated call and shows its answer.
Chromium comes from Debian's ``chromium`` package (installed by ``make test-deps``); without it
the test is skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_server import free_port, wait_for_health

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = pytest.mark.requires_plugins("auth_token")

BIN = Path(sys.executable).parent / "mail-proxy"
TOKEN = "docs-page-token-0123456789"


def chromium_path() -> str | None:
    return os.environ.get("MAILPROXY_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    env.update(MAILPROXY_DB=str(tmp_path / "mp.db"), MAILPROXY_API_TOKEN=TOKEN)
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_docs_render_offline_and_try_it_out_calls_the_api(service: str) -> None:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (make test-deps installs Debian's chromium)")
    outside: list[str] = []
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def only_loopback(route: object) -> None:
                request = route.request  # type: ignore[attr-defined]
                if request.url.startswith(service):
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    outside.append(request.url)
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", only_loopback)
            page.goto(f"{service}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/messages/add" in [path.strip() for path in paths]
            assert "/tenants/add" in [path.strip() for path in paths]

            page.click("button.authorize")
            page.locator(".modal-ux input[type=text]").first.fill(TOKEN)
            page.locator(".modal-ux button.authorize").first.click()
            page.locator(".modal-ux button.close-modal").first.click()

            operation = page.locator("#operations-instance-get_instance_status")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            live = operation.locator(".live-responses-table tbody .response-col_status").first
            live.wait_for(timeout=30_000)
            assert live.inner_text().strip() == "200"
            assert '"ok": true' in operation.locator(".live-responses-table").inner_text()
        finally:
            browser.close()
    assert outside == [], f"/docs tried to load from outside the service: {outside}"
