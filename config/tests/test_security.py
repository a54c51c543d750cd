"""Deployment security: `check --deploy` with production settings, the
security headers on every kind of response, and the Content-Security-Policy in Chromium.

The policy forbids inline scripts and `eval`. htmx evaluates JavaScript in `hx-trigger`
filters (`[document.visibilityState === 'visible']`) with Function(), so the templates use
none and htmx runs with `allowEval: false`; the browser tests below drive the pages that
poll and preview and fail on any violation Chromium reports.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

from market.models import MarketMakerClient
from market.services.orders import order_place, order_request_parse
from market.tests import factories

ROOT = Path(__file__).resolve().parents[2]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
PASSWORD = "password"  # factories.UserFactory


def production_env(**overrides) -> dict[str, str]:
    """The environment of a production process (as in .ci/run's deployment check): this
    process's, without what the test run adds (test settings, Playwright's
    DJANGO_ALLOW_ASYNC_UNSAFE)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DJANGO_SETTINGS_MODULE",
            "DEBUG",
            "DEMO",
            "SECRET_KEY",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "SECURE_SSL_REDIRECT": "True",
            "SECURE_HSTS_SECONDS": "31536000",
            "ALLOWED_HOSTS": "market.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://market.example.com",
            **overrides,
        }
    )
    return env


# --- manage.py check --deploy -------------------------------------------------------------


def test_check_deploy_passes_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_check_deploy_does_warn_without_hsts():
    """The check above is not vacuous: the same settings without HSTS and the SSL
    redirect do warn (security.W004, security.W008)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(SECURE_SSL_REDIRECT="False", SECURE_HSTS_SECONDS="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


# --- headers ----------------------------------------------------------------------------


def test_the_policy_is_the_strict_one():
    assert settings.CONTENT_SECURITY_POLICY == CSP
    assert "unsafe-eval" not in CSP
    assert "config.middleware.ContentSecurityPolicyMiddleware" in settings.MIDDLEWARE


@pytest.fixture
def trader_client(db):
    client = Client()
    client.force_login(factories.trader().user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "htmx", "status"),
    [
        ("/", False, 200),
        ("/accounts/login/", False, 200),
        ("/market/CEA/", False, 200),
        ("/market/CEA/book/", True, 200),
        ("/market/CEA/orders/", True, 200),
        ("/backoffice/liquidity/new/", False, 403),
        ("/api/v1/liquidity/operations", False, 401),
        ("/api/v1/openapi.json", False, 200),
        ("/no-such-page/", False, 404),
    ],
)
def test_every_kind_of_response_carries_csp_and_frame_options(trader_client, path, htmx, status):
    if path == "/api/v1/liquidity/operations":
        trader_client = Client()  # anonymous: the API's 401
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = trader_client.get(path, **headers)
    assert response.status_code == status
    assert response["Content-Security-Policy"] == CSP
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_a_304_poll_and_a_post_carry_the_policy_too(trader_client):
    page = trader_client.get("/market/CEA/book/", HTTP_HX_REQUEST="true")
    not_modified = trader_client.get(
        "/market/CEA/book/", HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=page["ETag"]
    )
    assert not_modified.status_code == 304
    assert not_modified["Content-Security-Policy"] == CSP
    posted = trader_client.post("/market/CEA/orders/preview/", {"side": "BUY"})
    assert posted.status_code == 200
    assert posted["Content-Security-Policy"] == CSP


@pytest.mark.django_db
def test_no_hsts_over_plain_http_or_without_the_setting(trader_client):
    assert "Strict-Transport-Security" not in trader_client.get("/")
    # settings_test runs with SECURE_HSTS_SECONDS=0 (development): none even over HTTPS.
    assert "Strict-Transport-Security" not in trader_client.get("/", secure=True)


@pytest.mark.django_db
@override_settings(
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_HSTS_PRELOAD=True,
    SECURE_SSL_REDIRECT=True,
)
def test_behind_https_responses_carry_hsts(trader_client):
    hsts = "max-age=31536000; includeSubDomains; preload"
    secure = trader_client.get("/market/CEA/", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == hsts
    assert secure["Content-Security-Policy"] == CSP
    assert secure["X-Frame-Options"] == "DENY"

    # Behind the TLS-terminating proxy: SECURE_PROXY_SSL_HEADER marks the request secure.
    proxied = trader_client.get("/market/CEA/", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == hsts

    # Plain HTTP is redirected to HTTPS, and gets no HSTS header (RFC 6797 §7.2).
    plain = trader_client.get("/market/CEA/")
    assert plain.status_code == 301
    assert plain["Location"].startswith("https://")
    assert "Strict-Transport-Security" not in plain
    assert plain["Content-Security-Policy"] == CSP


# The checkout's own .env is not read: what counts is the environment given.
SHOW_SETTINGS = (
    "import environ; environ.Env.read_env = classmethod(lambda *args, **kwargs: None); "
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({name: getattr(s, name) for name in ("
    "'DEBUG', 'DEMO', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY'"
    ")}))"
)


def settings_with(env: dict[str, str]) -> dict:
    """The settings a process started with `env` (and no .env) ends up with."""
    result = subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_cookies_are_secure_and_http_only():
    production = settings_with(production_env(DEMO="False"))
    assert production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    assert production["SESSION_COOKIE_HTTPONLY"]
    assert production["DEBUG"] is False and production["DEMO"] is False


def env_example() -> dict[str, str]:
    """The variables `.env.example` sets (what `make run` copies to a fresh .env)."""
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def test_make_run_serves_the_demo_without_debug_over_plain_http():
    """A fresh `make run`: DEBUG off (plain error pages), the demo on, and cookies that
    travel over the plain HTTP of 127.0.0.1 (else nobody could log in)."""
    example = env_example()
    assert example["DEBUG"] == "False" and example["DEMO"] == "True"
    env = {
        key: value
        for key, value in production_env().items()
        if key not in {"SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "ALLOWED_HOSTS"}
        and key not in {"CSRF_TRUSTED_ORIGINS", "SECRET_KEY"}
    }
    made_run = settings_with({**env, **example})
    assert made_run["DEBUG"] is False and made_run["DEMO"] is True
    assert not made_run["SESSION_COOKIE_SECURE"] and not made_run["CSRF_COOKIE_SECURE"]
    assert "DEBUG := False" in (ROOT / "Makefile").read_text()  # whatever an old .env says


def test_demo_is_off_by_default_and_independent_of_debug():
    env = {key: value for key, value in production_env().items() if key != "DEMO"}
    assert settings_with(env)["DEMO"] is False
    assert settings_with({**env, "DEBUG": "True"})["DEMO"] is False


def test_no_inline_script_in_any_template():
    """Every <script> loads a file of ours; no inline handler attributes, no hx-on."""
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        html = template.read_text()
        for match in re.finditer(r"<script\b[^>]*>", html):
            if "src=" not in match.group(0):
                offenders.append(f"{template}: {match.group(0)}")
        for pattern in (r"\son[a-z]+\s*=", r"\shx-on", r"javascript:", r"js:", r"hx-vars"):
            if re.search(pattern, html):
                offenders.append(f"{template}: {pattern}")
        for trigger in re.findall(r'hx-trigger="([^"]*)"', html):
            # An event filter `event[...]` is JavaScript; `target:input[type=radio]` is CSS.
            if re.search(r"(^|,)\s*[\w:.-]+(\s+\d+\w*)?\s*\[", trigger):
                offenders.append(f"{template}: hx-trigger filter {trigger!r}")
    assert offenders == []


# --- the policy in Chromium ---------------------------------------------------------------

# Chromium reports violations both on the console and as `securitypolicyviolation` events;
# the init script (run over DevTools, outside the policy) records the events and htmx's
# own complaint when a template asks it to eval.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "") + " " + e.sample);
});
document.addEventListener("htmx:evalDisallowedError", (e) => {
  window.__violations.push("htmx:evalDisallowedError");
});
"""


@pytest.fixture
def watched_page(context):
    """A page whose console messages, page errors and CSP violations are collected."""
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    page.messages = []
    page.on("console", lambda message: page.messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: page.messages.append(f"pageerror: {error}"))
    return page


def csp_problems(page) -> list[str]:
    recorded = page.evaluate("window.__violations || []")
    logged = [
        message
        for message in page.messages
        if "Refused to" in message
        or "Content Security Policy" in message
        or "unsafe-eval" in message
        or "evalDisallowed" in message
        or message.startswith("pageerror")
    ]
    return recorded + logged


def place(holder, side, **fields):
    request = order_request_parse(market_code="CEA", side=side, order_type="LIMIT", **fields)
    return order_place(owner=holder, request=request)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_cash_market_polls_and_previews_without_csp_violation(
    watched_page, live_server, browser_login, migrated_rows
):
    page = watched_page
    provider = factories.market_maker(LP, EUR="100000")
    holder = factories.market_maker(AH, CEA=5000)
    place(provider.holder, "BUY", price="13.90", quantity=50)
    place(holder.holder, "SELL", price="14.10", quantity=60)
    trader = factories.trader("csp-trader", EUR="10000", CEA=100)

    browser_login(page, trader.user.username, PASSWORD)
    response = page.goto(f"{live_server.url}/market/CEA/")
    assert response.headers["content-security-policy"] == CSP
    page.wait_for_selector("#order-book")
    assert page.evaluate("htmx.config.allowEval") is False
    # The 304 rule of the page's htmx-config survived the allowEval setting.
    assert page.evaluate("htmx.config.responseHandling[1].code") == "304"

    # Polling runs (a 304 for the unchanged book) ...
    with page.expect_response(lambda r: "/book/" in r.url and r.status == 304):
        pass
    # ... and brings a changed book.
    place(provider.holder, "BUY", price="13.95", quantity=7)
    with page.expect_response(lambda r: "/book/" in r.url and r.status == 200, timeout=10_000):
        pass
    page.locator("[data-testid=bid-level][data-book-price='13.95']").wait_for()

    # Typing previews (the `input` trigger) ...
    with page.expect_response(lambda r: "/orders/preview/" in r.url):
        page.locator("#id_price").fill("14.10")
        page.locator("#id_quantity").fill("5")
    page.locator("[data-testid=order-preview][data-valid='1']").wait_for()
    # ... and so does a radio (the `change` trigger): now a sell.
    with page.expect_response(lambda r: "/orders/preview/" in r.url):
        page.locator("label", has=page.locator("input[name=side][value=SELL]")).click()
    page.get_by_text("Proceeds").wait_for()
    # Review, MAX and a placement swap the panel and fire `market-changed`.
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("order-confirm").wait_for()
    with page.expect_response(lambda r: "/book/" in r.url and r.status == 200):
        page.get_by_test_id("confirm-order").click()
    page.get_by_test_id("toast").first.wait_for()
    with page.expect_response(lambda r: "/book/" in r.url):  # one more poll
        pass

    assert csp_problems(page) == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_book_polls_only_while_the_tab_is_visible(
    watched_page, live_server, browser_login, migrated_rows
):
    """The eval-free replacement of `every 2s [document.visibilityState === 'visible']`:
    cash_market.js cancels the poll while the page is hidden, and the book refreshes as
    soon as it is visible again."""
    page = watched_page
    trader = factories.trader("csp-watcher", EUR="100")
    browser_login(page, trader.user.username, PASSWORD)
    # The page's timers run on a clock the test moves: no waiting on the wall clock.
    page.clock.install()
    page.goto(f"{live_server.url}/market/CEA/")
    page.wait_for_selector("#order-book")
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/book/" in request.url else 0)
    with page.expect_response(lambda r: "/book/" in r.url):
        page.clock.run_for(2_100)

    visibility = """(state) => {
        Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
        Object.defineProperty(document, "hidden", {value: state !== "visible",
                                                   configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    page.evaluate(visibility, "hidden")
    polls.clear()
    page.clock.run_for(6_500)  # three poll intervals and more
    assert polls == []

    with page.expect_request(lambda r: "/book/" in r.url, timeout=1000):
        page.evaluate(visibility, "visible")  # at once, not at the next interval
    assert csp_problems(page) == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_back_office_admin_and_api_docs_without_csp_violation(
    watched_page, live_server, browser_login, migrated_rows
):
    page = watched_page
    factories.market_maker(LP, EUR="200000")
    factories.market_maker(AH, CEA=10000)
    staff = factories.StaffFactory(username="csp-staff")
    browser_login(page, staff.username, PASSWORD)

    # Create Liquidity: preview a plan (HTMX swap), then cancel it.
    response = page.goto(f"{live_server.url}/backoffice/liquidity/new/")
    assert response.headers["content-security-policy"] == CSP
    assert page.evaluate("htmx.config.allowEval") is False
    page.get_by_test_id("market-CEA").click()
    page.get_by_label("BID liquidity (EUR)").fill("10000")
    page.get_by_label("ASK liquidity (EUR)").fill("5000")
    with page.expect_response(lambda r: "/backoffice/liquidity/preview/" in r.url):
        page.get_by_role("button", name="Preview").click()
    page.locator('[data-testid="plan-status"][data-status="ready"]').wait_for()

    # The market makers, filtered through HTMX (hx-get on change).
    page.goto(f"{live_server.url}/backoffice/market-makers/")
    with page.expect_response(lambda r: "/backoffice/market-makers/?" in r.url):
        page.locator("#id_mm_type").select_option("ASSET_HOLDER")
    page.get_by_test_id("maker-row").first.wait_for()
    page.goto(f"{live_server.url}/backoffice/liquidity/")
    page.get_by_test_id("operations").wait_for()

    # The Django admin (its JavaScript is all in files) ...
    page.goto(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/admin/market/marketmakerclient/")
    page.locator("#action-toggle").check()  # admin/js/actions.js runs
    page.get_by_text("2 of 2 selected").wait_for()
    page.goto(f"{live_server.url}/admin/market/marketmakerclient/add/")
    page.locator("#id_name").wait_for()

    # ... and the API's Swagger UI, served from our own static files.
    page.goto(f"{live_server.url}/api/v1/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    page.wait_for_load_state("networkidle")  # every script and style it loads has run
    assert csp_problems(page) == []


def test_docs_use_local_swagger_files(db):
    """With `ninja` installed, the docs page loads Swagger UI from our static files (a CDN
    would be refused by `script-src 'self'`), with no inline script."""
    html = Client().get("/api/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn.jsdelivr.net" not in html
    assert "<script>" not in html
