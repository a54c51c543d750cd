"""The trader's desk in real Chromium: the price chart's candles, the trader's own orders
marked in the book, the book's grouping and depth selectors, changed levels flashing, and
a phone (390 px) that never scrolls sideways. Data is seeded through the order service."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from market.models import Trade
from market.tests import factories
from market.tests.helpers import place
from market.tests.views.test_cash_market_browser import (
    _migrated_rows,  # noqa: F401 (autouse fixture)
    full_page,
    open_market,
    seed_book,
    wait_for_js,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

D = Decimal


@pytest.fixture
def trader(db):
    return factories.trader("alice", EUR="20000", CEA=300)


def seed_price_history(trades: int = 150, *, seed: int = 7) -> None:
    """A random walk of trades around €14 over the last ~5.5 hours (two or three per 5
    minutes): a seller rests an offer
    at the walk's price and a buyer takes it whole, so nothing is left in the book; the
    trades are then dated back along the walk."""
    rng = random.Random(seed)
    seller = factories.trader(CEA=100_000)
    buyer = factories.trader(EUR="5000000")
    price = D("13.70")
    made = []
    for _ in range(trades):
        price = min(max(price + D(rng.randint(-6, 7)) / 100, D("13.20")), D("14.70"))
        quantity = rng.randint(5, 120)
        place(seller, "SELL", price=price, quantity=quantity)
        made += place(buyer, "BUY", price=price, quantity=quantity).trades
    now = timezone.now()
    for index, trade in enumerate(made):
        age = timedelta(seconds=132 * (len(made) - index) - rng.randint(0, 60))
        Trade.objects.filter(pk=trade.pk).update(created_at=now - age)


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_trader_sees_candles_and_their_own_orders_marked_and_reshapes_the_book(
    page, browser_login, live_server, trader, screenshot
):
    seed_price_history()
    seed_book(levels=20, spacing="0.02")
    place(trader, "BUY", price="13.83", quantity=40)
    place(trader, "SELL", price="14.21", quantity=25)
    open_market(page, browser_login, live_server, trader)

    # Candles: bodies and wicks drawn from the trades, with the last price tagged.
    chart = page.get_by_test_id("price-chart")
    assert chart.get_attribute("data-interval") == "5m"
    assert page.locator("[data-testid=candles-svg] [data-testid=candle] rect").count() > 20
    assert page.locator("[data-testid=candle][data-direction=up]").count() > 0
    assert page.locator("[data-testid=candle][data-direction=down]").count() > 0
    assert page.get_by_test_id("chart-last-price").inner_text().startswith("€")

    # The trader's own orders are marked at their levels, and no other level is.
    own_bid = page.locator('[data-testid=bid-level][data-book-price="13.83"]')
    own_ask = page.locator('[data-testid=ask-level][data-book-price="14.21"]')
    assert own_bid.get_by_test_id("own-mark").is_visible()
    assert own_ask.get_by_test_id("own-mark").is_visible()
    assert page.locator("[data-testid=own-mark]:visible").count() == 2
    assert own_bid.inner_text().strip().endswith("€13.83")
    assert page.get_by_test_id("book-spread-row").is_visible()
    full_page(page, screenshot, "trader-desk-desktop")

    # Interval selector: the chart swaps in place.
    page.get_by_test_id("interval-1h").click()
    wait_for_js(page, "document.getElementById('price-chart').dataset.interval === '1h'")
    assert page.locator("[data-testid=candle]").count() >= 6

    # Grouping by 10 ticks (€0.10): bids round down, so the own bid is in the 13.80 level.
    page.get_by_test_id("group-10").click()
    wait_for_js(page, "document.getElementById('order-book').dataset.bookShape === '50-10'")
    grouped_bid = page.locator('[data-testid=bid-level][data-book-price="13.80"]')
    assert grouped_bid.get_by_test_id("own-mark").is_visible()
    prices = page.locator("[data-testid=bid-level]").evaluate_all(
        "levels => levels.map(level => level.dataset.bookPrice)"
    )
    assert all(D(price) % D("0.10") == 0 for price in prices)

    # Depth 10, still grouped; the poll keeps both.
    page.get_by_test_id("depth-10").click()
    wait_for_js(page, "document.getElementById('order-book').dataset.bookShape === '10-10'")
    assert page.get_by_test_id("bid-level").count() <= 10
    assert "group=10" in page.get_by_test_id("order-book").get_attribute("hx-get")

    # Back to the plain book; another trader's order at a level flashes it on the next poll.
    page.get_by_test_id("group-1").click()
    wait_for_js(page, "document.getElementById('order-book').dataset.bookShape === '10-1'")
    place(factories.trader(EUR="5000"), "BUY", price="13.95", quantity=11)
    wait_for_js(
        page,
        "document.querySelector('[data-testid=bid-level][data-book-price=\"13.95\"]')"
        "?.classList.contains('book-level-changed')",
    )
    assert page.locator(".book-level-changed").count() == 1


def test_on_a_phone_nothing_scrolls_sideways(page, browser_login, live_server, trader, screenshot):
    seed_price_history()
    seed_book(levels=20, spacing="0.02")
    place(trader, "BUY", price="13.83", quantity=40)
    page.set_viewport_size({"width": 390, "height": 844})
    open_market(page, browser_login, live_server, trader)
    assert page.locator("[data-testid=candle] rect").count() > 20
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert no_sideways_scroll(page)
    # The chart fills the width and its labels stay inside the card.
    box = page.get_by_test_id("price-chart").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.locator('[data-testid=bid-level][data-book-price="13.83"]').get_by_test_id(
        "own-mark"
    ).wait_for()
    full_page(page, screenshot, "trader-desk-phone")
    page.get_by_test_id("price-chart").screenshot(
        path=str(screenshot(page, "trader-desk-phone").with_name("trader-desk-phone-chart.png"))
    )
    page.get_by_test_id("group-5").click()
    wait_for_js(page, "document.getElementById('order-book').dataset.bookShape === '50-5'")
    assert no_sideways_scroll(page)
