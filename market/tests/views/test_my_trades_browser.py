"""The trader's desk in real Chromium: a resting order filled by someone else toasts once
on the cash market page, the fill shows in My trades as maker, and the CSV and the
statement download; at 390 px nothing scrolls sideways."""

import csv
import importlib
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps as django_apps

from market.models import Balance, Trade
from market.services.orders import order_place, order_request_parse
from market.tests import factories
from market.tests.views.test_cash_market_browser import wait_for_js

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

D = Decimal
PASSWORD = "password"  # factories.UserFactory
NOTICES = "/market/my-trades/notices/"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _migrated_rows(transactional_db):
    importlib.import_module("market.migrations.0002_seed_cea_eua_and_house").seed(
        django_apps, None
    )


def place(holder, side, *, market="CEA", order_type="LIMIT", **fields):
    request = order_request_parse(market_code=market, side=side, order_type=order_type, **fields)
    return order_place(owner=holder, request=request)


def count_fill_toasts(page) -> None:
    """Count every fill toast ever added to the page's toast region (they dismiss
    themselves after a few seconds, so counting what is shown would not do)."""
    page.evaluate(
        """() => {
            window.fillToasts = 0;
            new MutationObserver(records => records.forEach(record =>
                record.addedNodes.forEach(node => {
                    if (node.nodeType === 1 && node.matches("[data-testid=fill-toast]")) {
                        window.fillToasts += 1;
                    }
                })
            )).observe(document.getElementById("toasts"), {childList: true});
        }"""
    )


def is_notice_poll(status):
    return lambda response: NOTICES in response.url and response.status == status


def no_sideways_scroll(page) -> None:
    wait_for_js(page, "document.documentElement.scrollWidth <= window.innerWidth")


def read_download(download) -> list[list[str]]:
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_a_passive_fill_toasts_once_shows_in_my_trades_and_downloads(
    page, browser_login, live_server, screenshot
):
    alice = factories.trader("alice", EUR="20000")
    bob = factories.trader("bob", CEA=300)
    bid = place(alice, "BUY", price="13.95", quantity=50).order

    browser_login(page, "alice", PASSWORD)
    with page.expect_response(is_notice_poll(204)):  # on load: nothing new
        page.goto(f"{live_server.url}/market/CEA/")
    count_fill_toasts(page)

    # Bob sells into Alice's resting bid: her next poll tells her, once.
    place(bob, "SELL", order_type="MARKET", quantity=40)
    toast = page.get_by_test_id("fill-toast")
    toast.wait_for()
    assert toast.inner_text().startswith(
        f"Your buy order #{bid.pk} filled 40 CEA at €13.95 (maker)."
    )
    assert page.locator("#toasts").get_attribute("aria-live") == "polite"
    screenshot(page, "fill-toast-desktop", full_page=False)

    # The book changes again (Bob offers more): the next poll has nothing for her.
    with page.expect_response(is_notice_poll(204)):
        place(bob, "SELL", price="15.00", quantity=1)
    assert page.evaluate("window.fillToasts") == 1

    # My trades: the fill, as maker.
    page.get_by_test_id("my-trades-link").click()
    page.wait_for_url("**/market/my-trades/")
    row = page.get_by_test_id("fill-row")
    assert row.count() == 1 and row.get_attribute("data-role") == "MAKER"
    cells = row.locator("td").all_inner_texts()
    assert cells[1:] == ["CEA", "Buy", "€13.95", "40", "€558.00", "€2.79", "Maker", f"#{bid.pk}"]
    screenshot(page, "my-trades-desktop")

    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    assert download.value.suggested_filename.startswith("my-trades-")
    header, *rows = read_download(download.value)
    trade = Trade.objects.get()
    assert header[:5] == ["Trade ID", "Time (UTC)", "Market", "Side", "Maker/taker"]
    assert rows == [
        [
            str(trade.pk),
            trade.created_at.isoformat(),
            "CEA",
            "Buy",
            "Maker",
            "13.95",
            "40",
            "558.00",
            "2.79",
            str(bid.pk),
        ]
    ]

    # The statement of this month, as the form proposes it.
    with page.expect_download() as download:
        page.get_by_test_id("download-statement").click()
    header, *lines = read_download(download.value)
    closing = {line[0]: line for line in lines if line[header.index("Line")] == "Closing balance"}
    eur = Balance.objects.get(holder=alice, asset="EUR")
    available, locked = header.index("Available"), header.index("Locked")
    assert (D(closing["EUR"][available]), D(closing["EUR"][locked])) == (
        eur.available,
        eur.locked,
    )
    assert closing["CEA"][available] == "40"

    # A wrong filter: the message next to its field.
    page.get_by_label("To").first.fill("2026-01-01")
    page.get_by_label("From").first.fill("2026-02-01")
    page.get_by_role("button", name="Filter").click()
    page.get_by_test_id("error-date_to").wait_for()
    assert page.get_by_test_id("error-date_to").inner_text() == (
        "The end date is before the start date."
    )

    # On a phone: cards, nothing scrolls sideways, here and on the cash market page.
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/market/my-trades/")
    card = page.get_by_test_id("fill")
    assert card.is_visible() and not page.get_by_test_id("fills-table").is_visible()
    assert "Buy 40 CEA at €13.95" in card.inner_text()
    no_sideways_scroll(page)
    screenshot(page, "my-trades-phone")

    page.goto(f"{live_server.url}/market/CEA/")
    page.wait_for_selector("#order-book")
    count_fill_toasts(page)
    second = place(alice, "BUY", price="14.00", quantity=5).order  # the best bid
    place(bob, "SELL", order_type="MARKET", quantity=5)
    toast = page.get_by_test_id("fill-toast")
    toast.wait_for()
    assert f"Your buy order #{second.pk} filled 5 CEA at €14.00 (maker)." in toast.inner_text()
    no_sideways_scroll(page)
    screenshot(page, "fill-toast-phone", full_page=False)
