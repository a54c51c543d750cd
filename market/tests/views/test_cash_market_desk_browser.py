"""The trader's desk on the cash market page in real Chromium: keyboard (tab order, Escape,
focus, focus rings), the live status of the book's polls, the re-quote of an open
confirmation, the order form's Available in step with the Balances panel, the busy
Review, and the page at phone width."""

import re
from decimal import Decimal

import pytest

from market.models import Order
from market.tests import factories
from market.tests.helpers import place
from market.tests.views.conftest import small_book
from market.tests.views.test_cash_market_browser import (
    full_page,
    open_market,
    seed_book,
    wait_for_js,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("migrated_rows"),
]

D = Decimal
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def trader(migrated_rows):
    return factories.trader("alice", EUR="20000", CEA=300)


def active(page) -> str:
    """The focused element, as a test reads it: its data-testid, else its name or id."""
    return page.evaluate(
        """() => { const e = document.activeElement;
            return e.dataset.testid || e.getAttribute('name') || e.id || e.tagName; }"""
    )


def text_of(page, testid: str) -> str:
    return re.sub(r"\s+", " ", page.get_by_test_id(testid).inner_text()).strip()


def wait_for_text(page, testid: str, pattern: str) -> None:
    wait_for_js(
        page,
        f"(document.querySelector('[data-testid={testid}]') || {{}}).innerText"
        f" && /{pattern}/.test(document.querySelector('[data-testid={testid}]').innerText)",
    )


# --- Keyboard -----------------------------------------------------------------------------


def test_tab_order_follows_the_visual_order_of_the_form(page, browser_login, live_server, trader):
    small_book()
    open_market(page, browser_login, live_server, trader)
    page.locator("input[name=side]:checked").focus()
    order = []
    for _ in range(7):
        page.keyboard.press("Tab")
        order.append(active(page))
    assert order == [
        "order_type",
        "price",
        "quantity",
        "max-quantity",
        "time-in-force",
        "post-only",
        "review-order",
    ]
    # Backwards from the first field leaves the form: Review is no longer before it.
    page.locator("input[name=side]:checked").focus()
    page.keyboard.press("Shift+Tab")
    assert active(page) != "review-order"
    # Enter in a field still reviews (never MAX).
    page.locator("#id_price").fill("14.00")
    page.locator("#id_quantity").fill("3")
    page.locator("#id_quantity").press("Enter")
    page.get_by_test_id("order-confirm").wait_for()
    assert page.locator("#id_quantity").input_value() == "3"


def test_escape_closes_the_confirmation_and_focus_returns_to_the_form(
    page, browser_login, live_server, trader, screenshot
):
    small_book()
    open_market(page, browser_login, live_server, trader)
    page.locator("#id_price").fill("14.00")
    page.locator("#id_quantity").fill("3")
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("order-confirm").wait_for()
    wait_for_js(page, "document.activeElement.dataset.testid === 'confirm-order'")
    screenshot(page, "desk-confirm-open", full_page=False)

    page.keyboard.press("Escape")
    page.get_by_test_id("order-confirm").wait_for(state="detached")
    wait_for_js(page, "document.activeElement.id === 'id_quantity'")
    assert not Order.objects.filter(owner=trader).exists()

    # Edit does the same.
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("edit-order").click()
    page.get_by_test_id("order-confirm").wait_for(state="detached")
    wait_for_js(page, "document.activeElement.id === 'id_quantity'")
    assert page.locator("#id_quantity").input_value() == "3"


def test_toggles_show_a_visible_focus_ring(page, browser_login, live_server, trader, screenshot):
    small_book()
    open_market(page, browser_login, live_server, trader)
    page.locator("#id_price").focus()
    page.keyboard.press("Shift+Tab")  # the order type toggle, by keyboard
    assert active(page) == "order_type"
    ring = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement.nextElementSibling);
            return [s.outlineStyle, parseFloat(s.outlineWidth), s.outlineColor]; }"""
    )
    assert ring[0] == "solid" and ring[1] >= 2, ring
    page.get_by_test_id("order-entry-dock").screenshot(
        path=str(screenshot(page, "desk-focus-ring", full_page=False))
    )


# --- Live status --------------------------------------------------------------------------


def test_live_status_turns_stale_then_offline_when_polls_fail_and_back(
    page, browser_login, live_server, trader, screenshot
):
    small_book()
    open_market(page, browser_login, live_server, trader)
    status = page.get_by_test_id("live-status")
    status.wait_for()
    wait_for_text(page, "live-status", r"^Live · updated \d\d:\d\d:\d\d")
    assert status.get_attribute("data-state") == "live"

    page.route(re.compile(r".*/market/CEA/book/.*"), lambda route: route.abort())
    wait_for_text(page, "live-status", r"^Stale · updated \d\d:\d\d:\d\d")
    wait_for_text(page, "live-status", r"^Offline")
    assert status.get_attribute("data-state") == "offline"
    screenshot(page, "desk-live-offline", full_page=False)

    page.unroute(re.compile(r".*/market/CEA/book/.*"))
    wait_for_text(page, "live-status", r"^Live · updated")


def test_without_javascript_no_live_status_and_enter_still_reviews(browser, live_server, trader):
    small_book()
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(trader.user.username)
        page.get_by_label("Password").fill("password")
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live_server.url}/market/CEA/")
        assert page.get_by_test_id("live-status").is_hidden()
        assert "Live" not in page.get_by_test_id("order-book").inner_text()
        # Enter in a field presses the form's default button, the hidden Review.
        page.locator("#id_price").fill("14.00")
        page.locator("#id_quantity").fill("3")
        page.locator("#id_quantity").press("Enter")
        page.get_by_test_id("order-confirm").wait_for()
        assert "Buy 3 CEA" in page.get_by_test_id("order-confirm").inner_text()
        assert not Order.objects.filter(owner=trader).exists()
    finally:
        context.close()


# --- The estimate follows the book and the balances --------------------------------------


def test_an_open_confirmation_re_quotes_and_a_moved_market_order_asks_again(
    page, browser_login, live_server, trader, screenshot
):
    small_book()
    open_market(page, browser_login, live_server, trader)
    page.locator("label", has=page.locator("input[value=MARKET]")).click()
    page.locator("#id_quantity").fill("15")
    wait_for_text(page, "preview-average", "14.1333")
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("confirm-order").wait_for()

    # Someone takes the 10 at 14.10: the next poll re-quotes the open confirmation.
    place(factories.trader(EUR="1000"), "BUY", order_type="MARKET", quantity=10)
    moved = page.get_by_test_id("price-moved")
    moved.wait_for()
    assert text_of(page, "price-moved") == (
        "Price moved: was €14.1333, now €14.2333 — review again."
    )
    assert page.get_by_test_id("confirm-order").count() == 0
    assert text_of(page, "preview-average") == "€14.2333"
    assert page.locator("#id_quantity").input_value() == "15"
    screenshot(page, "desk-price-moved", full_page=False)
    page.set_viewport_size(PHONE)
    screenshot(page, "desk-price-moved-phone", full_page=False)
    page.set_viewport_size(DESKTOP)

    page.get_by_test_id("review-again").click()
    page.get_by_test_id("confirm-order").click()
    page.get_by_test_id("toast").first.wait_for()
    order = Order.objects.get(owner=trader)
    assert order.filled_quantity == 15 and order.filled_value == D("213.50")


def test_confirm_is_disabled_with_its_reason_when_funds_are_short(
    page, browser_login, live_server, trader, screenshot
):
    small_book()
    open_market(page, browser_login, live_server, trader)
    page.locator("#id_price").fill("14.00")
    page.locator("#id_quantity").fill("5000")
    page.get_by_test_id("review-order").click()
    confirm = page.get_by_test_id("confirm-order")
    confirm.wait_for()
    assert confirm.is_disabled()
    assert "Insufficient EUR" in text_of(page, "confirm-blocked")
    screenshot(page, "desk-confirm-blocked", full_page=False)


def test_the_forms_available_follows_a_cancel_and_a_passive_fill(
    page, browser_login, live_server, trader
):
    small_book()
    resting = place(trader, "BUY", price="13.95", quantity=10).order  # reserves €140.20
    open_market(page, browser_login, live_server, trader)

    def in_step(eur: str, cea: str) -> None:
        wait_for_js(
            page,
            "document.querySelector('[data-testid=balance-EUR-available]').innerText"
            f" === '{eur}'"
            " && document.querySelector('[data-testid=preview-available]').innerText.trim()"
            f" === '{eur} · {cea} CEA'",
        )

    in_step("€19,859.80", "300")
    # A passive fill: another trader sells into the resting bid.
    place(factories.trader(CEA=100), "SELL", order_type="MARKET", quantity=4)
    wait_for_js(
        page, "document.querySelector('[data-testid=balance-CEA-available]').innerText === '304'"
    )
    in_step("€19,859.80", "304")
    # A cancel releases the rest of the reservation.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"[data-testid=my-order][data-order-id='{resting.pk}']").get_by_test_id(
        "cancel-order"
    ).click()
    resting.refresh_from_db()
    in_step("€19,943.92", "304")


def test_review_shows_a_busy_state_while_it_loads(page, browser_login, live_server, trader):
    small_book()
    open_market(page, browser_login, live_server, trader)
    held = []

    def hold_reviews(route):
        if "review=1" in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r".*/orders/preview/$"), hold_reviews)
    page.locator("#id_price").fill("14.00")
    page.locator("#id_quantity").fill("2")
    review = page.get_by_test_id("review-order")
    review.click()
    wait_for_js(
        page,
        "document.querySelector('[data-testid=review-order]').getAttribute('aria-busy')"
        " === 'true'",
    )
    assert review.is_disabled()
    assert "Reviewing" in review.inner_text()
    assert len(held) == 1
    held[0].continue_()
    page.get_by_test_id("order-confirm").wait_for()


# --- Phone -------------------------------------------------------------------------------


def test_the_page_at_phone_width(page, browser_login, live_server, trader, screenshot):
    seed_book(levels=8)
    place(trader, "BUY", price="13.50", quantity=40)
    cancelled = place(trader, "SELL", price="14.90", quantity=25).order
    place(trader, "BUY", order_type="MARKET", quantity=7)
    from market.services.orders import order_cancel

    order_cancel(order_id=cancelled.pk, user=trader.user)
    page.set_viewport_size(PHONE)
    open_market(page, browser_login, live_server, trader)

    def no_sideways_scroll():
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        table = page.get_by_test_id("my-orders-table")
        table.scroll_into_view_if_needed()
        assert table.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")

    no_sideways_scroll()
    full_page(page, screenshot, "desk-phone-open-orders")
    page.get_by_test_id("tab-history").click()
    wait_for_js(page, "document.getElementById('my-orders').dataset.tab === 'history'")
    no_sideways_scroll()
    page.get_by_test_id("my-orders-table").screenshot(
        path=str(screenshot(page, "desk-phone-history", full_page=False))
    )
    # Every figure of a row keeps its label (drawn before it, as the header is hidden).
    labels = (
        page.get_by_test_id("my-order")
        .first.locator("td")
        .evaluate_all("cells => cells.map(c => getComputedStyle(c, '::before').content)")
    )
    assert '"Avg price"' in labels and '"Status"' in labels, labels

    # The depth chart's labels are at least 10 px tall on screen.
    chart = page.locator("#depth-chart svg:visible")
    assert chart.count() == 1
    heights = chart.locator("text").evaluate_all(
        "texts => texts.map(t => t.getBoundingClientRect().height)"
    )
    assert heights and min(heights) >= 10, heights
    page.locator("#depth-chart").screenshot(
        path=str(screenshot(page, "desk-phone-depth", full_page=False))
    )

    # The buy-by toggle: the chosen unit stands out (light text on a dark button).
    page.locator("label", has=page.locator("input[value=MARKET]")).click()
    chosen = page.locator("input[name=amount_mode]:checked + span")
    colours = chosen.evaluate(
        "s => [getComputedStyle(s).color, getComputedStyle(s).backgroundColor]"
    )
    assert colours[0] == "rgb(255, 255, 255)", colours
    page.get_by_test_id("order-entry-dock").screenshot(
        path=str(screenshot(page, "desk-phone-order-form", full_page=False))
    )
    no_sideways_scroll()
