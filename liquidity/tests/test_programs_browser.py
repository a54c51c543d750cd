"""A liquidity program end to end in real Chromium, as staff and a trader see it: staff
create and activate a program, its ladder shows in the trader's order book, the trader
fills part of it through the order form, staff watch the fill and the replenish arrive on
the program's status page, then stop it and the ladder leaves the book.

The worker does not run in tests: each tick is `program_refresh`, with a clock (`now=`)
past the replenish delay. Screenshots for the docs at desktop and phone widths."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from liquidity import programs
from liquidity.models import LiquidityProgram, ProgramRefresh
from market.models import MarketMakerClient, Order
from market.tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
LP, AH = MarketMakerClient.Type.LIQUIDITY_PROVIDER, MarketMakerClient.Type.ASSET_HOLDER
PASSWORD = "password"
DESKTOP = {"width": 1280, "height": 900}
PHONE_VIEWPORT = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _migrated_rows(migrated_rows):
    """Every browser test starts with the markets and house account (see conftest)."""


def at_both_widths(page, screenshot, name):
    page.set_viewport_size(PHONE_VIEWPORT)
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, name)


def test_staff_run_a_program_a_trader_fills_it_it_replenishes_staff_stop_it(
    browser, live_server, django_user_model, screenshot
):
    ops = django_user_model.objects.create_user("ops", password=PASSWORD, is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="manage_liquidity"))
    factories.market_maker(LP, EUR="100000")
    factories.market_maker(AH, CEA=10000)
    trader = factories.trader("alice", EUR="20000")

    desk = browser.new_context(viewport=DESKTOP).new_page()
    market = browser.new_context(viewport=DESKTOP).new_page()
    for page, user in ((desk, "ops"), (market, "alice")):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    # Staff create and activate the program.
    desk.goto(f"{live_server.url}/backoffice/liquidity/programs/new/")
    desk.get_by_label("Name").fill("CEA standing")
    desk.get_by_label("BID target (EUR)").fill("10000")
    desk.get_by_label("ASK target (EUR)").fill("10000")
    desk.get_by_label("Re-centre tolerance").fill("5")
    desk.get_by_label("Replenish after fills of").fill("30")
    desk.get_by_label("Replenish delay").fill("20")
    desk.get_by_role("button", name="Create program").click()
    desk.get_by_test_id("program-name").wait_for()
    desk.get_by_role("button", name="Activate").click()
    desk.locator('[data-testid="program-state"][data-state="active"]').wait_for()
    program = LiquidityProgram.objects.get()
    assert programs.program_refresh(program_id=program.pk).outcome == "placed"
    desk.get_by_test_id("ladder-row").nth(5).wait_for(timeout=15_000)

    # The trader sees the ladder in the book: three bids below €14.00, three asks above.
    market.goto(f"{live_server.url}/market/CEA/")
    asks, bids = market.get_by_test_id("ask-level"), market.get_by_test_id("bid-level")
    bids.nth(2).wait_for()
    assert [bids.nth(i).get_attribute("data-book-price") for i in range(3)] == [
        "13.97",
        "13.94",
        "13.93",
    ]
    assert [asks.nth(i).get_attribute("data-book-price") for i in range(3)] == [
        "14.03",
        "14.06",
        "14.07",
    ]
    at_both_widths(market, screenshot, "program-ladder-in-the-book")

    # The trader buys 300 at market: more than 30 % of the asks.
    market.locator("label", has=market.locator("input[value=MARKET]")).click()
    market.locator("#id_quantity").fill("300")
    market.get_by_test_id("review-order").click()
    market.get_by_test_id("confirm-order").click()
    market.get_by_test_id("toast").first.wait_for()
    bought = Order.objects.get(owner=trader)
    assert bought.filled_quantity == 300

    # Staff see the fill on the polled status page, without reloading it.
    desk.locator('[data-testid="sold"]', has_text="300 CEA").wait_for(timeout=15_000)
    # Before the delay the program waits; after it, it replenishes.
    filled_at = timezone.now()
    assert programs.program_refresh(program_id=program.pk, now=filled_at) is None
    refresh = programs.program_refresh(
        program_id=program.pk, now=filled_at + timedelta(seconds=21)
    )
    assert refresh.outcome == ProgramRefresh.Outcome.REPLENISHED
    desk.locator('[data-testid="refresh-row"]', has_text="Replenished").wait_for(timeout=15_000)
    at_both_widths(desk, screenshot, "program-status-replenished")

    # The trader's book shows the new ladder, placed around the last trade (€14.03)
    # with the asks' full size again.
    new_asks = refresh.operation.orders.filter(side="SELL")
    best = min(order.price for order in new_asks)
    assert best == refresh.reference_price + Decimal("0.03")
    market.locator(f'[data-testid="ask-level"][data-book-price="{best}"]').wait_for()
    assert asks.first.get_attribute("data-book-price") == str(best)
    at_both_widths(market, screenshot, "program-ladder-replenished")

    # Staff stop the program: its orders leave the book.
    desk.get_by_role("button", name="Stop", exact=True).click()
    desk.get_by_role("button", name="Stop and withdraw").click()
    desk.locator('[data-testid="program-state"][data-state="stopped"]').wait_for()
    market.locator('[data-testid="ask-level"]').first.wait_for(state="detached", timeout=15_000)
    assert market.get_by_test_id("bid-level").count() == 0
    assert not Order.objects.filter(
        ticket__liquidity_operation__program=program, status__in=Order.RESTING
    ).exists()
