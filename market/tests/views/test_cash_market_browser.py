"""The cash market page in real Chromium (Playwright): book, order entry, My Orders,
balances, polling. Data is seeded through the order service, as in production."""

import importlib
import re
from decimal import Decimal

import pytest
from django.apps import apps as django_apps

from market.core.matching import affordable_quantity
from market.models import Balance, MarketMakerClient, Order, Trade
from market.tests import factories
from market.tests.helpers import place

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

D = Decimal
PASSWORD = "password"  # factories.UserFactory


@pytest.fixture(autouse=True)
def _migrated_rows(transactional_db):
    """The markets and house account of migration market.0002, seeded again (idempotent).

    `serialized_rollback` restores them after an earlier transactional test's flush only
    on the connection the database was set up on; once Playwright's event loop runs in
    this thread, Django may hand the test another connection object.
    """
    importlib.import_module("market.migrations.0002_seed_cea_eua_and_house").seed(
        django_apps, None
    )


def seed_book(levels: int = 12, market: str = "CEA", spacing: str = "0.05"):
    """Market makers rest `levels` bid levels from 13.95 down and ask levels from 14.05 up,
    `spacing` apart (two orders at every third level); a few trades print. A deep book
    keeps within the market's ±10 % price band around €14.00 with a narrower spacing."""
    provider = factories.market_maker(MarketMakerClient.Type.LIQUIDITY_PROVIDER, EUR="500000")
    holder = factories.market_maker(MarketMakerClient.Type.ASSET_HOLDER, **{market: 50000})
    for index in range(levels):
        step = D(spacing) * index
        quantity = 40 + (index * 37) % 160
        place(provider.holder, "BUY", market=market, price=D("13.95") - step, quantity=quantity)
        place(holder.holder, "SELL", market=market, price=D("14.05") + step, quantity=quantity)
        if index % 3 == 0:
            place(provider.holder, "BUY", market=market, price=D("13.95") - step, quantity=25)
            place(holder.holder, "SELL", market=market, price=D("14.05") + step, quantity=30)
    # Some history: a trader lifts offers and hits bids.
    other = factories.trader(EUR="5000", **{market: 200})
    place(other, "BUY", market=market, order_type="MARKET", quantity=12)
    place(other, "SELL", market=market, order_type="MARKET", quantity=7)
    place(other, "BUY", market=market, order_type="MARKET", quantity=5)
    return provider, holder


@pytest.fixture
def trader(db):
    return factories.trader("alice", EUR="20000", CEA=300)


def open_market(page, browser_login, live_server, trader, code="CEA"):
    browser_login(page, trader.user.username, PASSWORD)
    page.goto(f"{live_server.url}/market/{code}/")
    page.wait_for_selector("#order-book")


def balance(holder, asset) -> Balance:
    return Balance.objects.get(holder=holder, asset=asset)


def full_page(page, screenshot, name):
    """A full-page screenshot from the top (the sticky form would otherwise be drawn where
    the viewport happens to be)."""
    page.evaluate("window.scrollTo(0, 0)")
    wait_for_js(page, "window.scrollY === 0")
    return screenshot(page, name)


def wait_for_js(page, expression: str, timeout_ms: int = 15_000) -> None:
    """Wait until `expression` is true in the page, checked on every animation frame. Not
    `page.wait_for_function`: that compiles its predicate in the page with Function(),
    which the Content-Security-Policy forbids; `page.evaluate` runs this over the DevTools
    protocol, outside the policy."""
    met = page.evaluate(
        f"""() => new Promise(resolve => {{
            const deadline = performance.now() + {timeout_ms};
            const check = () => {{
                if ({expression}) return resolve(true);
                if (performance.now() > deadline) return resolve(false);
                requestAnimationFrame(check);
            }};
            check();
        }})"""
    )
    assert met, f"timed out waiting for {expression}"


def review_and_confirm(page):
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("confirm-order").click()
    page.get_by_test_id("toast").first.wait_for()


def test_trader_sees_the_seeded_book_and_a_click_fills_the_price(
    page, browser_login, live_server, trader, screenshot
):
    seed_book(levels=12)
    open_market(page, browser_login, live_server, trader)

    bids, asks = page.get_by_test_id("bid-level"), page.get_by_test_id("ask-level")
    assert bids.count() == 12 and asks.count() == 12
    assert bids.first.get_attribute("data-book-price") == "13.95"
    # The trades above took the best ask and some of the best bid.
    assert asks.first.get_attribute("data-book-price") == "14.05"
    assert page.get_by_test_id("stat-best-bid").inner_text() == "€13.95"
    assert page.get_by_test_id("stat-spread").inner_text().startswith("€0.10")
    assert page.get_by_test_id("trade-row").count() == Trade.objects.count() > 0
    assert page.get_by_test_id("depth-svg").is_visible()

    # Market order first, then a click on an ask level: LIMIT at that price.
    page.locator("label", has=page.locator("input[value=MARKET]")).click()
    assert not page.locator("#id_price").is_visible()
    asks.nth(2).click()
    assert page.locator("#id_price").input_value() == "14.15"
    assert page.locator("input[name=order_type][value=LIMIT]").is_checked()
    assert page.url.endswith("/market/CEA/")  # filled in place, no navigation

    # The live preview answers as the trader types.
    page.locator("#id_quantity").fill("10")
    preview = page.get_by_test_id("preview-total")
    wait_for_js(
        page, "document.querySelector('[data-testid=preview-total]').innerText.trim() !== '—'"
    )
    # 10 at 14.05 fill at once (the best ask) plus the 0.5 % fee.
    assert preview.inner_text() == "€141.20"
    full_page(page, screenshot, "cash-market-book")


def test_limit_order_rests_in_my_orders_and_the_book_and_cancel_releases_it(
    page, browser_login, live_server, trader, screenshot
):
    seed_book(levels=6)
    open_market(page, browser_login, live_server, trader)
    assert page.get_by_test_id("my-orders-empty").is_visible()

    page.locator("#id_price").fill("13.98")
    page.locator("#id_quantity").fill("100")
    page.get_by_test_id("review-order").click()
    confirm = page.get_by_test_id("order-confirm")
    assert "Buy 100 CEA" in confirm.inner_text() and "€13.98" in confirm.inner_text()
    page.get_by_test_id("confirm-order").click()
    toast = page.get_by_test_id("toast").first
    toast.wait_for()
    assert re.search(r"Order #\d+ rests in the book", toast.inner_text())

    order = Order.objects.get(owner=trader)
    assert order.status == Order.Status.OPEN and order.reserved == D("1404.99")
    row = page.locator(f"[data-testid=my-order][data-order-id='{order.pk}']")
    row.wait_for()
    # The book and balances refresh on the HX-Trigger event.
    best_bid = page.get_by_test_id("bid-level").first
    wait_for_js(
        page, "document.querySelector('[data-testid=bid-level]').dataset.bookPrice === '13.98'"
    )
    assert "100" in best_bid.inner_text()
    locked = page.get_by_test_id("balance-EUR-locked")
    wait_for_js(
        page,
        "document.querySelector('[data-testid=balance-EUR-locked]').innerText === '€1,404.99'",
    )
    assert page.get_by_test_id("balance-EUR-available").inner_text() == "€18,595.01"
    # The form is ready for the next order: quantity cleared, price kept.
    assert page.locator("#id_quantity").input_value() == ""
    full_page(page, screenshot, "cash-market-limit-order")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_test_id("cancel-order").click()
    page.get_by_text(f"Order #{order.pk} cancelled").wait_for()
    wait_for_js(
        page, "document.querySelector('[data-testid=balance-EUR-locked]').innerText === '€0.00'"
    )
    assert locked.inner_text() == "€0.00"
    assert page.get_by_test_id("balance-EUR-available").inner_text() == "€20,000.00"
    page.get_by_test_id("my-orders-empty").wait_for()
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED and order.reserved == 0
    assert balance(trader, "EUR").locked == 0
    wait_for_js(
        page, "document.querySelector('[data-testid=bid-level]').dataset.bookPrice === '13.95'"
    )

    page.get_by_test_id("tab-history").click()
    page.locator(f"[data-testid=my-order][data-order-id='{order.pk}']").wait_for()
    assert "Cancelled" in page.get_by_test_id("my-orders-table").inner_text()


def test_market_buy_shows_in_recent_trades_and_changes_balances(
    page, browser_login, live_server, trader, screenshot
):
    seed_book(levels=6)
    open_market(page, browser_login, live_server, trader)
    trades_before = page.get_by_test_id("trade-row").count()

    page.locator("label", has=page.locator("input[value=MARKET]")).click()
    page.locator("label", has=page.locator("input[name=amount_mode][value=eur]")).click()
    assert not page.locator("#id_quantity").is_visible()
    page.locator("#id_eur_budget").fill("2000")
    wait_for_js(
        page, "document.querySelector('[data-testid=preview-quantity]').innerText.includes('CEA')"
    )
    review_and_confirm(page)
    assert "filled" in page.get_by_test_id("toast").first.inner_text()

    order = Order.objects.get(owner=trader)
    assert order.status == Order.Status.FILLED and order.filled_quantity > 0
    wait_for_js(
        page, f"document.querySelectorAll('[data-testid=trade-row]').length > {trades_before}"
    )
    newest = page.get_by_test_id("trade-row").first
    assert newest.get_attribute("data-side") == "BUY"
    cea = balance(trader, "CEA")
    eur = balance(trader, "EUR")
    assert cea.available == 300 + order.filled_quantity
    wait_for_js(
        page,
        "document.querySelector('[data-testid=balance-CEA-available]').innerText"
        f" === '{cea.available:,.0f}'",
    )
    assert page.get_by_test_id("balance-EUR-available").inner_text() == f"€{eur.available:,}"
    assert eur.available < D("20000") and eur.locked == 0
    page.get_by_test_id("tab-history").click()
    page.locator(f"[data-testid=my-order][data-order-id='{order.pk}']").wait_for()
    full_page(page, screenshot, "cash-market-market-buy")


def test_order_form_stays_visible_while_the_book_scrolls(
    page, browser_login, live_server, trader, screenshot
):
    seed_book(levels=45, spacing="0.02")
    open_market(page, browser_login, live_server, trader)
    form = page.locator("#order-entry")
    scroller = page.get_by_test_id("order-book-scroll")
    header = page.get_by_test_id("order-book-header")

    box = scroller.bounding_box()
    assert 560 <= box["height"] <= 602  # about 600 px, scrolling inside
    assert scroller.evaluate("el => el.scrollHeight > el.clientHeight")

    # Scroll the page until the book sits right under the form: the form sticks to the
    # top of the viewport.
    target = page.evaluate(
        "Math.round(document.getElementById('order-book').getBoundingClientRect().top"
        " + window.scrollY - document.getElementById('order-entry').offsetHeight - 24)"
    )
    page.evaluate(f"window.scrollTo(0, {target})")
    wait_for_js(page, f"Math.abs(window.scrollY - {target}) <= 1")
    form_box = form.bounding_box()
    assert -1 <= form_box["y"] <= 12
    assert form.is_visible()
    assert scroller.bounding_box()["y"] >= form_box["y"] + form_box["height"]

    # Scroll inside the book: the form stays put and the book's header sticks.
    scroller.evaluate("el => { el.scrollTop = 400 }")
    wait_for_js(page, "document.getElementById('order-book-scroll').scrollTop === 400")
    assert scroller.evaluate("el => el.scrollTop") == 400
    assert form.bounding_box() == form_box
    assert abs(header.bounding_box()["y"] - scroller.bounding_box()["y"]) <= 1

    # Scroll the page further: still pinned above the chart and My Orders.
    before = page.evaluate("window.scrollY")
    page.evaluate("window.scrollBy(0, 900)")
    wait_for_js(page, f"window.scrollY > {before}")
    assert form.bounding_box()["y"] == pytest.approx(form_box["y"], abs=1)
    screenshot(page, "cash-market-scrolled", full_page=False)


def test_polling_answers_304_and_keeps_the_book_then_swaps_a_changed_one(
    page, browser_login, live_server, trader
):
    provider, _ = seed_book(levels=4)
    open_market(page, browser_login, live_server, trader)
    statuses = []
    page.on(
        "response",
        lambda response: statuses.append(response.status) if "/book/" in response.url else None,
    )
    with page.expect_response(lambda r: "/book/" in r.url and r.status == 304):
        pass
    assert page.get_by_test_id("bid-level").count() == 4  # a 304 swaps nothing

    # Another participant changes the book: the next poll brings it.
    place(provider.holder, "BUY", price="14.00", quantity=77)
    wait_for_js(
        page, "document.querySelector('[data-testid=bid-level]').dataset.bookPrice === '14.00'"
    )
    assert 200 in statuses and 304 in statuses
    assert page.get_by_test_id("stat-best-bid").inner_text() == "€14.00"


def test_bad_input_shows_inline_errors_and_places_nothing(
    page, browser_login, live_server, trader
):
    seed_book(levels=3)
    open_market(page, browser_login, live_server, trader)
    page.locator("#id_price").fill("14.001")
    page.locator("#id_quantity").fill("2.5")
    page.get_by_test_id("review-order").click()
    page.locator("[data-error-for=price]").wait_for()
    assert "2 decimal places" in page.locator("[data-error-for=price]").inner_text()
    assert "whole" in page.locator("[data-error-for=quantity]").inner_text()
    assert page.locator("#id_price").get_attribute("aria-invalid") == "true"

    page.locator("#id_price").fill("14.00")
    page.locator("#id_quantity").fill("5000")
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("preview-warnings").wait_for()
    assert "Insufficient EUR" in page.get_by_test_id("preview-warnings").inner_text()
    # An order that cannot succeed cannot be confirmed; the bar says why.
    assert page.get_by_test_id("confirm-order").is_disabled()
    assert "Insufficient EUR" in page.get_by_test_id("confirm-blocked").inner_text()
    assert not Order.objects.filter(owner=trader).exists()


def test_a_lost_answer_then_a_changed_order_is_refused_and_can_be_placed_again(
    page, browser_login, live_server, trader, screenshot
):
    """The first order is placed but its answer never reaches the page, so the form keeps
    its key; the trader changes the quantity and confirms again. That is another order
    under a used key: refused next to the form, nothing placed; the form then carries a
    new key and confirming again places it."""
    seed_book(levels=3)
    open_market(page, browser_login, live_server, trader)
    place_url = f"{live_server.url}/market/CEA/orders/new/"

    lost = []

    def lose_the_answer(route):
        route.fetch()  # the server places the order
        route.abort("connectionreset")
        lost.append(route.request.url)

    page.route(place_url, lose_the_answer, times=1)
    page.locator("#id_price").fill("13.90")
    page.locator("#id_quantity").fill("10")
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("confirm-order").click()
    # Route handlers run while the test waits on the page; until the abort, the page
    # still waits for its answer with the first confirmation open.
    for _ in range(300):
        if lost:
            break
        page.wait_for_timeout(50)
    assert lost, "the placement never reached the route"
    first = Order.objects.get(owner=trader)
    key = page.locator("input[name=client_order_id]").input_value()
    assert key == first.client_order_id  # the page never heard back

    page.locator("#id_quantity").fill("20")
    page.get_by_test_id("review-order").click()
    # The first confirmation (10 CEA, reviewed) stays until the new review replaces it;
    # its button would confirm the figures reviewed then.
    page.get_by_test_id("order-confirm").filter(has_text="Buy 20 CEA").wait_for()
    page.get_by_test_id("confirm-order").click()
    errors = page.get_by_test_id("form-errors")
    errors.wait_for()
    assert f"Order #{first.pk} was already placed with this idempotency key" in (
        errors.inner_text()
    )
    assert "Check My orders, then review and confirm again" in errors.inner_text()
    assert list(Order.objects.filter(owner=trader)) == [first]
    # The page now shows the order it never heard of.
    page.locator(f"[data-testid=my-order][data-order-id='{first.pk}']").wait_for()
    assert page.locator("#id_quantity").input_value() == "20"
    assert page.locator("input[name=client_order_id]").input_value() != key
    full_page(page, screenshot, "cash-market-key-reused")
    page.set_viewport_size({"width": 390, "height": 844})
    full_page(page, screenshot, "cash-market-key-reused-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    review_and_confirm(page)
    second = Order.objects.filter(owner=trader).exclude(pk=first.pk).get()
    assert second.quantity == 20 and second.price == D("13.90")


def test_readme_screenshot(page, browser_login, live_server, trader, screenshot):
    """The README's screenshot (docs/screenshots/cash-market.png is a copy of it): a busy
    book, the trader's own orders, an order being reviewed."""
    seed_book(levels=30, spacing="0.02")
    active = factories.trader(EUR="20000", CEA=500)
    for side, quantity in (("BUY", 20), ("SELL", 15), ("BUY", 60), ("BUY", 9), ("SELL", 31)):
        place(active, side, order_type="MARKET", quantity=quantity)
    place(trader, "BUY", price="13.80", quantity=40)
    place(trader, "SELL", price="14.60", quantity=25)
    open_market(page, browser_login, live_server, trader)
    page.get_by_test_id("ask-level").nth(1).click()
    page.locator("#id_quantity").fill("120")
    page.get_by_test_id("review-order").click()
    page.get_by_test_id("order-confirm").wait_for()
    assert full_page(page, screenshot, "cash-market").exists()


def test_the_basic_flow_works_without_javascript(browser, live_server, trader, screenshot):
    seed_book(levels=4)
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(trader.user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live_server.url}/market/CEA/")

        # A book level is a link that opens the form with its price.
        page.get_by_test_id("ask-level").nth(1).click()
        assert page.locator("#id_price").input_value() == "14.10"
        page.locator("#id_quantity").fill("3")
        # Review renders the page with the estimate and a Confirm button.
        page.get_by_test_id("review-order").click()
        assert "Buy 3 CEA" in page.get_by_test_id("order-confirm").inner_text()
        assert not Order.objects.filter(owner=trader).exists()
        page.get_by_test_id("confirm-order").click()
        page.wait_for_url(f"{live_server.url}/market/CEA/")
        assert "filled: 3 CEA" in page.locator("#messages").inner_text()
        assert Order.objects.get(owner=trader).status == Order.Status.FILLED

        # Or place straight away; bad input comes back with errors next to the fields.
        page.locator("#id_price").fill("13.00")
        page.locator("#id_quantity").fill("-1")
        page.get_by_role("button", name="Place the order now").click()
        assert "greater than zero" in page.locator("[data-error-for=quantity]").inner_text()
        page.locator("#id_quantity").fill("2")
        page.get_by_role("button", name="Place the order now").click()
        assert "rests in the book" in page.locator("#messages").inner_text()
        resting = Order.objects.get(owner=trader, status=Order.Status.OPEN)

        # MAX without JavaScript: the page comes back with the amount filled in.
        page.locator("#id_price").fill("13.00")
        page.get_by_test_id("max-quantity").click()
        most = affordable_quantity(
            price=D("13.00"),
            budget=balance(trader, "EUR").available,
            spent_value=D("0"),
            fee_rate=D("0.005"),
            limit=10**9,
        )
        assert page.locator("#id_quantity").input_value() == str(most)

        row = page.locator(f"[data-testid=my-order][data-order-id='{resting.pk}']")
        row.get_by_test_id("cancel-order").click()
        assert f"Order #{resting.pk} cancelled" in page.locator("#messages").inner_text()
        resting.refresh_from_db()
        assert resting.status == Order.Status.CANCELLED

        page.get_by_test_id("tab-history").click()
        assert page.url.endswith("?tab=history#my-orders")
        assert page.locator("[data-testid=my-order]").count() == 2
        full_page(page, screenshot, "cash-market-no-js")
    finally:
        context.close()


def test_the_order_form_shows_the_band_and_the_estimate_refuses_outside_it(
    page, browser_login, live_server, trader, screenshot
):
    from market.models import Market

    Market.objects.filter(code="CEA").update(
        price_band_pct=D("10"), slippage_pct=D("5"), max_order_quantity=5000
    )
    seed_book(levels=3)
    open_market(page, browser_login, live_server, trader)
    limits = page.get_by_test_id("order-limits")
    assert "Allowed price €12.60 – €15.40" in limits.inner_text()
    assert "max 5,000 CEA" in limits.inner_text()
    page.locator("#id_price").fill("16.00")
    page.locator("#id_quantity").fill("10")
    warnings = page.get_by_test_id("preview-warnings")
    warnings.filter(has_text="price band").wait_for()
    assert "€12.60 – €15.40 (±10 % of the reference price €14.00)" in warnings.inner_text()
    screenshot(page, "order-form-band", full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    limits.scroll_into_view_if_needed()
    screenshot(page, "order-form-band-phone", full_page=False)
    assert not Order.objects.filter(owner=trader).exists()


def test_an_order_past_the_rate_limit_shows_a_toast_and_keeps_the_form(
    page, browser_login, live_server, trader, screenshot, settings
):
    from django.core.cache import caches

    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "order_place": "1/h"}
    caches["throttle"].clear()
    seed_book(levels=3)
    open_market(page, browser_login, live_server, trader)
    for attempt in range(2):
        page.locator("#id_price").fill("13.50")
        page.locator("#id_quantity").fill("1")
        review_and_confirm(page)
        if attempt == 0:
            assert "rests in the book" in page.get_by_test_id("toast").first.inner_text()
            page.locator("[data-dismiss-toast]").first.click()
            wait_for_js(page, "!document.querySelector('[data-toast]')")
    toast = page.get_by_test_id("toast").first
    assert re.search(r"Too many requests: wait \d+ s and try again\.", toast.inner_text())
    assert page.locator("#order-form").is_visible()
    assert Order.objects.filter(owner=trader).count() == 1
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "cash-market-rate-limited-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "cash-market-rate-limited-desktop", full_page=False)


def test_a_trader_places_a_limit_amends_it_then_cancels_all(
    page, browser_login, live_server, trader, screenshot
):
    seed_book(levels=4)
    open_market(page, browser_login, live_server, trader)
    page.locator("#id_price").fill("13.90")
    page.locator("#id_quantity").fill("50")
    page.get_by_test_id("post-only").check()
    review_and_confirm(page)
    order = Order.objects.get(owner=trader)
    assert order.post_only and order.status == Order.Status.OPEN
    row = page.locator(f"[data-testid=my-order][data-order-id='{order.pk}']")
    row.wait_for()

    # Amend: shrink first (same order, same place), estimated as the trader types.
    row.get_by_test_id("amend-order-link").click()
    panel = page.get_by_test_id("amend-order")
    panel.wait_for()
    page.locator("#amend-order #id_quantity").fill("20")
    page.get_by_text("Keeps its place in the queue").wait_for()
    for width, name in ((1280, "cash-market-amend"), (390, "cash-market-amend-phone")):
        page.set_viewport_size({"width": width, "height": 900})
        panel.scroll_into_view_if_needed()
        screenshot(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})
    panel.get_by_test_id("amend-confirm").click()
    page.get_by_text(f"Order #{order.pk} amended: 20 CEA open").wait_for()
    order.refresh_from_db()
    assert order.quantity == 20 and order.is_resting
    wait_for_js(page, "!document.querySelector('[data-testid=amend-order]')")

    # Then a new price: the order is replaced by a new one.
    row.get_by_test_id("amend-order-link").click()
    panel.wait_for()
    page.locator("#amend-order #id_price").fill("13.92")
    page.get_by_text("Loses its place in the queue").wait_for()
    panel.get_by_test_id("amend-confirm").click()
    page.get_by_text(f"Order #{order.pk} replaced by #").wait_for()
    new = Order.objects.filter(owner=trader, status=Order.Status.OPEN).get()
    assert (new.price, new.quantity, new.post_only) == (D("13.92"), 20, True)
    page.locator(f"[data-testid=my-order][data-order-id='{new.pk}']").wait_for()

    # Cancel all, after the confirmation.
    # A second resting order, placed elsewhere (say, the API): the page shows it on load.
    place(trader, "SELL", price="14.50", quantity=5)
    page.goto(f"{live_server.url}/market/CEA/")
    page.locator("[data-testid=my-order]").nth(1).wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("cancel-all").click()
    page.get_by_text("2 orders cancelled in CEA").wait_for()
    page.get_by_test_id("my-orders-empty").wait_for()
    assert not Order.objects.filter(owner=trader, status__in=Order.RESTING).exists()
    for width, name in ((1280, "cash-market-cancel-all"), (390, "cash-market-cancel-all-phone")):
        page.set_viewport_size({"width": width, "height": 900})
        full_page(page, screenshot, name)
