"""What the browser tests share: Debian's chromium driven by playwright, the site served locally.

A test module wraps :func:`serve` and :func:`launch` in module-scoped
fixtures, so one chromium and one server serve all its tests. No
``playwright install``: chromium comes from Debian (``scripts/setup-system.sh``
installs it). The site is served by ``http.server`` on 127.0.0.1 in a thread;
the browser reaches nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
NO_CHROMIUM = f"{CHROMIUM} missing: install Debian's chromium (scripts/setup-system.sh does)"

T = TypeVar("T", bound=Callable[..., Any])


def needs_chromium(test: T) -> T:
    """Skip ``test`` only when chromium is missing; browser tests share one xdist worker (``--dist loadgroup``)."""
    test = pytest.mark.skipif(not CHROMIUM.is_file(), reason=NO_CHROMIUM)(test)
    return pytest.mark.xdist_group("browser")(test)  # type: ignore[no-any-return]


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` on http://127.0.0.1:<free port>/ while the context lasts."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@contextlib.contextmanager
def launch(home: Path) -> Iterator[Any]:
    """A headless chromium with its profile under ``home`` (an empty folder) while the context lasts."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install -e '.[test]'")
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS,
                                      env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
        try:
            yield launched
        finally:
            launched.close()


def shot(page: Any, name: str) -> None:
    """A full-page screenshot under ``artifacts/screenshots/`` for a human to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
