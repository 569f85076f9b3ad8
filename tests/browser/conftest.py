"""Pages in a real browser: Playwright driving Debian's chromium (no browser download) against
the real stack (gunicorn + Celery worker, tests/e2e). Every request to an address other than
loopback is aborted and recorded; each test asserts there were none."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.e2e.conftest import Stack, stack  # noqa: F401 - the stack fixture, both stacks

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _missing(msg: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{msg} and REQUIRE_SERVICES=1: the browser tests must run", pytrace=False)
    pytest.skip(f"BROWSER TESTS NOT RUN: {msg} (apt-get install -y chromium; "
                "pip install -e '.[dev]')")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _missing(f"playwright is not installed ({exc})")
    if not os.path.exists(CHROMIUM):
        _missing(f"chromium is not installed at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-default-apps"])
        yield b
        b.close()


class Browser:
    """One signed-out browser context on the stack, recording outside requests."""

    def __init__(self, browser: Any, on: Stack) -> None:
        self.stack, self.outside = on, []
        self.context = browser.new_context(base_url=on.base, accept_downloads=True,
                                           viewport={"width": 1200, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)

    def _route(self, route: Any) -> None:
        host = urlparse(route.request.url).hostname or ""
        if host in LOOPBACK:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def sign_in(self, key: str | None = None) -> None:
        self.page.goto("/signin")
        self.page.fill("#api_key", key or self.stack.key)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/jobs")

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def web(browser: Any, stack: Stack) -> Iterator[Browser]:  # noqa: F811
    b = Browser(browser, stack)
    yield b
    outside = list(b.outside)
    b.close()
    assert outside == [], f"the pages asked for outside addresses: {outside}"
