"""The "Export CSV" links in real Chromium: on the operations page after filtering by
HTMX (the link follows the filters and downloads a file), on the market makers page (the
link beside the filters follows them too) and on the audit tickets' changelist; each page
at desktop and phone widths.

Screenshots go to test-artifacts/screenshots/ (the `screenshot` fixture)."""

import csv
import io
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from liquidity.services import liquidity_execute, liquidity_request_parse
from market.models import MarketMakerClient
from market.tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
PASSWORD = "export-password-123"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


@pytest.fixture
def desk(django_user_model):
    """Back-office staff: liquidity, market makers and reading the audit tickets."""
    user = django_user_model.objects.create_user("desk", password=PASSWORD, is_staff=True)
    for codename in ("manage_liquidity", "change_marketmakerclient", "view_ticketlog"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def operation(user, market: str):
    request = liquidity_request_parse(
        market_code=market, bid_amount_eur="2000", ask_amount_eur="1000"
    )
    return liquidity_execute(request=request, user=user)


def both_widths(page, screenshot, name: str):
    """Screenshots at desktop and phone widths; on a phone nothing pushes the page
    sideways."""
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    screenshot(page, f"{name}-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_export_links_follow_the_filters_and_download_a_csv(
    page, live_server, browser_login, desk, screenshot
):
    factories.market_maker(LP, EUR="100000")
    factories.market_maker(AH, CEA=5000, EUA=5000)
    cea = operation(desk, "CEA")
    operation(desk, "EUA")
    browser_login(page, "desk", PASSWORD)

    # Operations: filter by HTMX, then the link carries the filter and downloads a file.
    page.goto(f"{live_server.url}/backoffice/liquidity/")
    page.get_by_label("Market").select_option("CEA")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/backoffice/liquidity/?*market=CEA*")
    page.get_by_test_id("operation-row").first.wait_for()
    assert page.get_by_test_id("operation-row").count() == 1
    export = page.get_by_role("link", name="Export CSV")
    assert "market=CEA" in export.get_attribute("href")
    with page.expect_download() as download_info:
        export.click()
    download = download_info.value
    assert download.suggested_filename.startswith("liquidity-operations-")
    assert download.suggested_filename.endswith(".csv")
    body = Path(download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["Ticket"] for row in rows] == [cea.ticket.ticket_id]
    both_widths(page, screenshot, "export-operations")

    # Market makers: the filters are outside the table HTMX swaps; the link follows them.
    page.goto(f"{live_server.url}/backoffice/market-makers/")
    page.get_by_label("Type").select_option(AH)
    # (A selector, not a JavaScript predicate: the site's CSP forbids eval.)
    page.locator('#makers-export[href*="mm_type=ASSET_HOLDER"]').wait_for()
    assert page.get_by_test_id("maker-row").count() == 1
    assert page.get_by_role("link", name="Export CSV").count() == 1
    both_widths(page, screenshot, "export-market-makers")

    # Audit tickets in the admin.
    page.goto(f"{live_server.url}/admin/market/ticketlog/?action_type=LIQUIDITY_CREATED")
    assert page.locator("#result_list tbody tr").count() == 2
    link = page.get_by_role("link", name="Export CSV")
    assert link.get_attribute("href") == (
        "/admin/market/ticketlog/export/?action_type=LIQUIDITY_CREATED"
    )
    both_widths(page, screenshot, "export-audit-tickets")
