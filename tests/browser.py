"""A headless Debian Chromium driven by Playwright, shut off from every host but loopback.

``browser_page()`` launches ``/usr/bin/chromium`` (Playwright never downloads a browser of
its own here: there is no internet at run time), opens one page, and records what a test
asks about a page: console errors and uncaught exceptions, every request, every response,
and the requests to any other host, which are aborted before they leave. Screenshots go
to ``var/test-screenshots/`` (git-ignored), kept after the run for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "var" / "test-screenshots"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
LOCAL_SCHEMES = frozenset({"data", "blob", "file", "about"})
WAIT_MS = 90_000
"""How long a map page may take to draw (WebGL on the CPU, 2 cores, tests beside)."""
CHROMIUM_ARGS = (
    "--no-sandbox",  # tests run as root in the sandbox, where Chromium's own sandbox cannot
    "--disable-dev-shm-usage",
    "--disable-gpu",
    # WebGL for MapLibre's pages, on the CPU: ANGLE over SwiftShader (Debian ships its
    # Vulkan ICD), asked for here rather than left to Playwright's and Chromium's defaults.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
)


def chromium() -> str | None:
    """Debian's Chromium (``make install`` installs it through scripts/sysdeps.sh)."""
    return shutil.which("chromium")


requires_chromium = pytest.mark.skipif(
    chromium() is None, reason="needs Debian's chromium on PATH (make install installs it)"
)


def is_local(url: str) -> bool:
    """True for loopback URLs and for those that never touch the network (data:, file:)."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or (parts.hostname or "") in LOOPBACK


@dataclass(frozen=True)
class Reply:
    url: str
    status: int
    content_type: str


@dataclass
class BrowserPage:
    """One page of a headless Chromium, with what it did."""

    page: object
    """The Playwright ``Page`` (typed loosely: playwright is a test-only dependency)."""
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    responses: list[Reply] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    """Requests to a host other than loopback: aborted, and listed here."""

    def screenshot(self, name: str) -> Path:
        """Save a PNG of the page under ``var/test-screenshots/``; returns its path."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path

    def assert_clean(self) -> None:
        """No console error, no uncaught exception, no request beyond loopback."""
        assert not self.blocked, f"requests left loopback: {self.blocked}"
        assert all(is_local(u) for u in self.requests), self.requests
        assert not self.console_errors, self.console_errors


@contextmanager
def browser_page(width: int = 1024, height: int = 768) -> Iterator[BrowserPage]:
    """A fresh headless Chromium page; skips the test when Chromium is not installed."""
    executable = chromium()
    if executable is None:
        pytest.skip("needs Debian's chromium on PATH (make install installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            seen = BrowserPage(page=page)

            def route(route: object) -> None:
                url = route.request.url  # type: ignore[attr-defined]
                if is_local(url):
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    seen.blocked.append(url)
                    route.abort("blockedbyclient")  # type: ignore[attr-defined]

            context.route("**/*", route)
            page.on("request", lambda r: seen.requests.append(r.url))
            page.on(
                "response",
                lambda r: seen.responses.append(
                    Reply(r.url, r.status, r.headers.get("content-type", ""))
                ),
            )
            page.on(
                "console",
                lambda m: (
                    seen.console_errors.append(f"{m.text} @ {m.location}")
                    if m.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda e: seen.console_errors.append(f"uncaught: {e}"))
            yield seen
        finally:
            browser.close()


def open_map(seen: BrowserPage, url: str, token: str | None = None) -> Any:
    """Open a web map page (``/maps/{id}``) signed in with ``token`` (kept where the page
    keeps it), and wait until it is drawn and the network is quiet; the Playwright page."""
    page: Any = seen.page
    if token is not None:
        page.add_init_script(f"sessionStorage.setItem('spatial.token', {token!r})")
    page.goto(url)
    # (no wait_for_function: its predicate is eval'd, which the pages' CSP forbids)
    page.locator("body[data-state='drawn']").wait_for(state="attached", timeout=WAIT_MS)
    page.wait_for_load_state("networkidle")
    return page
