"""In real Chromium, at desktop and phone widths: "Fund existing" splits the shortfall
among the selected makers and shows the total as they are picked; an operation partly
cancelled by a maker's deactivation says so, with what remains per side; a withdrawn
operation offers no second withdrawal.

Screenshots go to test-artifacts/screenshots/ (the `screenshot` fixture)."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from liquidity.models import LiquidityOperation
from market.models import Balance, MarketMakerClient, TicketLog
from market.services.market_makers import market_maker_deactivate
from market.tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
PASSWORD = "ops-password-123"
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


@pytest.fixture
def ops_user(django_user_model):
    user = django_user_model.objects.create_user("ops", password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["manage_liquidity", "change_marketmakerclient"])
    )
    return user


def at_both_widths(page, screenshot, name: str):
    """Screenshots at 1280 and 390 px; nothing pushes the page sideways on the phone."""
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def test_fund_existing_split_then_a_deactivation_then_no_second_withdrawal(
    page, live_server, browser_login, screenshot, ops_user
):
    lps = [
        factories.market_maker(LP, EUR="30000"),
        factories.market_maker(LP, EUR="30000"),
        factories.market_maker(LP, EUR="0.02"),
    ]
    factories.market_maker(AH, CEA=10000)
    browser_login(page, "ops", PASSWORD)
    page.goto(f"{live_server.url}/backoffice/liquidity/new/")
    page.get_by_test_id("market-CEA").click()
    page.get_by_label("BID liquidity (EUR)").fill("100000")
    page.get_by_label("ASK liquidity (EUR)").fill("50000")
    page.get_by_role("button", name="Preview").click()
    page.locator('[data-testid="plan-status"][data-status="short"]').wait_for()

    # 1. The shortfall is the total to split; picking makers shows each share and the total.
    fund = page.get_by_test_id("provision-fund-bid")
    assert fund.get_by_label("Amount", exact=True).input_value() == "40042.92"
    assert fund.get_by_test_id("fund-split-total").is_checked()
    summary = fund.get_by_test_id("fund-summary-bid")
    assert summary.inner_text().strip() == "Select market makers to fund."

    def summary_shows(text: str) -> None:
        # A locator filter, not page.wait_for_function: the CSP forbids compiling a
        # predicate in the page.
        fund.get_by_test_id("fund-summary-bid").filter(has_text=text).wait_for()

    for lp in lps:
        fund.get_by_text(lp.code).click()
    fund.get_by_test_id("fund-total").wait_for()
    summary_shows("3 market")
    text = fund.get_by_test_id("fund-summary-bid").inner_text()
    assert "€40,042.92 in total to 3 market makers" in text
    assert "€13,347.64 each" in text
    fund.get_by_test_id("fund-split-each").check()
    summary_shows("€120,128.76 in total")
    assert "€120,128.76 in total" in fund.get_by_test_id("fund-summary-bid").inner_text()
    fund.get_by_test_id("fund-split-total").check()
    summary_shows("€40,042.92 in total")
    fund.scroll_into_view_if_needed()
    at_both_widths(page, screenshot, "fund-existing-split")

    fund.get_by_role("button", name="Fund selected & refresh preview").click()
    page.locator('[data-testid="plan-status"][data-status="ready"]').wait_for()
    notice = page.get_by_test_id("plan-notice").inner_text()
    assert "Funded 3 market makers with €40,042.92 in total" in notice
    available = [Balance.objects.get(holder=lp.holder, asset="EUR").available for lp in lps]
    assert available == [Decimal("43347.64"), Decimal("43347.64"), Decimal("13347.66")]

    # 2. Execute; then one provider is deactivated, which cancels its bids.
    page.get_by_role("button", name="Confirm & Execute").click()
    page.wait_for_url(re.compile(r"/backoffice/liquidity/\d+/$"))
    operation = LiquidityOperation.objects.get()
    market_maker_deactivate(market_maker=lps[0], actor=ops_user, cancel_open_orders=True)
    page.reload()
    assert page.get_by_test_id("state-badge").inner_text().strip() == "Partly cancelled"
    remaining = page.get_by_test_id("remaining")
    assert "cancelled by market-maker deactivation" in remaining.inner_text()
    assert "resting" in page.get_by_test_id("remaining-bid").inner_text()
    assert "CEA still offered" in page.get_by_test_id("remaining-ask").inner_text()
    assert page.get_by_test_id("withdraw").is_visible()  # what rests can still go
    at_both_widths(page, screenshot, "operation-partly-cancelled")

    page.goto(f"{live_server.url}/backoffice/liquidity/")
    assert page.get_by_test_id("state-badge").inner_text().strip() == "Partly cancelled"
    assert page.get_by_test_id("deactivation-note").is_visible()
    at_both_widths(page, screenshot, "operations-partly-cancelled")

    # 3. Withdraw what is left; a second withdrawal is not offered, not even by URL.
    page.goto(f"{live_server.url}/backoffice/liquidity/{operation.pk}/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("withdraw").click()
    page.get_by_test_id("withdraw-refusal").wait_for()
    assert "already withdrawn" in page.get_by_test_id("withdraw-refusal").inner_text()
    assert page.get_by_test_id("withdraw").count() == 0
    tickets = TicketLog.objects.count()
    page.goto(f"{live_server.url}/backoffice/liquidity/{operation.pk}/withdraw/")
    assert "already withdrawn" in page.get_by_test_id("withdraw-refusal").inner_text()
    assert page.get_by_role("button", name="Withdraw liquidity").count() == 0
    at_both_widths(page, screenshot, "withdraw-refused")
    assert TicketLog.objects.count() == tickets
