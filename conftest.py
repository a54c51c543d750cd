"""Shared test fixtures: real Chromium through Playwright's sync API.

Browser tests are marked ``@pytest.mark.browser`` and use ``page`` together with
pytest-django's ``live_server``::

    @pytest.mark.browser
    def test_something(page, live_server, django_user_model, screenshot):
        django_user_model.objects.create_user("alice", password="pw-alice-123")
        login(page, live_server, "alice", "pw-alice-123")
        screenshot(page, "something")

Chromium is the distribution's (``/usr/bin/chromium``, or ``$CHROMIUM_PATH``); Playwright never
downloads a browser. Without Chromium the browser tests are skipped, except under CI
(``CI=true``), where a missing browser is an error.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# No deadline per example: property tests assert rules, never time, and under a loaded CI
# machine (pytest-xdist beside Chromium) one slow example is no failure of the rule.
hypothesis_settings.register_profile("project", deadline=None)
hypothesis_settings.load_profile("project")

ROOT = Path(__file__).resolve().parent
SCREENSHOT_DIR = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when there is none on this machine."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(candidate):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_runtest_setup(item):
    """Tests marked `postgres` need PostgreSQL (row locks, LISTEN/NOTIFY, pipelines, killed
    sessions): skipped on SQLite locally, an error under CI, where they must run."""
    if item.get_closest_marker("postgres") is None:
        return
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    message = "needs PostgreSQL (set DATABASE_URL=postgres://…)"
    if _in_ci():
        pytest.fail(f"{item.nodeid} {message}, and CI must run it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def _playwright() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        message = "Chromium not found (apt-get install chromium, or set CHROMIUM_PATH)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        if _in_ci():
            raise
        pytest.skip("playwright is not installed")

    # Playwright's sync API keeps an asyncio event loop running in the main thread, and
    # Django refuses ORM calls from a thread with a running loop. The tests are
    # synchronous code that merely shares the thread, so allow it while Playwright is up.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(_playwright) -> Iterator[object]:
    """One headless Chromium for the whole session."""
    browser = _playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        args=CHROMIUM_ARGS,
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser) -> Iterator[object]:
    """A fresh browser context (own cookies and storage) per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context) -> object:
    """A page in a fresh context. Use with ``live_server``."""
    return context.new_page()


def login(page, live_server, username: str, password: str) -> None:
    """Log in through the real login form and wait until the app has redirected away."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def save_screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page to ``test-artifacts/screenshots/NAME.png`` and return its path."""
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "screenshot"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{safe_name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """``screenshot(page, "name")`` saves ``test-artifacts/screenshots/name.png``."""
    return save_screenshot


@pytest.fixture
def browser_login(live_server) -> Callable[..., None]:
    """``browser_login(page, username, password)``: ``login`` bound to the live server."""

    def _login(page, username: str, password: str) -> None:
        login(page, live_server, username, password)

    return _login


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The order-book cache is keyed by book version, which restarts with every test
    database; clear it so no test sees another test's book."""
    from django.core.cache import caches

    for alias in ("default", "book"):
        caches[alias].clear()
    yield
    for alias in ("default", "book"):
        caches[alias].clear()


@pytest.fixture
def migrated_rows(transactional_db):
    """The markets and house account that migration market.0002 creates, seeded again.

    Transactional tests flush the database; `serialized_rollback` restores the migrated
    rows only on the connection object the test database was set up on, and once a
    browser test has started Playwright's event loop, this thread may be handed another
    one. The same goes for the content types and permissions `post_migrate` creates.
    Everything here is idempotent.

    Every transactional test also asks for `serialized_rollback`: the flush after a test
    without it runs `post_migrate`, which re-creates the content types that the next
    serialized test then fails to restore (a unique-key error that depends on the order
    the tests happen to run in).
    """
    import importlib

    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
        create_permissions(app_config, verbosity=0)
    importlib.import_module("market.migrations.0002_seed_cea_eua_and_house").seed(apps, None)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The seeded markets without price band or slippage limit: the suite's tests of other
    rules place orders anywhere around the reference. The guardrails' own tests set them
    (`market/tests/core/test_limits.py`, `market/tests/services/test_order_limits.py`).
    Transactional tests re-seed the markets (`migrated_rows`) with the production defaults."""
    from market.models import Market

    with django_db_blocker.unblock():
        Market.objects.update(price_band_pct=None, slippage_pct=None)
